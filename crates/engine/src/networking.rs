//! Bridge networking in the engine: which network a container's `NetworkMode` names, the
//! endpoints a container asks for and joins at start (several networks, `--ip`, aliases), their
//! release when it exits or is removed, connect/disconnect at runtime, the network API calls
//! (create/list/inspect/remove/prune) and their wire shapes.

use std::collections::BTreeMap;
use std::sync::Arc;

use berth_engine_client::{
    ContainerCreate, EndpointConfig, EndpointSettings, IpamConfig, NetworkConnect,
    NetworkContainer, NetworkCreate, NetworkCreated, NetworkDisconnect, NetworkInspect,
    NetworkIpam, NetworkPruneReport, NetworkSettings,
};
use berth_network::{AttachOptions, CreateNetwork, Network, DEFAULT_NETWORK};

use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::prepare;
use crate::record::{ContainerRecord, EndpointRequest};

/// The bridge network a network mode names: `bridge` or a user network; `None` for `none`,
/// `host`, `container:ID` and the empty mode of records older than the `bridge` default
/// (create turns an empty or `default` mode into `bridge`).
pub fn bridge_network(mode: &str) -> Option<&str> {
    match mode {
        "" | "none" | "host" | "default" => None,
        m if m.starts_with("container:") => None,
        m => Some(m),
    }
}

/// The network mode a create request stands for: empty and `default` are `bridge` (Docker).
pub fn effective_mode(mode: &str) -> &str {
    match mode {
        "" | "default" => DEFAULT_NETWORK,
        m => m,
    }
}

/// Checks one endpoint request: aliases only on user-defined networks, `--ip` a valid IPv4
/// address.
fn endpoint_request(net: &str, ep: &EndpointConfig) -> Result<EndpointRequest> {
    if !ep.aliases.is_empty() && net == DEFAULT_NETWORK {
        return Err(EngineError::Invalid(
            "network-scoped aliases are supported only for containers on user-defined networks"
                .into(),
        ));
    }
    for a in &ep.aliases {
        if !crate::names::valid_name(a) {
            return Err(EngineError::Invalid(format!(
                "invalid network alias {a:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
    }
    let ip = match ep.ipam_config.as_ref().map(|c| c.ipv4_address.as_str()) {
        None | Some("") => None,
        Some(ip) => {
            if net == DEFAULT_NETWORK {
                return Err(EngineError::Invalid(
                    "user specified IP address is supported on user defined networks only".into(),
                ));
            }
            Some(ip.parse().map_err(|_| {
                EngineError::Invalid(format!("invalid IPv4 address {ip:?} for --ip"))
            })?)
        }
    };
    Ok(EndpointRequest {
        network: net.to_string(),
        aliases: ep.aliases.clone(),
        ip,
    })
}

/// The bridge networks a create request joins, in order: the network mode first, then the
/// other networks of `NetworkingConfig.EndpointsConfig` (`--network` given more than once).
pub fn endpoints(req: &ContainerCreate) -> Result<Vec<EndpointRequest>> {
    let mode = req.host_config.network_mode.as_str();
    let eps = &req.networking_config.endpoints_config;
    let Some(primary) = bridge_network(mode) else {
        if let Some(net) = eps.keys().find(|k| k.as_str() != mode) {
            return Err(EngineError::Invalid(format!(
                "network {net:?} given but the container's network mode is {mode:?}: \
                 only bridge networks can be combined"
            )));
        }
        return Ok(Vec::new());
    };
    let primary_ep = eps
        .iter()
        .find(|(k, _)| effective_mode(k) == primary)
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let mut out = vec![endpoint_request(primary, &primary_ep)?];
    for (net, ep) in eps {
        // Docker's client names the default network `default`.
        let net = effective_mode(net);
        if net == primary {
            continue;
        }
        if bridge_network(net).is_none() {
            return Err(EngineError::Invalid(format!(
                "network {net:?} cannot be combined with other networks"
            )));
        }
        out.push(endpoint_request(net, ep)?);
    }
    Ok(out)
}

/// `NetworkSettings` of `inspect` (the top-level address fields: the first network's).
pub fn settings(rec: &ContainerRecord) -> NetworkSettings {
    let mut out = NetworkSettings {
        ports: rec.ports.clone(),
        ..Default::default()
    };
    for (i, a) in rec.networks.iter().enumerate() {
        let ep = EndpointSettings {
            network_id: a.network_id.clone(),
            endpoint_id: format!(
                "{}-{}",
                &rec.id,
                &a.network_id[..12.min(a.network_id.len())]
            ),
            gateway: a.gateway.to_string(),
            ip_address: a.ip.to_string(),
            ip_prefix_len: a.prefix as i64,
            mac_address: a.mac.clone(),
            aliases: rec.aliases_on(a),
        };
        if i == 0 {
            out.ip_address = ep.ip_address.clone();
            out.ip_prefix_len = ep.ip_prefix_len;
            out.gateway = ep.gateway.clone();
            out.mac_address = ep.mac_address.clone();
            out.sandbox_key = a.netns.display().to_string();
        }
        out.networks.insert(a.network_name.clone(), ep);
    }
    out
}

/// Whether a record refers to the network (mode or endpoint request).
fn uses(rec: &ContainerRecord, n: &Network) -> bool {
    let is = |k: &str| k == n.name || k == n.id;
    is(&rec.host_config.network_mode)
        || rec.requested_endpoints().iter().any(|e| is(&e.network))
        || rec.networks.iter().any(|a| a.network_id == n.id)
}

/// Stops a container's published ports and takes its endpoints out of its record.
pub(crate) fn take_endpoints(slot: &mut crate::engine::Slot) -> Vec<berth_network::Attachment> {
    for t in slot.port_tasks.drain(..) {
        t.abort();
    }
    slot.rec.ports.clear();
    std::mem::take(&mut slot.rec.networks)
}

/// The first `ethN` no attachment uses.
fn free_ifname(atts: &[berth_network::Attachment]) -> String {
    (0..)
        .map(|i| format!("eth{i}"))
        .find(|n| !atts.iter().any(|a| &a.ifname == n))
        .expect("unbounded")
}

impl Engine {
    /// Gives a starting container its namespace and endpoints on every network it asks for.
    /// On failure nothing is left behind.
    pub(crate) fn join_networks(
        &self,
        rec: &ContainerRecord,
    ) -> Result<Vec<berth_network::Attachment>> {
        let wanted = rec.requested_endpoints();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let mut ns = self.networks.create_sandbox(&rec.id)?;
        let mut atts: Vec<berth_network::Attachment> = Vec::new();
        for ep in &wanted {
            let opts = AttachOptions {
                ifname: free_ifname(&atts),
                ip: ep.ip,
                default_route: !atts.iter().any(|a| a.default_route),
            };
            match self.networks.attach(&ep.network, &rec.id, &opts, &mut ns) {
                Ok(a) => atts.push(a),
                Err(e) => {
                    drop(ns);
                    let _ = self.networks.release(&rec.id, &atts);
                    return Err(e.into());
                }
            }
        }
        Ok(atts)
    }

    /// `--network container:ID`: the namespace to join (the target's namespace file if it is
    /// on bridge networks, else its init's) and the target's directory (its /etc files).
    pub(crate) fn shared_netns(
        &self,
        rec: &ContainerRecord,
    ) -> Result<Option<(std::path::PathBuf, std::path::PathBuf)>> {
        let Some(key) = rec.host_config.network_mode.strip_prefix("container:") else {
            return Ok(None);
        };
        let target = self.record(key)?;
        if target.id == rec.id {
            return Err(EngineError::Invalid(
                "cannot join the network namespace of the container itself".into(),
            ));
        }
        if !target.state.running || target.state.pid <= 0 {
            return Err(EngineError::Conflict(format!(
                "cannot join the network of container {}: it is not running",
                target.name
            )));
        }
        let ns = if target.networks.is_empty() {
            std::path::PathBuf::from(format!("/proc/{}/ns/net", target.state.pid))
        } else {
            self.networks.netns_path(&target.id)
        };
        Ok(Some((ns, self.paths.container(&target.id))))
    }

    /// Deletes the container's veth pairs and namespace and frees its addresses (the caller
    /// saves the record, if it keeps it).
    pub(crate) async fn release_network(self: &Arc<Self>, id: &str) {
        let atts = match self.lock().get_mut(id) {
            Some(slot) => take_endpoints(slot),
            None => return,
        };
        self.release_endpoints(id, atts).await;
    }

    /// The kernel and lease side of [`release_network`](Self::release_network), for endpoints
    /// already taken out of the record with [`take_endpoints`].
    pub(crate) async fn release_endpoints(
        self: &Arc<Self>,
        id: &str,
        atts: Vec<berth_network::Attachment>,
    ) {
        if atts.is_empty() {
            return;
        }
        let engine = self.clone();
        let id2 = id.to_string();
        let r = tokio::task::spawn_blocking(move || engine.networks.release(&id2, &atts)).await;
        if let Ok(Err(e)) = r {
            tracing::warn!(id, "cannot release the container's network endpoints: {e}");
        }
    }

    /// `POST /networks/{id}/connect`: a running container gets the endpoint at once (and its
    /// /etc/hosts the address); a stopped one at its next start.
    pub async fn connect_network(self: &Arc<Self>, key: &str, req: NetworkConnect) -> Result<()> {
        let n = self.networks.get(key)?;
        let ep = endpoint_request(&n.name, &req.endpoint_config.unwrap_or_default())?;
        let rec = self.record(&req.container)?;
        let mode = rec.host_config.network_mode.as_str();
        if bridge_network(mode).is_none() {
            return Err(EngineError::Invalid(format!(
                "container {} uses network mode {mode:?}: only containers on bridge networks can be connected to another network",
                rec.name
            )));
        }
        let mut wanted = rec.requested_endpoints();
        if wanted
            .iter()
            .any(|e| e.network == n.name || e.network == n.id)
            || rec.networks.iter().any(|a| a.network_id == n.id)
        {
            return Err(EngineError::Conflict(format!(
                "endpoint with name {} already exists in network {}",
                rec.name, n.name
            )));
        }
        wanted.push(ep.clone());
        let running = rec.state.running;
        let mut att = None;
        if running {
            let engine = self.clone();
            let id = rec.id.clone();
            let opts = AttachOptions {
                ifname: free_ifname(&rec.networks),
                ip: ep.ip,
                default_route: !rec.networks.iter().any(|a| a.default_route),
            };
            let net = n.id.clone();
            att = Some(
                tokio::task::spawn_blocking(move || -> Result<berth_network::Attachment> {
                    let mut ns = engine.networks.sandbox_socket(&id)?;
                    Ok(engine.networks.attach(&net, &id, &opts, &mut ns)?)
                })
                .await
                .map_err(EngineError::internal)??,
            );
        }
        let rec = {
            let mut slots = self.lock();
            let slot = slots
                .get_mut(&rec.id)
                .ok_or_else(|| EngineError::NotFound(format!("no such container: {}", rec.name)))?;
            slot.rec.endpoints = Some(wanted);
            if let Some(a) = &att {
                slot.rec.networks.push(a.clone());
            }
            slot.rec.clone()
        };
        self.save(&rec);
        if let Some(a) = &att {
            let _ = prepare::write_etc_files(&self.paths.container(&rec.id), &rec);
            self.ensure_dns(a).await;
        }
        self.events.publish(
            "network",
            "connect",
            &n.id,
            BTreeMap::from([
                ("container".into(), rec.id.clone()),
                ("name".into(), n.name),
            ]),
        );
        Ok(())
    }

    /// `POST /networks/{id}/disconnect`: removes the container's endpoint (at once if it
    /// runs) and the network from those it joins at start. `force`: not being connected is
    /// not an error.
    pub async fn disconnect_network(
        self: &Arc<Self>,
        key: &str,
        req: NetworkDisconnect,
    ) -> Result<()> {
        let n = self.networks.get(key)?;
        let rec = self.record(&req.container)?;
        let is = |k: &str| k == n.name || k == n.id;
        let wanted = rec.requested_endpoints();
        let att = rec.networks.iter().find(|a| a.network_id == n.id).cloned();
        if att.is_none() && !wanted.iter().any(|e| is(&e.network)) {
            if req.force {
                return Ok(());
            }
            return Err(EngineError::Conflict(format!(
                "container {} is not connected to network {}",
                rec.name, n.name
            )));
        }
        if let Some(a) = att.clone() {
            let engine = self.clone();
            let id = rec.id.clone();
            tokio::task::spawn_blocking(move || engine.networks.detach(&id, &a))
                .await
                .map_err(EngineError::internal)??;
        }
        let rec = {
            let mut slots = self.lock();
            let slot = slots
                .get_mut(&rec.id)
                .ok_or_else(|| EngineError::NotFound(format!("no such container: {}", rec.name)))?;
            slot.rec.endpoints = Some(wanted.into_iter().filter(|e| !is(&e.network)).collect());
            slot.rec.networks.retain(|a| a.network_id != n.id);
            slot.rec.clone()
        };
        self.save(&rec);
        if att.is_some() {
            let _ = prepare::write_etc_files(&self.paths.container(&rec.id), &rec);
        }
        self.events.publish(
            "network",
            "disconnect",
            &n.id,
            BTreeMap::from([
                ("container".into(), rec.id.clone()),
                ("name".into(), n.name),
            ]),
        );
        Ok(())
    }

    /// `POST /networks/create`.
    pub async fn create_network(self: &Arc<Self>, req: NetworkCreate) -> Result<NetworkCreated> {
        if !req.driver.is_empty() && req.driver != "bridge" {
            return Err(EngineError::Invalid(format!(
                "network driver {:?} is not supported: use bridge",
                req.driver
            )));
        }
        let cfg = req.ipam.config.first().cloned().unwrap_or_default();
        let subnet = match cfg.subnet.as_str() {
            "" => None,
            s => Some(s.parse::<berth_network::Subnet>()?),
        };
        let gateway = match cfg.gateway.as_str() {
            "" => None,
            g => Some(g.parse().map_err(|_| {
                EngineError::Invalid(format!("invalid gateway {g:?}: expected an IPv4 address"))
            })?),
        };
        if gateway.is_some() && subnet.is_none() {
            return Err(EngineError::Invalid(
                "a gateway needs a subnet: give --subnet too".into(),
            ));
        }
        let engine = self.clone();
        let create = CreateNetwork {
            name: req.name,
            subnet,
            gateway,
            internal: req.internal,
            labels: req.labels,
        };
        let n = tokio::task::spawn_blocking(move || engine.networks.create(create))
            .await
            .map_err(EngineError::internal)??;
        self.events.publish(
            "network",
            "create",
            &n.id,
            BTreeMap::from([("name".into(), n.name.clone())]),
        );
        Ok(NetworkCreated {
            id: n.id,
            warning: String::new(),
        })
    }

    fn network_inspect(&self, n: &Network) -> NetworkInspect {
        let slots = self.lock();
        let containers = n
            .ipam
            .leases
            .iter()
            .map(|(ip, cid)| {
                let rec = slots.get(cid).map(|s| &s.rec);
                (
                    cid.clone(),
                    NetworkContainer {
                        name: rec.map(|r| r.name.clone()).unwrap_or_default(),
                        endpoint_id: cid.clone(),
                        mac_address: rec
                            .and_then(|r| r.networks.iter().find(|a| a.network_id == n.id))
                            .map(|a| a.mac.clone())
                            .unwrap_or_default(),
                        ipv4_address: format!("{ip}/{}", n.subnet.prefix),
                    },
                )
            })
            .collect();
        NetworkInspect {
            name: n.name.clone(),
            id: n.id.clone(),
            created: n.created.clone(),
            scope: "local".into(),
            driver: n.driver.clone(),
            internal: n.internal,
            ipam: NetworkIpam {
                driver: "default".into(),
                config: vec![IpamConfig {
                    subnet: n.subnet.to_string(),
                    gateway: n.gateway.to_string(),
                }],
            },
            containers,
            options: BTreeMap::from([("com.docker.network.bridge.name".into(), n.bridge.clone())]),
            labels: n.labels.clone(),
        }
    }

    /// `GET /networks`.
    pub fn list_networks(&self) -> Vec<NetworkInspect> {
        self.networks
            .list()
            .iter()
            .map(|n| self.network_inspect(n))
            .collect()
    }

    /// `GET /networks/{id}`.
    pub fn inspect_network(&self, key: &str) -> Result<NetworkInspect> {
        Ok(self.network_inspect(&self.networks.get(key)?))
    }

    /// `DELETE /networks/{id}`: refused while containers (also stopped ones) use it.
    pub async fn remove_network(self: &Arc<Self>, key: &str) -> Result<()> {
        let n = self.networks.get(key)?;
        let users: Vec<String> = self
            .records()
            .into_iter()
            .filter(|r| uses(r, &n))
            .map(|r| r.name)
            .collect();
        if !users.is_empty() && n.name != DEFAULT_NETWORK {
            return Err(EngineError::Conflict(format!(
                "error while removing network: network {} is used by container(s) {}: remove them first",
                n.name,
                users.join(", ")
            )));
        }
        let engine = self.clone();
        let id = n.id.clone();
        self.stop_dns(&n.id);
        tokio::task::spawn_blocking(move || engine.networks.remove(&id))
            .await
            .map_err(EngineError::internal)??;
        self.events.publish(
            "network",
            "destroy",
            &n.id,
            BTreeMap::from([("name".into(), n.name)]),
        );
        Ok(())
    }

    /// `POST /networks/prune`: removes user networks no container refers to.
    pub async fn prune_networks(self: &Arc<Self>) -> Result<NetworkPruneReport> {
        let records = self.records();
        let mut deleted = Vec::new();
        for n in self.networks.list() {
            if n.name == DEFAULT_NETWORK || records.iter().any(|r| uses(r, &n)) {
                continue;
            }
            if self.remove_network(&n.id).await.is_ok() {
                deleted.push(n.name);
            }
        }
        Ok(NetworkPruneReport {
            networks_deleted: deleted,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_engine_client::EndpointIpamConfig;

    fn req(mode: &str, eps: &[(&str, &[&str], &str)]) -> ContainerCreate {
        let mut r = ContainerCreate::default();
        r.host_config.network_mode = mode.into();
        for (net, aliases, ip) in eps {
            r.networking_config.endpoints_config.insert(
                net.to_string(),
                EndpointConfig {
                    aliases: aliases.iter().map(|a| a.to_string()).collect(),
                    ipam_config: (!ip.is_empty()).then(|| EndpointIpamConfig {
                        ipv4_address: ip.to_string(),
                    }),
                },
            );
        }
        r
    }

    #[test]
    fn endpoint_requests_put_the_mode_first() {
        assert_eq!(effective_mode(""), "bridge");
        assert_eq!(effective_mode("default"), "bridge");
        let e = endpoints(&req(
            "app",
            &[("zzz", &[], ""), ("app", &["web"], "10.1.0.9")],
        ))
        .unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(
            (e[0].network.as_str(), e[0].aliases.clone(), e[0].ip),
            (
                "app",
                vec!["web".to_string()],
                Some("10.1.0.9".parse().unwrap())
            )
        );
        assert_eq!(e[1].network, "zzz");
        // Docker's client names the default network "default".
        let e = endpoints(&req("bridge", &[("default", &[], "")])).unwrap();
        assert_eq!(e.len(), 1);
        assert!(endpoints(&req("none", &[])).unwrap().is_empty());
        assert!(endpoints(&req("none", &[("none", &[], "")]))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn bad_endpoint_requests_are_refused() {
        for r in [
            req("bridge", &[("bridge", &["a"], "")]),
            req("bridge", &[("bridge", &[], "172.28.0.9")]),
            req("app", &[("app", &[], "not-an-ip")]),
            req("app", &[("app", &["bad alias"], "")]),
            req("host", &[("app", &[], "")]),
            req("app", &[("host", &[], "")]),
        ] {
            assert!(
                matches!(endpoints(&r), Err(EngineError::Invalid(_))),
                "{r:?}"
            );
        }
    }
}
