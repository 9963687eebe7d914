//! Registering an image that a registry pull downloaded: the manifest and config bytes as the
//! registry served them (kept byte-for-byte so digests stay stable), and layer blobs that the
//! puller already verified against their digests into files on the store's filesystem. The
//! layers go through the same verification and unpacking as a load ([`crate::layer`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::ahead::UnpackedLayer;
use crate::config::{ImageConfigFile, Manifest};
use crate::digest;
use crate::index::ImageRecord;
use crate::layer::{stage_layers, LayerSource};
use crate::reference::normalize_tag;
use crate::stage::Stage;
use crate::store::{Inner, NewImage};
use crate::ImageError;

/// What a pull hands to [`crate::ImageStore::commit_pulled`].
#[derive(Debug, Clone, Default)]
pub struct PulledImage {
    /// The image manifest (not an index) as served.
    pub manifest: Vec<u8>,
    /// The config blob as served.
    pub config: Vec<u8>,
    /// Verified downloads by digest (files on the store's filesystem, moved into `content/`).
    /// Layers not listed here must already be in the content store.
    pub layer_files: BTreeMap<String, PathBuf>,
    /// Tag to point at the image (`localhost:5000/app:1`), if pulled by tag.
    pub tag: Option<String>,
    /// `name@digest` the image was pulled by, when that digest is not the manifest's own
    /// (an index).
    pub pulled_digest: Option<String>,
    /// Layers the puller unpacked while downloading them, by layer digest (see
    /// [`crate::ahead`]); the others are unpacked from their blobs at commit. Directories not
    /// taken are left to the puller to [`UnpackedLayer::discard`].
    pub unpacked: BTreeMap<String, UnpackedLayer>,
}

/// Stages a pulled image: verifies manifest, config and layers, unpacks missing snapshots.
pub(crate) fn stage_pulled(
    inner: &Inner,
    stage: &mut Stage,
    pulled: PulledImage,
) -> Result<NewImage, ImageError> {
    let manifest: Manifest = serde_json::from_slice(&pulled.manifest)
        .map_err(|e| ImageError::archive(format!("pulled manifest is not valid: {e}")))?;
    if manifest.schema_version != 2 {
        return Err(ImageError::Unsupported(format!(
            "manifest has schemaVersion {}, only 2 is supported",
            manifest.schema_version
        )));
    }
    let manifest_digest = stage.add_blob_bytes(&pulled.manifest)?;
    let cfg_digest = digest::sha256_of(&pulled.config);
    if cfg_digest != manifest.config.digest {
        return Err(ImageError::archive(format!(
            "config digest mismatch: expected {} got {cfg_digest}",
            manifest.config.digest
        )));
    }
    stage.add_blob_bytes(&pulled.config)?;
    let cfg = ImageConfigFile::parse(&pulled.config, &cfg_digest)?;
    let mut layers = Vec::new();
    for l in &manifest.layers {
        // A blob the store has (an earlier layer, or a concurrent pull of another image that
        // committed first) is used as stored; the download is then left to the puller to delete.
        let path = match pulled.layer_files.get(&l.digest) {
            _ if inner.content.exists(&l.digest) => inner.content.path(&l.digest)?,
            Some(p) => {
                stage.add_blob(&l.digest, p.clone());
                p.clone()
            }
            None => {
                return Err(ImageError::archive(format!(
                    "layer {} was neither downloaded nor in the store",
                    l.digest
                )))
            }
        };
        layers.push((path, l.digest.clone(), l.media_type.clone()));
    }
    let mut sources = LayerSource::from_triples(&layers);
    for source in &mut sources {
        source.unpacked = pulled.unpacked.get(source.digest);
    }
    let size = stage_layers(stage, &inner.snapshots, &sources, &cfg.rootfs.diff_ids)?;
    let tags = match &pulled.tag {
        Some(t) => vec![normalize_tag(t)?],
        None => Vec::new(),
    };
    Ok(NewImage {
        id: cfg_digest,
        record: ImageRecord {
            pulled_digests: pulled.pulled_digest.into_iter().collect(),
            manifest_digest,
            layers: layers.into_iter().map(|(_, d, _)| d).collect(),
            diff_ids: cfg.rootfs.diff_ids.clone(),
            size,
            added: crate::import::go_rfc3339_nano(chrono::Utc::now()),
        },
        tags,
    })
}
