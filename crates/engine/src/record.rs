//! The engine's durable record of a container (`containers/<id>/record.json`): what was asked
//! for, the effective config, and the engine's view of its state.

use std::path::Path;

use berth_engine_client::{ContainerConfig, ContainerState, HostConfig, MountPoint};
use serde::{Deserialize, Serialize};

use crate::paths::write_atomic;

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
    /// The container's endpoint on a bridge network while it runs (namespace, veth, address).
    #[serde(default)]
    pub network: Option<berth_network::Attachment>,
    /// `--network-alias`: extra names in the network's DNS.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Published ports while running, with the host ports actually bound.
    #[serde(default)]
    pub ports: std::collections::BTreeMap<String, Vec<berth_engine_client::PortBinding>>,
}

impl ContainerRecord {
    pub fn load(dir: &Path) -> std::io::Result<Self> {
        let bytes = std::fs::read(dir.join(RECORD_FILE))?;
        serde_json::from_slice(&bytes).map_err(std::io::Error::other)
    }

    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        write_atomic(&dir.join(RECORD_FILE), &bytes)
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
