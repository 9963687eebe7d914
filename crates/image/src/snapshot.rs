//! Snapshots: unpacked layers, one directory per chain id under
//! `snapshots/sha256/<chain hex>/` holding `fs/` (the layer's files, whiteouts already in
//! overlayfs form, usable as an overlay lowerdir) and `size` (bytes of file data). Identical
//! layer stacks share a chain id and so are unpacked once.

use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::content::sync_dir;
use crate::digest;
use crate::error::IoContext;
use crate::ImageError;

#[derive(Debug, Clone)]
pub struct SnapshotStore {
    dir: PathBuf,
}

/// Chain ids of a layer stack: `chain(0) = diff(0)`,
/// `chain(n) = sha256(chain(n-1) + " " + diff(n))`.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => {
                let h = Sha256::digest(format!("{prev} {d}").as_bytes());
                format!("{}{}", digest::SHA256, hex::encode(h))
            }
        };
        out.push(next);
    }
    out
}

impl SnapshotStore {
    /// Opens (creating) `<root>/snapshots/sha256`.
    pub fn open(root: &Path) -> Result<Self, ImageError> {
        let dir = root.join("snapshots").join("sha256");
        fs::create_dir_all(&dir).ctx(|| format!("creating {}", dir.display()))?;
        Ok(Self { dir })
    }

    fn path(&self, chain_id: &str) -> Result<PathBuf, ImageError> {
        Ok(self.dir.join(digest::hex_of(chain_id)?))
    }

    /// The unpacked layer directory (`.../fs`).
    pub fn fs_path(&self, chain_id: &str) -> Result<PathBuf, ImageError> {
        Ok(self.path(chain_id)?.join("fs"))
    }

    pub fn exists(&self, chain_id: &str) -> bool {
        self.fs_path(chain_id).map(|p| p.is_dir()).unwrap_or(false)
    }

    /// Bytes of file data in the snapshot (recorded when it was unpacked).
    pub fn size(&self, chain_id: &str) -> Result<u64, ImageError> {
        let p = self.path(chain_id)?.join("size");
        let text = fs::read_to_string(&p).ctx(|| format!("reading {}", p.display()))?;
        text.trim()
            .parse()
            .map_err(|_| ImageError::Corrupt(format!("{} does not hold a number", p.display())))
    }

    /// Moves a staged snapshot directory into place. Returns false (and removes `staged`) when
    /// the snapshot already existed.
    pub fn commit(&self, staged: &Path, chain_id: &str) -> Result<bool, ImageError> {
        let dst = self.path(chain_id)?;
        if dst.exists() {
            let _ = fs::remove_dir_all(staged);
            return Ok(false);
        }
        fs::rename(staged, &dst).ctx(|| format!("moving snapshot {chain_id} into place"))?;
        sync_dir(&self.dir)?;
        Ok(true)
    }

    /// Deletes a snapshot; returns its recorded size.
    pub fn remove(&self, chain_id: &str) -> Result<u64, ImageError> {
        let p = self.path(chain_id)?;
        if !p.exists() {
            return Ok(0);
        }
        let size = self.size(chain_id).unwrap_or(0);
        fs::remove_dir_all(&p).ctx(|| format!("removing {}", p.display()))?;
        Ok(size)
    }

    /// Chain ids of all snapshots present.
    pub fn list(&self) -> Result<Vec<String>, ImageError> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).ctx(|| format!("listing {}", self.dir.display()))? {
            let entry = entry.ctx(|| format!("listing {}", self.dir.display()))?;
            if let Some(name) = entry.file_name().to_str() {
                if digest::is_hex64(name) {
                    out.push(format!("{}{name}", digest::SHA256));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_spec() {
        let a = digest::sha256_of(b"a");
        let b = digest::sha256_of(b"b");
        let ids = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(ids[0], a);
        assert_eq!(ids[1], digest::sha256_of(format!("{a} {b}").as_bytes()));
    }
}
