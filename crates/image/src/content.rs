//! The content store: blobs addressed by sha256 digest under `content/blobs/sha256/<hex>`.
//!
//! Blobs only enter through [`ContentStore::commit`], which renames a file that was written and
//! verified elsewhere on the same filesystem (see [`crate::stage`]) into place and syncs the
//! directory, so a blob file is either complete and correct or absent.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::digest::{self, HashingReader};
use crate::error::IoContext;
use crate::ImageError;

/// Largest manifest/config/index blob read into memory.
pub const MAX_METADATA_BLOB: u64 = 16 << 20;

#[derive(Debug, Clone)]
pub struct ContentStore {
    blobs: PathBuf,
}

impl ContentStore {
    /// Opens (creating) `<root>/content/blobs/sha256`.
    pub fn open(root: &Path) -> Result<Self, ImageError> {
        let blobs = root.join("content").join("blobs").join("sha256");
        fs::create_dir_all(&blobs).ctx(|| format!("creating {}", blobs.display()))?;
        Ok(Self { blobs })
    }

    /// Where the blob with `digest` lives (whether or not it exists).
    pub fn path(&self, digest: &str) -> Result<PathBuf, ImageError> {
        Ok(self.blobs.join(digest::hex_of(digest)?))
    }

    pub fn exists(&self, digest: &str) -> bool {
        self.path(digest).map(|p| p.is_file()).unwrap_or(false)
    }

    /// Size in bytes of a stored blob.
    pub fn size(&self, digest: &str) -> Result<u64, ImageError> {
        let p = self.path(digest)?;
        match fs::metadata(&p) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ImageError::Corrupt(
                format!("blob {digest} is missing from the content store"),
            )),
            Err(e) => Err(ImageError::io(format!("reading {}", p.display()), e)),
        }
    }

    /// Opens a stored blob for streaming.
    pub fn open_blob(&self, digest: &str) -> Result<File, ImageError> {
        let p = self.path(digest)?;
        match File::open(&p) {
            Ok(f) => Ok(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ImageError::Corrupt(
                format!("blob {digest} is missing from the content store"),
            )),
            Err(e) => Err(ImageError::io(format!("opening {}", p.display()), e)),
        }
    }

    /// Reads a small blob (manifest, config) and verifies its digest.
    pub fn read_verified(&self, digest: &str) -> Result<Vec<u8>, ImageError> {
        let f = self.open_blob(digest)?;
        let mut r = HashingReader::new(f.take(MAX_METADATA_BLOB + 1));
        let mut buf = Vec::new();
        r.read_to_end(&mut buf)
            .ctx(|| format!("reading blob {digest}"))?;
        if buf.len() as u64 > MAX_METADATA_BLOB {
            return Err(ImageError::Corrupt(format!(
                "blob {digest} is larger than {MAX_METADATA_BLOB} bytes"
            )));
        }
        let (got, _) = r
            .drain_and_finish()
            .ctx(|| format!("reading blob {digest}"))?;
        if got != digest {
            return Err(ImageError::Corrupt(format!(
                "blob {digest} digest mismatch: expected {digest} got {got}"
            )));
        }
        Ok(buf)
    }

    /// Moves the verified file `tmp` (same filesystem) into place as `digest`. Returns true when
    /// the blob is new, false when it was already stored (then `tmp` is removed).
    pub fn commit(&self, tmp: &Path, digest: &str) -> Result<bool, ImageError> {
        let dst = self.path(digest)?;
        if dst.is_file() {
            let _ = fs::remove_file(tmp);
            return Ok(false);
        }
        fs::rename(tmp, &dst).ctx(|| format!("moving blob {digest} into the content store"))?;
        sync_dir(&self.blobs)?;
        Ok(true)
    }

    /// Deletes a blob; returns the bytes freed (0 when it was not there).
    pub fn remove(&self, digest: &str) -> Result<u64, ImageError> {
        let p = self.path(digest)?;
        let size = fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        match fs::remove_file(&p) {
            Ok(()) => Ok(size),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(ImageError::io(format!("removing {}", p.display()), e)),
        }
    }

    /// Digests of all stored blobs.
    pub fn list(&self) -> Result<Vec<String>, ImageError> {
        let mut out = Vec::new();
        for entry in
            fs::read_dir(&self.blobs).ctx(|| format!("listing {}", self.blobs.display()))?
        {
            let entry = entry.ctx(|| format!("listing {}", self.blobs.display()))?;
            if let Some(name) = entry.file_name().to_str() {
                if digest::is_hex64(name) {
                    out.push(format!("{}{name}", digest::SHA256));
                }
            }
        }
        Ok(out)
    }
}

/// Flushes the whole file system holding `path` (`syncfs`): one flush for the many files of
/// unpacked layers, where an `fsync` each would cost a journal commit per file.
pub fn sync_filesystem(path: &Path) -> Result<(), ImageError> {
    use std::os::fd::AsRawFd as _;
    let f = File::open(path).ctx(|| format!("opening {}", path.display()))?;
    nix::unistd::syncfs(f.as_raw_fd()).map_err(|e| {
        ImageError::io(
            format!("syncing the file system of {}", path.display()),
            e.into(),
        )
    })
}

/// fsyncs a directory so a rename in it is durable.
pub fn sync_dir(dir: &Path) -> Result<(), ImageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .ctx(|| format!("syncing {}", dir.display()))
}
