//! Layout of the engine's data directory (`--root`, default /var/lib/berth):
//!
//! ```text
//! content/, snapshots/, images/   image store (berth-image)
//! containers/<id>/                record.json (engine), monitor.json + state.json (monitor),
//!                                 config.json (OCI spec), container.log*, hosts, hostname,
//!                                 resolv.conf, upper/, work/, rootfs/ (overlay mount point)
//! runtime/                        libcontainer's per-container state
//! volumes/<name>/                 meta.json, _data/
//! networks/<id>.json, netns/<id>  bridge networks and container namespaces (berth-network)
//! tmp/                            uploads being staged
//! ```

use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct Paths {
    pub root: PathBuf,
}

impl Paths {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn containers(&self) -> PathBuf {
        self.root.join("containers")
    }

    pub fn container(&self, id: &str) -> PathBuf {
        self.containers().join(id)
    }

    pub fn runtime_state(&self) -> PathBuf {
        self.root.join("runtime")
    }

    pub fn volumes(&self) -> PathBuf {
        self.root.join("volumes")
    }

    pub fn volume(&self, name: &str) -> PathBuf {
        self.volumes().join(name)
    }

    pub fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub fn create_all(&self) -> std::io::Result<()> {
        for dir in [
            self.root.clone(),
            self.containers(),
            self.runtime_state(),
            self.volumes(),
            self.tmp(),
        ] {
            std::fs::create_dir_all(dir)?;
        }
        Ok(())
    }
}

/// Atomic file writes (temp file, fsync, rename), shared with the network state.
pub use berth_network::{write_atomic, write_atomic_nosync};
