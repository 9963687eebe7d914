//! Bridge networking in the engine: which network a container's `NetworkMode` names, the
//! release of a container's endpoint when it exits or is removed, the network API calls
//! (create/list/inspect/remove/prune) and their wire shapes.

use std::collections::BTreeMap;
use std::sync::Arc;

use berth_engine_client::{
    EndpointSettings, IpamConfig, NetworkContainer, NetworkCreate, NetworkCreated, NetworkInspect,
    NetworkIpam, NetworkPruneReport, NetworkSettings,
};
use berth_network::{CreateNetwork, Network, DEFAULT_NETWORK};

use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::record::ContainerRecord;

/// The bridge network a network mode names: `bridge` or a user network; `None` for `none`,
/// `host` and the empty/`default` mode (which is `none` in this version).
pub fn bridge_network(mode: &str) -> Option<&str> {
    match mode {
        "" | "none" | "host" | "default" => None,
        m if m.starts_with("container:") => None,
        m => Some(m),
    }
}

/// The `--network-alias`es of a create request: only for user-defined networks.
pub fn aliases(req: &berth_engine_client::ContainerCreate) -> Result<Vec<String>> {
    let mode = req.host_config.network_mode.as_str();
    let mut out = Vec::new();
    for (net, ep) in &req.networking_config.endpoints_config {
        if ep.aliases.is_empty() {
            continue;
        }
        if net != mode {
            return Err(EngineError::Invalid(format!(
                "aliases given for network {net:?} but the container joins {mode:?}"
            )));
        }
        if matches!(bridge_network(mode), None | Some(DEFAULT_NETWORK)) {
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
            out.push(a.clone());
        }
    }
    Ok(out)
}

/// `NetworkSettings` of `inspect`.
pub fn settings(rec: &ContainerRecord) -> NetworkSettings {
    let Some(a) = &rec.network else {
        return NetworkSettings::default();
    };
    let ep = EndpointSettings {
        network_id: a.network_id.clone(),
        endpoint_id: rec.id.clone(),
        gateway: a.gateway.to_string(),
        ip_address: a.ip.to_string(),
        ip_prefix_len: a.prefix as i64,
        mac_address: a.mac.clone(),
        aliases: rec.aliases.clone(),
    };
    NetworkSettings {
        ip_address: ep.ip_address.clone(),
        ip_prefix_len: ep.ip_prefix_len,
        gateway: ep.gateway.clone(),
        mac_address: ep.mac_address.clone(),
        sandbox_key: a.netns.display().to_string(),
        ports: rec.ports.clone(),
        networks: BTreeMap::from([(a.network_name.clone(), ep)]),
    }
}

impl Engine {
    /// Deletes the container's veth pair and namespace and frees its address, if it has any.
    pub(crate) async fn release_network(self: &Arc<Self>, id: &str) {
        let att = {
            let mut slots = self.lock();
            let Some(slot) = slots.get_mut(id) else {
                return;
            };
            for t in slot.port_tasks.drain(..) {
                t.abort();
            }
            slot.rec.ports.clear();
            slot.rec.network.take().map(|a| (a, slot.rec.clone()))
        };
        let Some((att, rec)) = att else {
            return;
        };
        let engine = self.clone();
        let id2 = id.to_string();
        let r = tokio::task::spawn_blocking(move || engine.networks.detach(&id2, &att)).await;
        if let Ok(Err(e)) = r {
            tracing::warn!(id, "cannot release the container's network endpoint: {e}");
        }
        if let Err(e) = rec.save(&self.paths.container(id)) {
            tracing::warn!(id, "cannot save container record: {e}");
        }
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
                            .and_then(|r| r.network.as_ref())
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
            .filter(|r| r.host_config.network_mode == n.name || r.host_config.network_mode == n.id)
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
        let used: std::collections::HashSet<String> = self
            .records()
            .into_iter()
            .map(|r| r.host_config.network_mode)
            .collect();
        let mut deleted = Vec::new();
        for n in self.networks.list() {
            if n.name == DEFAULT_NETWORK || used.contains(&n.name) || used.contains(&n.id) {
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
