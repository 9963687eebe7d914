//! Verifying and unpacking the layers of one image into a [`Stage`]: each layer blob is
//! decompressed, hashed (its diff id must match the config's) and, unless the snapshot for its
//! chain id already exists, unpacked into a staged snapshot directory.

use std::fs::{self, File};
use std::io::BufReader;
use std::path::Path;

use crate::digest::HashingReader;
use crate::error::IoContext;
use crate::snapshot::{chain_ids, SnapshotStore};
use crate::stage::{Stage, StagedSnapshot};
use crate::unpack;
use crate::ImageError;

/// One layer to stage: the blob file (already in the stage or anywhere readable), its digest and
/// media type (for messages).
pub struct LayerSource<'a> {
    pub path: &'a Path,
    pub digest: &'a str,
    pub media_type: &'a str,
}

impl<'a> LayerSource<'a> {
    /// Views a list of `(path, digest, media type)` triples as layer sources.
    pub fn from_triples(layers: &'a [(std::path::PathBuf, String, String)]) -> Vec<Self> {
        layers
            .iter()
            .map(|(path, digest, media_type)| LayerSource {
                path,
                digest,
                media_type,
            })
            .collect()
    }
}

/// Verifies every layer against `diff_ids` and unpacks those whose snapshot is missing.
/// Returns the total unpacked size of the image's layers.
pub fn stage_layers(
    stage: &mut Stage,
    snapshots: &SnapshotStore,
    layers: &[LayerSource<'_>],
    diff_ids: &[String],
) -> Result<i64, ImageError> {
    if layers.len() != diff_ids.len() {
        return Err(ImageError::archive(format!(
            "image has {} layers but its config lists {} diff ids",
            layers.len(),
            diff_ids.len()
        )));
    }
    let chains = chain_ids(diff_ids);
    let mut total: u64 = 0;
    for ((layer, diff_id), chain) in layers.iter().zip(diff_ids).zip(&chains) {
        let what = format!("layer {} ({})", layer.digest, layer.media_type);
        let file = File::open(layer.path).ctx(|| format!("opening {}", layer.path.display()))?;
        let reader = unpack::decompressed(BufReader::new(file), &what)?;
        let mut hashing = HashingReader::new(reader);
        let already = stage.snapshots.get(chain).map(|s| s.size).or_else(|| {
            if snapshots.exists(chain) {
                snapshots.size(chain).ok()
            } else {
                None
            }
        });
        let staged = match already {
            Some(size) => {
                total += size;
                None
            }
            None => {
                let dir = stage.temp_path("snapshot");
                let fs_dir = dir.join("fs");
                fs::create_dir_all(&fs_dir).ctx(|| format!("creating {}", fs_dir.display()))?;
                let size = unpack::unpack_layer(&mut hashing, &fs_dir, &what)?;
                total += size;
                Some(StagedSnapshot { dir, size })
            }
        };
        let (got, _) = hashing
            .drain_and_finish()
            .map_err(|e| crate::stage::read_error(&what, e))?;
        if &got != diff_id {
            return Err(ImageError::archive(format!(
                "{what}: uncompressed content digest mismatch: expected {diff_id} (config diff id) got {got}"
            )));
        }
        if let Some(s) = staged {
            fs::write(s.dir.join("size"), s.size.to_string())
                .ctx(|| format!("writing {}", s.dir.display()))?;
            stage.snapshots.insert(chain.clone(), s);
        }
    }
    Ok(i64::try_from(total).unwrap_or(i64::MAX))
}
