//! Named volumes: directories under `volumes/<name>/_data` with a `meta.json`, mounted into
//! containers with `-v NAME:/path`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use berth_engine_client::Volume;
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};
use crate::paths::write_atomic;

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
struct VolumeMeta {
    name: String,
    created_at: String,
    labels: BTreeMap<String, String>,
}

/// Docker's volume name rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid_volume_name(name: &str) -> bool {
    crate::names::valid_name(name)
}

pub struct Volumes {
    root: PathBuf,
}

impl Volumes {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    fn data(&self, name: &str) -> PathBuf {
        self.root.join(name).join("_data")
    }

    /// Creates the volume if it does not exist; returns it either way.
    pub fn create(&self, name: &str, labels: BTreeMap<String, String>) -> Result<Volume> {
        if !valid_volume_name(name) {
            return Err(EngineError::Invalid(format!(
                "invalid volume name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed and it needs at least 2 characters"
            )));
        }
        if let Ok(v) = self.get(name) {
            return Ok(v);
        }
        let dir = self.root.join(name);
        std::fs::create_dir_all(dir.join("_data"))?;
        let meta = VolumeMeta {
            name: name.to_string(),
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            labels,
        };
        write_atomic(
            &dir.join("meta.json"),
            &serde_json::to_vec_pretty(&meta).map_err(EngineError::internal)?,
        )?;
        self.get(name)
    }

    pub fn get(&self, name: &str) -> Result<Volume> {
        let meta: VolumeMeta = std::fs::read(self.root.join(name).join("meta.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| EngineError::NotFound(format!("no such volume: {name}")))?;
        Ok(Volume {
            name: meta.name,
            driver: "local".into(),
            mountpoint: self.data(name).display().to_string(),
            created_at: meta.created_at,
            labels: meta.labels,
            scope: "local".into(),
        })
    }

    pub fn list(&self) -> Vec<Volume> {
        let mut out: Vec<Volume> = std::fs::read_dir(&self.root)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter_map(|n| self.get(&n).ok())
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    pub fn path(&self, name: &str) -> Result<PathBuf> {
        self.get(name).map(|_| self.data(name))
    }

    /// Removes the volume and its data. The caller checks it is not in use.
    pub fn remove(&self, name: &str) -> Result<()> {
        self.get(name)?;
        std::fs::remove_dir_all(self.root.join(name))?;
        Ok(())
    }

    pub fn size(&self, name: &str) -> u64 {
        dir_size(&self.data(name))
    }
}

/// Docker's copy-up: a volume mounted for the first time over a directory of the image starts
/// with that directory's content. Only an empty volume is filled; symlinks on the way are not
/// followed (they could point outside the container from the host's side).
pub fn copy_up(rootfs: &Path, destination: &str, data: &Path) -> Result<()> {
    let is_empty = std::fs::read_dir(data)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false);
    if !is_empty {
        return Ok(());
    }
    let mut src = rootfs.to_path_buf();
    for part in destination
        .split('/')
        .filter(|p| !p.is_empty() && *p != "." && *p != "..")
    {
        src.push(part);
        match std::fs::symlink_metadata(&src) {
            Ok(m) if m.is_dir() => {}
            _ => return Ok(()),
        }
    }
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", src.display()))
        .arg(data)
        .status()
        .map_err(|e| EngineError::Internal(format!("copy image content into volume: {e}")))?;
    if !status.success() {
        return Err(EngineError::Internal(format!(
            "copying the image's {destination} into its volume failed"
        )));
    }
    Ok(())
}

/// Bytes used by the files under `path` (not following symlinks).
pub fn dir_size(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| dir_size(&e.path())).sum())
        .unwrap_or(0)
}
