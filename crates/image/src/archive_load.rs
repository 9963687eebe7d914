//! Loading images from a `docker save` archive (manifest.json with `<id>/layer.tar` or
//! `blobs/sha256/` paths), an OCI image layout tar (oci-layout, index.json, blobs/), or an OCI
//! layout directory. Archives made by Docker 25+ are both; then the OCI side is read (every blob
//! is verified against its digest) and `RepoTags` from manifest.json add to the annotations.
//!
//! The archive is first extracted into the stage (each file hashed while written, truncation
//! detected); then every image's config and layers are verified and the layers unpacked. Only
//! when all of that succeeds does the store commit anything.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::{Component, Path, PathBuf};

use crate::config::{
    self, Descriptor, DockerArchiveEntry, ImageConfigFile, Index, Manifest, ANNOTATION_IMAGE_NAME,
    ANNOTATION_REF_NAME,
};
use crate::content::MAX_METADATA_BLOB;
use crate::digest::{self, HashingReader, HashingWriter};
use crate::error::IoContext;
use crate::index::ImageRecord;
use crate::layer::{stage_layers, LayerSource};
use crate::reference::normalize_tag;
use crate::stage::{read_error, Stage};
use crate::store::{Inner, NewImage};
use crate::unpack::{self, sanitize, Compression};
use crate::ImageError;

/// Most link hops followed when resolving a path inside an archive.
const MAX_LINK_HOPS: usize = 16;
/// Most nested indexes followed.
const MAX_INDEX_DEPTH: usize = 4;

/// Stages every image of an archive stream.
pub(crate) fn stage_archive(
    inner: &Inner,
    stage: &mut Stage,
    archive: impl Read,
) -> Result<Vec<NewImage>, ImageError> {
    let reader = unpack::decompressed(BufReader::new(archive), "image archive")?;
    let root = stage.temp_path("archive");
    fs::create_dir_all(&root).ctx(|| format!("creating {}", root.display()))?;
    let src = extract(reader, root)?;
    stage_source(inner, stage, &src)
}

/// Stages every image of an OCI layout directory.
pub(crate) fn stage_dir(
    inner: &Inner,
    stage: &mut Stage,
    dir: &Path,
) -> Result<Vec<NewImage>, ImageError> {
    if !dir.join("index.json").is_file() {
        return Err(ImageError::archive(format!(
            "{} is not an OCI image layout: it has no index.json",
            dir.display()
        )));
    }
    let src = Source {
        root: dir.to_path_buf(),
        links: HashMap::new(),
        hashes: HashMap::new(),
        in_stage: false,
    };
    stage_source(inner, stage, &src)
}

/// Files of an archive (extracted into the stage) or of a layout directory.
struct Source {
    root: PathBuf,
    /// Symlinks and hardlinks of the archive: path -> target, both relative to the root.
    links: HashMap<PathBuf, PathBuf>,
    /// sha256 of each extracted file.
    hashes: HashMap<PathBuf, String>,
    /// True when the files live in the stage and may be moved into the store.
    in_stage: bool,
}

impl Source {
    fn resolve(&self, rel: &str) -> Result<PathBuf, ImageError> {
        let mut p = sanitize(Path::new(rel))
            .filter(|p| !p.as_os_str().is_empty())
            .ok_or_else(|| ImageError::archive(format!("path {rel:?} escapes the archive")))?;
        for _ in 0..MAX_LINK_HOPS {
            match self.links.get(&p) {
                Some(target) => p = target.clone(),
                None => return Ok(p),
            }
        }
        Err(ImageError::archive(format!(
            "too many links resolving {rel}"
        )))
    }

    fn exists(&self, rel: &str) -> bool {
        self.resolve(rel)
            .map(|p| self.root.join(p).is_file())
            .unwrap_or(false)
    }

    fn path(&self, rel: &str) -> Result<PathBuf, ImageError> {
        let p = self.root.join(self.resolve(rel)?);
        if p.is_file() {
            Ok(p)
        } else {
            Err(ImageError::archive(format!(
                "archive is truncated or incomplete: {rel} is missing"
            )))
        }
    }

    fn read_small(&self, rel: &str) -> Result<Vec<u8>, ImageError> {
        let p = self.path(rel)?;
        let f = File::open(&p).ctx(|| format!("opening {}", p.display()))?;
        let mut buf = Vec::new();
        f.take(MAX_METADATA_BLOB + 1)
            .read_to_end(&mut buf)
            .ctx(|| format!("reading {}", p.display()))?;
        if buf.len() as u64 > MAX_METADATA_BLOB {
            return Err(ImageError::archive(format!(
                "{rel} is larger than {MAX_METADATA_BLOB} bytes"
            )));
        }
        Ok(buf)
    }

    /// Verifies the file `rel` (against `expected` when given) and registers it as a staged
    /// blob. Returns the staged path and the digest.
    fn stage_blob(
        &self,
        stage: &mut Stage,
        rel: &str,
        expected: Option<&str>,
        what: &str,
    ) -> Result<(PathBuf, String), ImageError> {
        let path = self.path(rel)?;
        if self.in_stage {
            let resolved = self.resolve(rel)?;
            let got = match self.hashes.get(&resolved) {
                Some(d) => d.clone(),
                None => {
                    let f = File::open(&path).ctx(|| format!("opening {}", path.display()))?;
                    HashingReader::new(f)
                        .drain_and_finish()
                        .ctx(|| format!("reading {}", path.display()))?
                        .0
                }
            };
            if let Some(want) = expected {
                if want != got {
                    return Err(ImageError::archive(format!(
                        "{what} digest mismatch: expected {want} got {got}"
                    )));
                }
            }
            stage.add_blob(&got, path.clone());
            Ok((path, got))
        } else {
            let mut f = File::open(&path).ctx(|| format!("opening {}", path.display()))?;
            let (staged, got, _) = stage.write_file(&mut f, expected, what)?;
            stage.add_blob(&got, staged.clone());
            Ok((staged, got))
        }
    }
}

/// Extracts the regular files of an archive under `root`, hashing each, and records its links.
fn extract(reader: impl Read, root: PathBuf) -> Result<Source, ImageError> {
    let mut src = Source {
        root,
        links: HashMap::new(),
        hashes: HashMap::new(),
        in_stage: true,
    };
    let mut archive = tar::Archive::new(reader);
    let entries = archive
        .entries()
        .map_err(|e| ImageError::archive(format!("reading the archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| outer_error("the archive", e))?;
        let raw = entry
            .path()
            .map_err(|e| ImageError::archive(format!("bad path in archive: {e}")))?
            .into_owned();
        let rel = sanitize(&raw).ok_or_else(|| {
            ImageError::archive(format!("archive entry {} escapes with `..`", raw.display()))
        })?;
        if rel.as_os_str().is_empty() {
            continue;
        }
        let kind = entry.header().entry_type();
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let dst = src.root.join(&rel);
                if let Some(parent) = dst.parent() {
                    fs::create_dir_all(parent).ctx(|| format!("creating {}", parent.display()))?;
                }
                let declared = entry.size();
                let what = rel.display().to_string();
                let file = File::create(&dst).ctx(|| format!("creating {}", dst.display()))?;
                let mut w = HashingWriter::new(io::BufWriter::new(file));
                let copied = io::copy(&mut entry, &mut w).map_err(|e| read_error(&what, e))?;
                if copied != declared {
                    return Err(ImageError::archive(format!(
                        "archive is truncated: {what} has {copied} of {declared} bytes"
                    )));
                }
                let (buf, digest, _) = w.finish();
                let file = buf
                    .into_inner()
                    .map_err(|e| e.into_error())
                    .ctx(|| format!("writing {}", dst.display()))?;
                file.sync_all()
                    .ctx(|| format!("syncing {}", dst.display()))?;
                src.links.remove(&rel);
                src.hashes.insert(rel, digest);
            }
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(|e| ImageError::archive(format!("bad link in archive: {e}")))?
                    .ok_or_else(|| {
                        ImageError::archive(format!("link {} has no target", rel.display()))
                    })?
                    .into_owned();
                let base = if kind == tar::EntryType::Symlink && !target.is_absolute() {
                    rel.parent().unwrap_or(Path::new("")).to_path_buf()
                } else {
                    PathBuf::new()
                };
                let resolved = join_inside(&base, &target).ok_or_else(|| {
                    ImageError::archive(format!(
                        "link {} -> {} leads outside the archive",
                        rel.display(),
                        target.display()
                    ))
                })?;
                src.links.insert(rel, resolved);
            }
            _ => {}
        }
    }
    io::copy(&mut archive.into_inner(), &mut io::sink())
        .map_err(|e| read_error("the end of the archive", e))?;
    Ok(src)
}

/// `base/target` normalized, or None if `..` climbs above the root.
fn join_inside(base: &Path, target: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in base.components().chain(target.components()) {
        match c {
            Component::Normal(p) => out.push(p),
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir => out = PathBuf::new(),
            Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Some(out)
}

fn outer_error(what: &str, e: io::Error) -> ImageError {
    if e.kind() == io::ErrorKind::UnexpectedEof || e.to_string().contains("failed to read entire") {
        ImageError::archive(format!("archive is truncated (while reading {what})"))
    } else {
        ImageError::archive(format!("reading {what}: {e}"))
    }
}

fn stage_source(
    inner: &Inner,
    stage: &mut Stage,
    src: &Source,
) -> Result<Vec<NewImage>, ImageError> {
    let docker_entries: Vec<DockerArchiveEntry> = if src.exists("manifest.json") {
        serde_json::from_slice(&src.read_small("manifest.json")?)
            .map_err(|e| ImageError::archive(format!("manifest.json is not valid: {e}")))?
    } else {
        Vec::new()
    };
    let images = if src.exists("index.json") {
        let mut tags_by_config: HashMap<String, Vec<String>> = HashMap::new();
        for e in &docker_entries {
            if let Some(d) = expected_digest(&e.config) {
                tags_by_config
                    .entry(d)
                    .or_default()
                    .extend(normalize_tags(e.repo_tags.as_deref().unwrap_or_default())?);
            }
        }
        load_oci(inner, stage, src, &tags_by_config)?
    } else if src.exists("manifest.json") {
        load_docker(inner, stage, src, &docker_entries)?
    } else {
        return Err(ImageError::archive(
            "not an image archive: it has neither manifest.json (docker-archive) nor index.json \
             (OCI layout); it may also be truncated",
        ));
    };
    if images.is_empty() {
        return Err(ImageError::archive("the archive holds no images"));
    }
    Ok(images)
}

/// `sha256:<hex>` when a path names its content (`blobs/sha256/<hex>`, `<hex>.json`).
fn expected_digest(path: &str) -> Option<String> {
    let name = path.rsplit('/').next()?;
    let hex = name.strip_suffix(".json").unwrap_or(name);
    let in_blobs = path.contains("blobs/sha256/");
    let legacy_config = name.ends_with(".json") && !path.contains('/');
    if digest::is_hex64(hex) && (in_blobs || legacy_config) {
        Some(format!("{}{hex}", digest::SHA256))
    } else {
        None
    }
}

fn normalize_tags(tags: &[String]) -> Result<Vec<String>, ImageError> {
    tags.iter()
        .map(|t| {
            normalize_tag(t)
                .map_err(|e| ImageError::archive(format!("bad tag {t:?} in manifest.json: {e}")))
        })
        .collect()
}

fn blob_path(digest: &str) -> Result<String, ImageError> {
    let hex = digest::hex_of(digest).map_err(|_| {
        ImageError::Unsupported(format!(
            "blob digest {digest:?}: only sha256 digests are supported"
        ))
    })?;
    Ok(format!("blobs/sha256/{hex}"))
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

fn push_image(out: &mut Vec<NewImage>, img: NewImage) {
    match out.iter_mut().find(|i| i.id == img.id) {
        Some(existing) => {
            for t in img.tags {
                if !existing.tags.contains(&t) {
                    existing.tags.push(t);
                }
            }
        }
        None => out.push(img),
    }
}

// ---- OCI layout ----------------------------------------------------------------------------

fn load_oci(
    inner: &Inner,
    stage: &mut Stage,
    src: &Source,
    tags_by_config: &HashMap<String, Vec<String>>,
) -> Result<Vec<NewImage>, ImageError> {
    if src.exists("oci-layout") {
        let layout: serde_json::Value = serde_json::from_slice(&src.read_small("oci-layout")?)
            .map_err(|e| ImageError::archive(format!("oci-layout is not valid JSON: {e}")))?;
        if layout
            .get("imageLayoutVersion")
            .and_then(|v| v.as_str())
            .is_none()
        {
            return Err(ImageError::archive("oci-layout has no imageLayoutVersion"));
        }
    }
    let index: Index = serde_json::from_slice(&src.read_small("index.json")?)
        .map_err(|e| ImageError::archive(format!("index.json is not valid: {e}")))?;
    let mut out = Vec::new();
    for desc in &index.manifests {
        let tags = annotation_tags(&desc.annotations);
        let (mdesc, bytes) = pick_manifest(stage, src, desc, 0)?;
        let mut img = stage_manifest(inner, stage, src, &mdesc, &bytes)?;
        img.tags.extend(tags);
        if let Some(extra) = tags_by_config.get(&img.id) {
            img.tags.extend(extra.iter().cloned());
        }
        push_image(&mut out, img);
    }
    Ok(out)
}

/// Tags from an index entry: the full name containerd and Docker write, or a ref name that is
/// a whole reference. A bare ref name (only a tag, as `skopeo`/`umoci` write) names no
/// repository, so it gives no tag.
fn annotation_tags(annotations: &BTreeMap<String, String>) -> Vec<String> {
    let candidate = annotations.get(ANNOTATION_IMAGE_NAME).or_else(|| {
        annotations
            .get(ANNOTATION_REF_NAME)
            .filter(|r| r.contains(':') || r.contains('/'))
    });
    match candidate.map(|c| normalize_tag(c)) {
        Some(Ok(tag)) => vec![tag],
        Some(Err(e)) => {
            tracing::warn!(error = %e, "ignoring bad image name annotation");
            Vec::new()
        }
        None => Vec::new(),
    }
}

/// Follows (nested) indexes to the image manifest for this host's platform. Stages and
/// verifies the manifest blob; returns its descriptor and bytes.
fn pick_manifest(
    stage: &mut Stage,
    src: &Source,
    desc: &Descriptor,
    depth: usize,
) -> Result<(Descriptor, Vec<u8>), ImageError> {
    if depth > MAX_INDEX_DEPTH {
        return Err(ImageError::archive("indexes nested too deeply"));
    }
    let rel = blob_path(&desc.digest)?;
    let what = format!("manifest {}", desc.digest);
    let (path, _) = src.stage_blob(stage, &rel, Some(&desc.digest), &what)?;
    let bytes = fs::read(&path).ctx(|| format!("reading {}", path.display()))?;
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| ImageError::archive(format!("{what} is not valid JSON: {e}")))?;
    let is_index = matches!(
        desc.media_type.as_str(),
        config::OCI_INDEX | config::DOCKER_MANIFEST_LIST
    ) || (value.get("manifests").is_some() && value.get("layers").is_none());
    if !is_index {
        return Ok((desc.clone(), bytes));
    }
    let index: Index = serde_json::from_value(value)
        .map_err(|e| ImageError::archive(format!("index {} is not valid: {e}", desc.digest)))?;
    let arch = config::host_architecture();
    let chosen = index
        .for_this_platform()
        .or_else(|| (index.manifests.len() == 1).then(|| &index.manifests[0]))
        .ok_or_else(|| {
            ImageError::Unsupported(format!("index {} has no linux/{arch} image", desc.digest))
        })?;
    pick_manifest(stage, src, chosen, depth + 1)
}

fn stage_manifest(
    inner: &Inner,
    stage: &mut Stage,
    src: &Source,
    mdesc: &Descriptor,
    bytes: &[u8],
) -> Result<NewImage, ImageError> {
    let manifest: Manifest = serde_json::from_slice(bytes)
        .map_err(|e| ImageError::archive(format!("manifest {} is not valid: {e}", mdesc.digest)))?;
    if manifest.schema_version != 2 {
        return Err(ImageError::Unsupported(format!(
            "manifest {} has schemaVersion {}, only 2 is supported",
            mdesc.digest, manifest.schema_version
        )));
    }
    let cfg_digest = manifest.config.digest.clone();
    let (cfg_path, _) = src.stage_blob(
        stage,
        &blob_path(&cfg_digest)?,
        Some(&cfg_digest),
        &format!("config {cfg_digest}"),
    )?;
    let cfg_bytes = fs::read(&cfg_path).ctx(|| format!("reading {}", cfg_path.display()))?;
    let cfg = ImageConfigFile::parse(&cfg_bytes, &cfg_digest)?;
    let mut staged_layers = Vec::new();
    for l in &manifest.layers {
        let (path, digest) = src.stage_blob(
            stage,
            &blob_path(&l.digest)?,
            Some(&l.digest),
            &format!("blob {}", l.digest),
        )?;
        staged_layers.push((path, digest, l.media_type.clone()));
    }
    let sources = LayerSource::from_triples(&staged_layers);
    let size = stage_layers(stage, &inner.snapshots, &sources, &cfg.rootfs.diff_ids)?;
    Ok(NewImage {
        id: cfg_digest,
        record: ImageRecord {
            pulled_digests: Vec::new(),
            manifest_digest: mdesc.digest.clone(),
            layers: staged_layers.into_iter().map(|(_, d, _)| d).collect(),
            diff_ids: cfg.rootfs.diff_ids.clone(),
            size,
            added: now(),
        },
        tags: Vec::new(),
    })
}

// ---- docker-archive ------------------------------------------------------------------------

fn load_docker(
    inner: &Inner,
    stage: &mut Stage,
    src: &Source,
    entries: &[DockerArchiveEntry],
) -> Result<Vec<NewImage>, ImageError> {
    let mut out = Vec::new();
    for e in entries {
        let expected = expected_digest(&e.config);
        let (cfg_path, id) = src.stage_blob(
            stage,
            &e.config,
            expected.as_deref(),
            &format!("config {}", e.config),
        )?;
        let cfg_bytes = fs::read(&cfg_path).ctx(|| format!("reading {}", cfg_path.display()))?;
        let cfg = ImageConfigFile::parse(&cfg_bytes, &e.config)?;
        let mut staged_layers = Vec::new();
        let mut descriptors = Vec::new();
        for l in &e.layers {
            let expected = expected_digest(l);
            let (path, digest) =
                src.stage_blob(stage, l, expected.as_deref(), &format!("layer {l}"))?;
            let mut head = [0u8; 8];
            let n = File::open(&path)
                .and_then(|mut f| f.read(&mut head))
                .ctx(|| format!("reading {}", path.display()))?;
            let compression = Compression::detect(&head[..n]);
            let media_type = compression.oci_layer_media_type().to_string();
            let size = fs::metadata(&path)
                .ctx(|| format!("reading {}", path.display()))?
                .len();
            descriptors.push(Descriptor {
                media_type: media_type.clone(),
                digest: digest.clone(),
                size: i64::try_from(size).unwrap_or(i64::MAX),
                ..Default::default()
            });
            staged_layers.push((path, digest, media_type));
        }
        let sources = LayerSource::from_triples(&staged_layers);
        let size = stage_layers(stage, &inner.snapshots, &sources, &cfg.rootfs.diff_ids)?;
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(config::OCI_MANIFEST.to_string()),
            config: Descriptor {
                media_type: config::OCI_CONFIG.to_string(),
                digest: id.clone(),
                size: cfg_bytes.len() as i64,
                ..Default::default()
            },
            layers: descriptors,
            annotations: BTreeMap::new(),
        };
        let manifest_bytes = serde_json::to_vec(&manifest)
            .map_err(|e| ImageError::Corrupt(format!("serializing manifest: {e}")))?;
        let manifest_digest = stage.add_blob_bytes(&manifest_bytes)?;
        push_image(
            &mut out,
            NewImage {
                id,
                record: ImageRecord {
                    pulled_digests: Vec::new(),
                    manifest_digest,
                    layers: staged_layers.into_iter().map(|(_, d, _)| d).collect(),
                    diff_ids: cfg.rootfs.diff_ids.clone(),
                    size,
                    added: now(),
                },
                tags: normalize_tags(e.repo_tags.as_deref().unwrap_or_default())?,
            },
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_links_inside() {
        assert_eq!(
            join_inside(Path::new("a"), Path::new("../b/layer.tar")),
            Some(PathBuf::from("b/layer.tar"))
        );
        assert_eq!(join_inside(Path::new("a"), Path::new("../../x")), None);
        assert_eq!(
            join_inside(Path::new("a"), Path::new("/x/y")),
            Some(PathBuf::from("x/y"))
        );
    }

    #[test]
    fn expected_digests_from_paths() {
        let hex = "a".repeat(64);
        assert_eq!(
            expected_digest(&format!("blobs/sha256/{hex}")),
            Some(format!("sha256:{hex}"))
        );
        assert_eq!(
            expected_digest(&format!("{hex}.json")),
            Some(format!("sha256:{hex}"))
        );
        assert_eq!(expected_digest(&format!("{hex}/layer.tar")), None);
    }
}
