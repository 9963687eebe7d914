//! The image index, `images/index.json`: which images exist (by id) with their manifest, layer
//! blobs and diff ids, and which tag points at which image. Written atomically (temp file,
//! fsync, rename, fsync dir); the store keeps it in memory behind a mutex.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::content::sync_dir;
use crate::error::IoContext;
use crate::ImageError;

const FORMAT_VERSION: u32 = 1;

/// What the store knows about one image besides its config blob.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct ImageRecord {
    /// Digest of the manifest blob (kept in the content store).
    pub manifest_digest: String,
    /// Digests of the layer blobs, bottom first.
    pub layers: Vec<String>,
    /// Digests of the uncompressed layers, bottom first (as in the config).
    pub diff_ids: Vec<String>,
    /// Bytes of unpacked layer data.
    pub size: i64,
    /// When the image entered the store (RFC 3339).
    pub added: String,
    /// `name@digest` references it was pulled by besides its own manifest digest (e.g. the
    /// digest of the index a pull picked it from).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pulled_digests: Vec<String>,
}

/// The persisted index.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Index {
    pub version: u32,
    /// Image id (`sha256:<config digest>`) -> record.
    pub images: BTreeMap<String, ImageRecord>,
    /// Familiar `name:tag` -> image id.
    pub tags: BTreeMap<String, String>,
}

impl Index {
    /// Loads the index at `path`, or an empty one when the file does not exist.
    pub fn load(path: &Path) -> Result<Self, ImageError> {
        match fs::read(path) {
            Ok(bytes) => {
                let idx: Index = serde_json::from_slice(&bytes).map_err(|e| {
                    ImageError::Corrupt(format!("{} is not a valid index: {e}", path.display()))
                })?;
                if idx.version != FORMAT_VERSION {
                    return Err(ImageError::Corrupt(format!(
                        "{} has format version {}, this berth reads {FORMAT_VERSION}",
                        path.display(),
                        idx.version
                    )));
                }
                Ok(idx)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Index {
                version: FORMAT_VERSION,
                ..Default::default()
            }),
            Err(e) => Err(ImageError::io(format!("reading {}", path.display()), e)),
        }
    }

    /// Writes the index to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<(), ImageError> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let tmp: PathBuf = dir.join(format!(".index.json.tmp-{}", std::process::id()));
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| ImageError::Corrupt(format!("serializing the index: {e}")))?;
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, path)
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(ImageError::io(format!("writing {}", path.display()), e));
        }
        sync_dir(dir)
    }

    /// Tags pointing at `id`, sorted.
    pub fn tags_of(&self, id: &str) -> Vec<String> {
        self.tags
            .iter()
            .filter(|(_, v)| v.as_str() == id)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Ids starting with `prefix` (hex, without `sha256:`).
    pub fn ids_with_prefix(&self, prefix: &str) -> Vec<String> {
        self.images
            .keys()
            .filter(|id| {
                id.strip_prefix(crate::digest::SHA256)
                    .is_some_and(|hex| hex.starts_with(prefix))
            })
            .cloned()
            .collect()
    }
}

/// Creates `<root>/images` and returns the index file path.
pub fn index_path(root: &Path) -> Result<PathBuf, ImageError> {
    let dir = root.join("images");
    fs::create_dir_all(&dir).ctx(|| format!("creating {}", dir.display()))?;
    Ok(dir.join("index.json"))
}
