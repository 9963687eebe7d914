//! Staging: everything a load or import writes goes first into a private directory
//! `<root>/tmp/<random>/` (same filesystem as the stores). Only once every blob is verified and
//! every layer unpacked does the store commit it (renames into `content/` and `snapshots/`, then
//! the index). Dropping a [`Stage`] removes whatever was not committed, so a failed load leaves
//! nothing behind.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use rand::Rng;

use crate::digest::{self, HashingWriter};
use crate::error::IoContext;
use crate::ImageError;

/// A layer unpacked in the stage, waiting to become `snapshots/sha256/<chain>`.
#[derive(Debug, Clone)]
pub struct StagedSnapshot {
    /// Directory holding `fs/` (the unpacked layer) and `size`.
    pub dir: PathBuf,
    pub size: u64,
}

/// A private staging directory plus what has been verified into it.
#[derive(Debug)]
pub struct Stage {
    dir: PathBuf,
    counter: u64,
    /// Verified blobs by digest.
    pub blobs: BTreeMap<String, PathBuf>,
    /// Unpacked layers by chain id.
    pub snapshots: BTreeMap<String, StagedSnapshot>,
}

impl Stage {
    /// Creates a fresh staging directory under `tmp_root`.
    pub fn new(tmp_root: &Path) -> Result<Self, ImageError> {
        let name = format!("stage-{:016x}", rand::thread_rng().gen::<u64>());
        let dir = tmp_root.join(name);
        fs::create_dir_all(&dir).ctx(|| format!("creating {}", dir.display()))?;
        Ok(Self {
            dir,
            counter: 0,
            blobs: BTreeMap::new(),
            snapshots: BTreeMap::new(),
        })
    }

    /// A fresh path inside the stage.
    pub fn temp_path(&mut self, prefix: &str) -> PathBuf {
        self.counter += 1;
        self.dir.join(format!("{prefix}-{}", self.counter))
    }

    /// Copies `reader` into a new staged file, hashing while writing, and fsyncs it. When
    /// `expected` is given and the content hashes differently, the file is removed and the
    /// error names `what`, the expected and the actual digest.
    pub fn write_file(
        &mut self,
        reader: &mut dyn Read,
        expected: Option<&str>,
        what: &str,
    ) -> Result<(PathBuf, String, u64), ImageError> {
        let path = self.temp_path("file");
        let file = File::create(&path).ctx(|| format!("creating {}", path.display()))?;
        let mut w = HashingWriter::new(io::BufWriter::new(file));
        let copied = io::copy(reader, &mut w);
        let (buf, got, len) = w.finish();
        let result = copied
            .map_err(|e| read_error(what, e))
            .and_then(|_| {
                let file = buf
                    .into_inner()
                    .map_err(|e| e.into_error())
                    .ctx(|| format!("writing {}", path.display()))?;
                file.sync_all()
                    .ctx(|| format!("syncing {}", path.display()))
            })
            .and_then(|_| match expected {
                Some(want) if want != got => Err(ImageError::archive(format!(
                    "{what} digest mismatch: expected {want} got {got}"
                ))),
                _ => Ok(()),
            });
        if let Err(e) = result {
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        Ok((path, got, len))
    }

    /// Stages an in-memory blob (a manifest or config we made) and registers it.
    pub fn add_blob_bytes(&mut self, bytes: &[u8]) -> Result<String, ImageError> {
        let digest = digest::sha256_of(bytes);
        if self.blobs.contains_key(&digest) {
            return Ok(digest);
        }
        let path = self.temp_path("blob");
        let mut f = File::create(&path).ctx(|| format!("creating {}", path.display()))?;
        f.write_all(bytes)
            .and_then(|_| f.sync_all())
            .ctx(|| format!("writing {}", path.display()))?;
        self.blobs.insert(digest.clone(), path);
        Ok(digest)
    }

    /// Registers an already staged and verified file as the blob `digest`.
    pub fn add_blob(&mut self, digest: &str, path: PathBuf) {
        self.blobs.entry(digest.to_string()).or_insert(path);
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(dir = %self.dir.display(), error = %e, "could not remove staging dir");
            }
        }
    }
}

/// Turns a read failure while copying archive content into a clear archive error.
pub fn read_error(what: &str, e: io::Error) -> ImageError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        ImageError::archive(format!("archive is truncated (while reading {what})"))
    } else {
        ImageError::archive(format!("reading {what}: {e}"))
    }
}
