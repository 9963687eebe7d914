//! `docker import`-style images: a root filesystem (a tar, plain or gzip, or a directory)
//! becomes a one-layer image with an uncompressed layer blob and a minimal config (os linux,
//! the host architecture, the default `PATH`, no `Cmd`).

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use crate::config::{
    self, Descriptor, History, ImageConfigFile, Manifest, RootFsConfig, RunConfig,
};
use crate::error::IoContext;
use crate::index::ImageRecord;
use crate::layer::{stage_layers, LayerSource};
use crate::stage::Stage;
use crate::store::{Inner, NewImage};
use crate::unpack;
use crate::ImageError;

/// `PATH` every imported image gets, as Docker sets it.
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Stages a rootfs tar as a new image tagged `tag` (already normalized).
pub(crate) fn stage_rootfs(
    inner: &Inner,
    stage: &mut Stage,
    tar: impl Read,
    tag: String,
) -> Result<NewImage, ImageError> {
    let mut input = unpack::decompressed(BufReader::new(tar), "import tar")?;
    let (layer_path, diff_id, len) = stage.write_file(&mut input, None, "import tar")?;
    if len == 0 {
        return Err(ImageError::archive("import tar is empty"));
    }
    let size = stage_layers(
        stage,
        &inner.snapshots,
        &[LayerSource {
            path: &layer_path,
            digest: &diff_id,
            media_type: config::OCI_LAYER_TAR,
            unpacked: None,
        }],
        std::slice::from_ref(&diff_id),
    )?;
    stage.add_blob(&diff_id, layer_path);

    let now = go_rfc3339_nano(chrono::Utc::now());
    let cfg = ImageConfigFile {
        created: Some(now.clone()),
        architecture: config::host_architecture().to_string(),
        os: "linux".to_string(),
        variant: None,
        config: RunConfig {
            env: Some(vec![DEFAULT_PATH.to_string()]),
            ..Default::default()
        },
        rootfs: RootFsConfig {
            kind: "layers".to_string(),
            diff_ids: vec![diff_id.clone()],
        },
        history: vec![History {
            created: Some(now.clone()),
            created_by: Some("berth import".to_string()),
            comment: Some("imported from a root filesystem".to_string()),
            empty_layer: false,
        }],
    };
    let cfg_bytes = serde_json::to_vec(&cfg)
        .map_err(|e| ImageError::Corrupt(format!("serializing config: {e}")))?;
    let id = stage.add_blob_bytes(&cfg_bytes)?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(config::OCI_MANIFEST.to_string()),
        config: Descriptor {
            media_type: config::OCI_CONFIG.to_string(),
            digest: id.clone(),
            size: cfg_bytes.len() as i64,
            ..Default::default()
        },
        layers: vec![Descriptor {
            media_type: config::OCI_LAYER_TAR.to_string(),
            digest: diff_id.clone(),
            size: i64::try_from(len).unwrap_or(i64::MAX),
            ..Default::default()
        }],
        annotations: Default::default(),
    };
    let manifest_bytes = serde_json::to_vec(&manifest)
        .map_err(|e| ImageError::Corrupt(format!("serializing manifest: {e}")))?;
    let manifest_digest = stage.add_blob_bytes(&manifest_bytes)?;
    Ok(NewImage {
        id,
        record: ImageRecord {
            pulled_digests: Vec::new(),
            manifest_digest,
            layers: vec![diff_id.clone()],
            diff_ids: vec![diff_id],
            size,
            added: now,
        },
        tags: vec![tag],
    })
}

/// RFC 3339 with nanoseconds, trailing zeros trimmed, as Go's `time.RFC3339Nano` writes it,
/// so tools that re-encode the config (skopeo converting to OCI) produce the same bytes and the
/// image id survives the trip.
pub fn go_rfc3339_nano(t: chrono::DateTime<chrono::Utc>) -> String {
    let secs = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = t.timestamp_subsec_nanos();
    if nanos == 0 {
        return format!("{secs}Z");
    }
    let frac = format!("{nanos:09}");
    format!("{secs}.{}Z", frac.trim_end_matches('0'))
}

/// Stages a directory tree (tarred with modes, owners, mtimes, symlinks and device nodes) as
/// a new image tagged `tag`.
pub(crate) fn stage_dir(
    inner: &Inner,
    stage: &mut Stage,
    dir: &Path,
    tag: String,
) -> Result<NewImage, ImageError> {
    if !dir.is_dir() {
        return Err(ImageError::io(
            format!("importing {}", dir.display()),
            std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory"),
        ));
    }
    let tar_path = stage.temp_path("dir-tar");
    {
        let file = File::create(&tar_path).ctx(|| format!("creating {}", tar_path.display()))?;
        let mut builder = tar::Builder::new(BufWriter::new(file));
        builder.follow_symlinks(false);
        builder.mode(tar::HeaderMode::Complete);
        builder
            .append_dir_all("", dir)
            .ctx(|| format!("archiving {}", dir.display()))?;
        let mut w = builder
            .into_inner()
            .ctx(|| format!("archiving {}", dir.display()))?;
        w.flush()
            .ctx(|| format!("writing {}", tar_path.display()))?;
    }
    let file = File::open(&tar_path).ctx(|| format!("opening {}", tar_path.display()))?;
    stage_rootfs(inner, stage, file, tag)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn times_look_like_go() {
        let t = chrono::Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        assert_eq!(go_rfc3339_nano(t), "2023-11-14T22:13:20Z");
        let t = chrono::Utc
            .timestamp_opt(1_700_000_000, 16_935_790)
            .unwrap();
        assert_eq!(go_rfc3339_nano(t), "2023-11-14T22:13:20.01693579Z");
    }
}
