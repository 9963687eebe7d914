//! The engine's durable record of a container (`containers/<id>/record.json`): what was asked
//! for, the effective config, and the engine's view of its state.

use std::path::Path;

use berth_engine_client::{ContainerConfig, ContainerState, HostConfig, MountPoint};
use serde::{Deserialize, Serialize};

use crate::paths::{write_atomic, write_atomic_nosync};

pub const RECORD_FILE: &str = "record.json";

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct ContainerRecord {
    pub id: String,
    /// Without the leading slash.
    pub name: String,
    pub created: String,
    pub image_id: String,
    pub config: ContainerConfig,
    pub host_config: HostConfig,
    pub mounts: Vec<MountPoint>,
    /// Resolved process identity.
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub state: ContainerState,
    pub restart_count: u32,
    /// Set by an explicit stop/kill; suppresses restart policies (and `unless-stopped` after an
    /// engine restart).
    pub manually_stopped: bool,
    pub monitor_pid: i32,
    /// Set once the container has been started at least once.
    pub has_been_started: bool,
    /// Volumes created for this container alone (`-v /path`, the image's VOLUMEs); removed
    /// with it by `rm -v` and `--rm`.
    #[serde(default)]
    pub anonymous_volumes: Vec<String>,
    /// The container's endpoints on bridge networks while it runs (namespace, veth, address),
    /// the first one carrying the default route. (`network`: one endpoint, older records.)
    #[serde(default, alias = "network", deserialize_with = "one_or_many")]
    pub networks: Vec<berth_network::Attachment>,
    /// `--network-alias` of older records (now in `endpoints`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// The bridge networks the container joins when it starts, in order (the first gets
    /// `eth0` and the default route); `None` in older records: the network mode alone.
    #[serde(default)]
    pub endpoints: Option<Vec<EndpointRequest>>,
    /// Published ports while running, with the host ports actually bound.
    #[serde(default)]
    pub ports: std::collections::BTreeMap<String, Vec<berth_engine_client::PortBinding>>,
}

/// A network the container joins at start: `--network`, `network connect`.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct EndpointRequest {
    /// The network's name or id as given.
    pub network: String,
    /// `--network-alias`: extra names in the network's DNS.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// `--ip`.
    #[serde(default)]
    pub ip: Option<std::net::Ipv4Addr>,
}

/// Reads `null`, one attachment, or a list of them.
fn one_or_many<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<berth_network::Attachment>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        Many(Vec<berth_network::Attachment>),
        One(Box<berth_network::Attachment>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => Vec::new(),
        Some(OneOrMany::Many(v)) => v,
        Some(OneOrMany::One(a)) => vec![*a],
    })
}

impl ContainerRecord {
    /// The bridge networks to join at start, in order.
    pub fn requested_endpoints(&self) -> Vec<EndpointRequest> {
        match &self.endpoints {
            Some(e) => e.clone(),
            None => crate::networking::bridge_network(&self.host_config.network_mode)
                .map(|n| {
                    vec![EndpointRequest {
                        network: n.to_string(),
                        aliases: self.aliases.clone(),
                        ip: None,
                    }]
                })
                .unwrap_or_default(),
        }
    }

    /// The endpoint request an attachment came from (for its aliases).
    pub fn endpoint_for(&self, att: &berth_network::Attachment) -> Option<EndpointRequest> {
        self.requested_endpoints().into_iter().find(|e| {
            e.network == att.network_name
                || (!e.network.is_empty() && att.network_id.starts_with(&e.network))
        })
    }

    /// The DNS aliases of the container on an attachment's network.
    pub fn aliases_on(&self, att: &berth_network::Attachment) -> Vec<String> {
        self.endpoint_for(att)
            .map(|e| e.aliases)
            .unwrap_or_default()
    }

    pub fn load(dir: &Path) -> std::io::Result<Self> {
        let bytes = std::fs::read(dir.join(RECORD_FILE))?;
        serde_json::from_slice(&bytes).map_err(std::io::Error::other)
    }

    /// Writes the record durably (fsynced): for its creation and configuration changes.
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        write_atomic(&dir.join(RECORD_FILE), &bytes)
    }

    /// Writes the record without an fsync: for run-state changes (started, exited, endpoints),
    /// which survive an engine crash (the rename is atomic) and which a power failure makes
    /// stale anyway — after a reboot no container runs and restore recomputes them.
    pub fn save_state(&self, dir: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        write_atomic_nosync(&dir.join(RECORD_FILE), &bytes)
    }

    pub fn short_id(&self) -> &str {
        &self.id[..12.min(self.id.len())]
    }

    pub fn cgroup_path(&self) -> String {
        format!("/berth/{}", self.id)
    }
}

/// Docker's zero time, used for never-started/never-finished timestamps.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";
