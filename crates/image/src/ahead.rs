//! Unpacking a layer ahead of its commit: a pull feeds each layer's bytes to
//! [`crate::ImageStore::unpack_ahead`] while they are still arriving, so the layer's files are
//! written while the network delivers rather than after the whole blob is on disk.
//!
//! The result is an [`UnpackedLayer`]: a private directory under `tmp/` (`fs/` and `size`, as a
//! snapshot) plus the diff id of what was unpacked. Nothing is visible until the pull commits:
//! [`crate::pulled`] checks the diff id against the image config, moves the directory into the
//! commit's stage and from there into `snapshots/`, exactly as a layer unpacked at commit time.
//! A directory a failed pull leaves is removed by [`UnpackedLayer::discard`] (the puller) or,
//! after a crash, when the store is next opened.

use std::fs;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use rand::Rng as _;

use crate::digest::HashingReader;
use crate::error::IoContext;
use crate::unpack;
use crate::ImageError;

/// Name prefix of unpack-ahead directories under the store's `tmp/`.
pub(crate) const AHEAD_PREFIX: &str = "ahead-";

/// A layer unpacked before its image is committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackedLayer {
    /// Directory holding `fs/` (the unpacked files) and `size`.
    pub dir: PathBuf,
    /// sha256 of the uncompressed layer tar (checked against the config's diff id at commit).
    pub diff_id: String,
    /// Bytes of regular file data unpacked.
    pub size: u64,
}

impl UnpackedLayer {
    /// Removes the directory (a pull that failed or did not need it).
    pub fn discard(&self) {
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(dir = %self.dir.display(), error = %e, "could not remove an unpacked layer");
            }
        }
    }
}

/// Unpacks the (plain or gzip) layer tar `reader` into a new directory under `tmp_root`, hashing
/// the uncompressed stream. A plain (uncompressed) tar is not hashed: its diff id is
/// `blob_digest`, the digest the caller verifies the same bytes against (and must discard the
/// result if that fails). On failure the directory is removed; `what` names the layer.
pub(crate) fn unpack_ahead(
    tmp_root: &Path,
    reader: impl Read,
    blob_digest: &str,
    what: &str,
) -> Result<UnpackedLayer, ImageError> {
    let dir = tmp_root.join(format!(
        "{AHEAD_PREFIX}{:016x}",
        rand::thread_rng().gen::<u64>()
    ));
    let result = unpack_into(&dir, reader, blob_digest, what);
    if result.is_err() {
        let _ = fs::remove_dir_all(&dir);
    }
    result
}

fn unpack_into(
    dir: &Path,
    reader: impl Read,
    blob_digest: &str,
    what: &str,
) -> Result<UnpackedLayer, ImageError> {
    let fs_dir = dir.join("fs");
    fs::create_dir_all(&fs_dir).ctx(|| format!("creating {}", fs_dir.display()))?;
    let mut buffered = BufReader::with_capacity(1 << 20, reader);
    let plain = unpack::peek_compression(&mut buffered, what)? == unpack::Compression::None;
    let decompressed = unpack::decompressed(buffered, what)?;
    let (size, diff_id) = if plain {
        let mut rest = decompressed;
        let size = unpack::unpack_layer(&mut rest, &fs_dir, what)?;
        // Read to the end: the caller's stream must be consumed whole.
        std::io::copy(&mut rest, &mut std::io::sink())
            .map_err(|e| crate::stage::read_error(what, e))?;
        (size, blob_digest.to_string())
    } else {
        let mut hashing = HashingReader::new(decompressed);
        let size = unpack::unpack_layer(&mut hashing, &fs_dir, what)?;
        let (diff_id, _) = hashing
            .drain_and_finish()
            .map_err(|e| crate::stage::read_error(what, e))?;
        (size, diff_id)
    };
    fs::write(dir.join("size"), size.to_string()).ctx(|| format!("writing {}", dir.display()))?;
    Ok(UnpackedLayer {
        dir: dir.to_path_buf(),
        diff_id,
        size,
    })
}

/// Removes what an earlier process left in `tmp_root` (stages and unpack-ahead directories of
/// loads and pulls that never committed: the process died). Called when the store opens.
pub(crate) fn clear_leftovers(tmp_root: &Path) {
    let Ok(entries) = fs::read_dir(tmp_root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(AHEAD_PREFIX) || name.starts_with("stage-") {
            if let Err(e) = fs::remove_dir_all(entry.path()) {
                tracing::warn!(dir = %entry.path().display(), error = %e, "could not remove a leftover staging dir");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer_tar() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let data = b"hello ahead\n";
        let mut h = tar::Header::new_gnu();
        h.set_path("etc/greeting").unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        b.append(&h, &data[..]).unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn unpacks_and_reports_the_diff_id() {
        let tmp = tempfile::tempdir().unwrap();
        let tar = layer_tar();
        let digest = crate::digest::sha256_of(&tar);
        let got = unpack_ahead(tmp.path(), &tar[..], &digest, "layer t").unwrap();
        assert_eq!(got.diff_id, digest);
        assert_eq!(got.size, 12);
        assert_eq!(
            fs::read_to_string(got.dir.join("fs/etc/greeting")).unwrap(),
            "hello ahead\n"
        );
        got.discard();
        assert!(!got.dir.exists());
    }

    #[test]
    fn a_broken_stream_leaves_no_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let tar = layer_tar();
        // Cut inside the file's data: the tar reader fails.
        let err = unpack_ahead(tmp.path(), &tar[..600], "sha256:00", "layer t").unwrap_err();
        assert!(err.to_string().contains("layer t"), "{err}");
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);
    }

    #[test]
    fn leftovers_of_a_dead_process_are_cleared() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir_all(tmp.path().join("ahead-1/fs")).unwrap();
        fs::create_dir_all(tmp.path().join("stage-2/x")).unwrap();
        fs::write(tmp.path().join("keep"), "").unwrap();
        clear_leftovers(tmp.path());
        let left: Vec<_> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("keep")]);
    }
}
