//! [`ImageStore`]: the public face of the crate. It ties the content store, the snapshots and
//! the index together, resolves references, and commits staged loads and imports.
//!
//! Locking: `write` serializes everything that adds or deletes blobs and snapshots (imports,
//! loads, removals, prunes), so a garbage collection never races a load that relies on an
//! existing snapshot. `index` guards the in-memory index and is held only briefly; readers
//! (`get`, `list`) take only it. Lock order is always `write` then `index`.

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use berth_engine_client::{ImageDeleteItem, PruneReport};

use crate::config::ImageConfigFile;
use crate::content::ContentStore;
use crate::digest;
use crate::error::IoContext;
use crate::image::{short_id, Image, ZERO_TIME};
use crate::index::{self, ImageRecord, Index};
use crate::reference::{normalize_tag, Reference};
use crate::snapshot::{chain_ids, SnapshotStore};
use crate::stage::Stage;
use crate::ImageError;

/// The image store. Cheap to clone; all clones share one state.
#[derive(Clone)]
pub struct ImageStore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub root: PathBuf,
    pub tmp: PathBuf,
    pub content: ContentStore,
    pub snapshots: SnapshotStore,
    index_path: PathBuf,
    index: Mutex<Index>,
    write: Mutex<()>,
}

/// An image staged by a load or import, ready to be committed.
#[derive(Debug, Clone)]
pub(crate) struct NewImage {
    pub id: String,
    pub record: ImageRecord,
    /// Normalized tags to point at it.
    pub tags: Vec<String>,
}

impl std::fmt::Debug for ImageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageStore")
            .field("root", &self.inner.root)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not make the store unusable; the index on disk is always whole.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ImageStore {
    /// Opens (creating as needed) the store under the engine data dir `root`.
    pub fn open(root: &Path) -> Result<Self, ImageError> {
        fs::create_dir_all(root).ctx(|| format!("creating {}", root.display()))?;
        let tmp = root.join("tmp");
        fs::create_dir_all(&tmp).ctx(|| format!("creating {}", tmp.display()))?;
        // One process owns a store: what is in tmp/ now belongs to one that died.
        crate::ahead::clear_leftovers(&tmp);
        let content = ContentStore::open(root)?;
        let snapshots = SnapshotStore::open(root)?;
        let index_path = index::index_path(root)?;
        let index = Index::load(&index_path)?;
        Ok(Self {
            inner: Arc::new(Inner {
                root: root.to_path_buf(),
                tmp,
                content,
                snapshots,
                index_path,
                index: Mutex::new(index),
                write: Mutex::new(()),
            }),
        })
    }

    /// The data dir this store lives in.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Imports a root filesystem tar (plain or gzip) as a one-layer image tagged `reference`.
    pub fn import_rootfs(&self, tar: impl Read, reference: &str) -> Result<Image, ImageError> {
        let tag = normalize_tag(reference)?;
        let _w = lock(&self.inner.write);
        let mut stage = Stage::new(&self.inner.tmp)?;
        let new = crate::import::stage_rootfs(&self.inner, &mut stage, tar, tag)?;
        self.first(self.commit(stage, vec![new])?)
    }

    /// Imports a directory tree as a one-layer image tagged `reference`.
    pub fn import_dir(&self, dir: &Path, reference: &str) -> Result<Image, ImageError> {
        let tag = normalize_tag(reference)?;
        let _w = lock(&self.inner.write);
        let mut stage = Stage::new(&self.inner.tmp)?;
        let new = crate::import::stage_dir(&self.inner, &mut stage, dir, tag)?;
        self.first(self.commit(stage, vec![new])?)
    }

    /// Where pulls keep blobs being downloaded (`<root>/ingest/`, on the content store's
    /// filesystem so a verified download is renamed into `content/`).
    pub fn ingest_dir(&self) -> PathBuf {
        self.inner.root.join("ingest")
    }

    /// Unpacks a layer tar (plain or gzip) that is still arriving into a private directory,
    /// for [`crate::pulled::PulledImage::unpacked`]; see [`crate::ahead`]. `blob_digest` is the
    /// digest the caller verifies the same bytes against: a plain tar's diff id is taken from
    /// it, so the result must be discarded if that verification fails.
    pub fn unpack_ahead(
        &self,
        reader: impl Read,
        blob_digest: &str,
        what: &str,
    ) -> Result<crate::ahead::UnpackedLayer, ImageError> {
        crate::ahead::unpack_ahead(&self.inner.tmp, reader, blob_digest, what)
    }

    /// True when the snapshot of the layer stack `diff_ids` (its last chain id) exists, i.e.
    /// the last of these layers needs no unpacking.
    pub fn has_snapshot_for(&self, diff_ids: &[String]) -> bool {
        crate::snapshot::chain_ids(diff_ids)
            .last()
            .is_some_and(|c| self.inner.snapshots.exists(c))
    }

    /// True when the content store holds the blob `digest`.
    pub fn has_blob(&self, digest: &str) -> bool {
        self.inner.content.exists(digest)
    }

    /// Opens a stored blob (a layer or config to push).
    pub fn open_blob(&self, digest: &str) -> Result<fs::File, ImageError> {
        self.inner.content.open_blob(digest)
    }

    /// Size of a stored blob.
    pub fn blob_size(&self, digest: &str) -> Result<u64, ImageError> {
        self.inner.content.size(digest)
    }

    /// The image `reference` names and its manifest exactly as stored (the bytes a push sends,
    /// so the manifest digest stays the same).
    pub fn manifest_of(&self, reference: &str) -> Result<(Image, Vec<u8>), ImageError> {
        let (image, _) = self.resolve_image(reference)?;
        let bytes = self.inner.content.read_verified(&image.manifest_digest)?;
        Ok((image, bytes))
    }

    /// Registers a pulled image: its manifest and config (verified here), its layers from
    /// verified download files in [`Self::ingest_dir`] (moved into `content/`) or already in
    /// the store, each layer unpacked and checked against the config's diff ids exactly as a
    /// load does. Nothing is visible until everything is verified.
    pub fn commit_pulled(&self, pulled: crate::pulled::PulledImage) -> Result<Image, ImageError> {
        let _w = lock(&self.inner.write);
        let mut stage = Stage::new(&self.inner.tmp)?;
        let new = crate::pulled::stage_pulled(&self.inner, &mut stage, pulled)?;
        self.first(self.commit(stage, vec![new])?)
    }

    /// Loads a `docker save` archive or an OCI image layout tar (optionally gzip-compressed).
    pub fn load(&self, archive: impl Read) -> Result<Vec<Image>, ImageError> {
        let _w = lock(&self.inner.write);
        let mut stage = Stage::new(&self.inner.tmp)?;
        let new = crate::archive_load::stage_archive(&self.inner, &mut stage, archive)?;
        self.commit(stage, new)
    }

    /// Loads an OCI image layout directory.
    pub fn load_dir(&self, dir: &Path) -> Result<Vec<Image>, ImageError> {
        let _w = lock(&self.inner.write);
        let mut stage = Stage::new(&self.inner.tmp)?;
        let new = crate::archive_load::stage_dir(&self.inner, &mut stage, dir)?;
        self.commit(stage, new)
    }

    /// Writes one tar holding the images as both a docker-archive and an OCI layout.
    /// Holds the write lock so no blob is deleted while it is being written out.
    pub fn save(&self, references: &[String], out: impl Write) -> Result<(), ImageError> {
        let _w = lock(&self.inner.write);
        let mut wanted: Vec<(Image, Vec<String>)> = Vec::new();
        for r in references {
            let (image, tag) = self.resolve_image(r)?;
            match wanted.iter_mut().find(|(i, _)| i.id == image.id) {
                Some((_, tags)) => tags.extend(tag),
                None => wanted.push((image, tag.into_iter().collect())),
            }
        }
        let records = {
            let idx = lock(&self.inner.index);
            wanted
                .iter()
                .map(|(img, _)| {
                    idx.images
                        .get(&img.id)
                        .cloned()
                        .ok_or_else(|| ImageError::NotFound(img.id.clone()))
                })
                .collect::<Result<Vec<_>, _>>()?
        };
        crate::archive_save::write_archive(&self.inner.content, &wanted, &records, out)
    }

    /// All images, newest first.
    pub fn list(&self) -> Result<Vec<Image>, ImageError> {
        let idx = lock(&self.inner.index).clone();
        let mut out = Vec::with_capacity(idx.images.len());
        for (id, rec) in &idx.images {
            out.push(self.build(&idx, id, rec)?);
        }
        out.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Finds an image by `name[:tag]`, `name@digest`, id, bare hex id or unique id prefix.
    pub fn get(&self, reference: &str) -> Result<Image, ImageError> {
        Ok(self.resolve_image(reference)?.0)
    }

    /// Points `new_reference` at the image `reference` names.
    pub fn tag(&self, reference: &str, new_reference: &str) -> Result<(), ImageError> {
        let new_tag = normalize_tag(new_reference)?;
        let mut idx = lock(&self.inner.index);
        let (id, _) = resolve(&idx, reference)?;
        let mut next = idx.clone();
        next.tags.insert(new_tag, id);
        next.save(&self.inner.index_path)?;
        *idx = next;
        Ok(())
    }

    /// Untags (by name) or deletes (by id, or when the last tag goes) an image, then deletes
    /// blobs and snapshots no other image uses.
    pub fn remove(&self, reference: &str, force: bool) -> Result<Vec<ImageDeleteItem>, ImageError> {
        let _w = lock(&self.inner.write);
        let mut items = Vec::new();
        {
            let mut idx = lock(&self.inner.index);
            let (id, tag) = resolve(&idx, reference)?;
            let mut next = idx.clone();
            let tags = next.tags_of(&id);
            let untag: Vec<String> = match tag {
                Some(t) => vec![t],
                None => {
                    if tags.len() > 1 && !force {
                        return Err(ImageError::Conflict(format!(
                            "unable to delete {} (must be forced) - image is referenced in multiple repositories ({})",
                            short_id(&id),
                            tags.join(", ")
                        )));
                    }
                    tags.clone()
                }
            };
            for t in &untag {
                next.tags.remove(t);
                items.push(ImageDeleteItem {
                    untagged: Some(t.clone()),
                    deleted: None,
                });
            }
            if next.tags_of(&id).is_empty() {
                next.images.remove(&id);
                items.push(ImageDeleteItem {
                    untagged: None,
                    deleted: Some(id.clone()),
                });
            }
            next.save(&self.inner.index_path)?;
            *idx = next;
        }
        self.collect_garbage(false)?;
        Ok(items)
    }

    /// Unpacked layer directories of `image`, bottom layer first (overlayfs lowerdirs are given
    /// top first, so reverse them for `lowerdir=`).
    pub fn layer_paths(&self, image: &Image) -> Result<Vec<PathBuf>, ImageError> {
        chain_ids(&image.diff_ids)
            .iter()
            .map(|chain| {
                let p = self.inner.snapshots.fs_path(chain)?;
                if p.is_dir() {
                    Ok(p)
                } else {
                    Err(ImageError::Corrupt(format!(
                        "snapshot {chain} of image {} is missing; remove the image and load it again",
                        image.short_id()
                    )))
                }
            })
            .collect()
    }

    /// Deletes dangling images (or, with `all`, every image not in `in_use`), then unreferenced
    /// blobs, snapshots and leftover staging files.
    pub fn prune(&self, in_use: &HashSet<String>, all: bool) -> Result<PruneReport, ImageError> {
        let _w = lock(&self.inner.write);
        let mut report = PruneReport::default();
        {
            let mut idx = lock(&self.inner.index);
            let mut next = idx.clone();
            let victims: Vec<String> = next
                .images
                .keys()
                .filter(|id| !in_use.contains(*id) && (all || next.tags_of(id).is_empty()))
                .cloned()
                .collect();
            for id in &victims {
                next.tags.retain(|_, v| v != id);
                next.images.remove(id);
            }
            next.save(&self.inner.index_path)?;
            *idx = next;
            report.images_deleted = victims;
        }
        report.space_reclaimed = self.collect_garbage(true)?;
        Ok(report)
    }

    /// Bytes of unpacked layer data on disk (all snapshots).
    pub fn layers_size(&self) -> Result<i64, ImageError> {
        let mut total: u64 = 0;
        for chain in self.inner.snapshots.list()? {
            total += self.inner.snapshots.size(&chain).unwrap_or(0);
        }
        Ok(i64::try_from(total).unwrap_or(i64::MAX))
    }

    /// The parsed config blob of the image with id `id`.
    pub fn config_file(&self, id: &str) -> Result<ImageConfigFile, ImageError> {
        let raw = self.inner.content.read_verified(id)?;
        ImageConfigFile::parse(&raw, id)
    }

    /// Commits a build step: the layers of `parent` (an image id; `None` for `scratch`) plus,
    /// when given, one new layer (an uncompressed tar file, unpacked into its snapshot here),
    /// under `cfg`, whose `rootfs` this sets. The image is tagged with `tags` (may be empty).
    pub fn commit_layer(
        &self,
        parent: Option<&str>,
        layer_tar: Option<&Path>,
        mut cfg: ImageConfigFile,
        tags: &[String],
    ) -> Result<Image, ImageError> {
        let tags = tags
            .iter()
            .map(|t| normalize_tag(t))
            .collect::<Result<Vec<_>, _>>()?;
        let _w = lock(&self.inner.write);
        let inner = &self.inner;
        let (mut layers, mut diff_ids, mut descriptors, mut size) = match parent {
            None => (Vec::new(), Vec::new(), Vec::new(), 0i64),
            Some(pid) => {
                let rec = lock(&inner.index)
                    .images
                    .get(pid)
                    .cloned()
                    .ok_or_else(|| ImageError::NotFound(pid.to_string()))?;
                let raw = inner.content.read_verified(&rec.manifest_digest)?;
                let manifest: crate::config::Manifest = serde_json::from_slice(&raw)
                    .map_err(|e| ImageError::Corrupt(format!("manifest of {pid}: {e}")))?;
                (rec.layers, rec.diff_ids, manifest.layers, rec.size)
            }
        };
        let mut stage = Stage::new(&inner.tmp)?;
        if let Some(tar_path) = layer_tar {
            let mut file =
                fs::File::open(tar_path).ctx(|| format!("opening {}", tar_path.display()))?;
            let (path, diff_id, len) = stage.write_file(&mut file, None, "build layer")?;
            diff_ids.push(diff_id.clone());
            layers.push(diff_id.clone());
            descriptors.push(crate::config::Descriptor {
                media_type: crate::config::OCI_LAYER_TAR.to_string(),
                digest: diff_id.clone(),
                size: i64::try_from(len).unwrap_or(i64::MAX),
                ..Default::default()
            });
            let chain = chain_ids(&diff_ids).pop().unwrap_or_default();
            if inner.snapshots.exists(&chain) {
                size += i64::try_from(inner.snapshots.size(&chain).unwrap_or(0)).unwrap_or(0);
            } else {
                let dir = stage.temp_path("snapshot");
                let fs_dir = dir.join("fs");
                fs::create_dir_all(&fs_dir).ctx(|| format!("creating {}", fs_dir.display()))?;
                let f = fs::File::open(&path).ctx(|| format!("opening {}", path.display()))?;
                let n = crate::unpack::unpack_layer(
                    std::io::BufReader::new(f),
                    &fs_dir,
                    "build layer",
                )?;
                fs::write(dir.join("size"), n.to_string())
                    .ctx(|| format!("writing {}", dir.display()))?;
                size += i64::try_from(n).unwrap_or(0);
                stage
                    .snapshots
                    .insert(chain, crate::stage::StagedSnapshot { dir, size: n });
            }
            stage.add_blob(&diff_id, path);
        }
        cfg.rootfs = crate::config::RootFsConfig {
            kind: "layers".to_string(),
            diff_ids: diff_ids.clone(),
        };
        let cfg_bytes = serde_json::to_vec(&cfg)
            .map_err(|e| ImageError::Corrupt(format!("serializing config: {e}")))?;
        let id = stage.add_blob_bytes(&cfg_bytes)?;
        let manifest = crate::config::Manifest {
            schema_version: 2,
            media_type: Some(crate::config::OCI_MANIFEST.to_string()),
            config: crate::config::Descriptor {
                media_type: crate::config::OCI_CONFIG.to_string(),
                digest: id.clone(),
                size: cfg_bytes.len() as i64,
                ..Default::default()
            },
            layers: descriptors,
            annotations: Default::default(),
        };
        let manifest_bytes = serde_json::to_vec(&manifest)
            .map_err(|e| ImageError::Corrupt(format!("serializing manifest: {e}")))?;
        let manifest_digest = stage.add_blob_bytes(&manifest_bytes)?;
        let new = NewImage {
            id,
            record: ImageRecord {
                pulled_digests: Vec::new(),
                manifest_digest,
                layers,
                diff_ids,
                size,
                added: crate::import::go_rfc3339_nano(chrono::Utc::now()),
            },
            tags,
        };
        self.first(self.commit(stage, vec![new])?)
    }

    // -----------------------------------------------------------------------------------------

    fn first(&self, images: Vec<Image>) -> Result<Image, ImageError> {
        images
            .into_iter()
            .next()
            .ok_or_else(|| ImageError::Corrupt("import produced no image".into()))
    }

    fn resolve_image(&self, reference: &str) -> Result<(Image, Option<String>), ImageError> {
        let idx = lock(&self.inner.index).clone();
        let (id, tag) = resolve(&idx, reference)?;
        let rec = idx
            .images
            .get(&id)
            .ok_or_else(|| ImageError::NotFound(reference.to_string()))?;
        Ok((self.build(&idx, &id, rec)?, tag))
    }

    fn build(&self, idx: &Index, id: &str, rec: &ImageRecord) -> Result<Image, ImageError> {
        let raw = self.inner.content.read_verified(id)?;
        let cfg = ImageConfigFile::parse(&raw, id)
            .map_err(|e| ImageError::Corrupt(format!("stored config of {id}: {e}")))?;
        let repo_tags = idx.tags_of(id);
        let repos: BTreeSet<String> = repo_tags
            .iter()
            .filter_map(|t| Reference::parse(t).ok().map(|r| r.familiar_name()))
            .collect();
        let mut repo_digests: BTreeSet<String> = repos
            .iter()
            .map(|r| format!("{r}@{}", rec.manifest_digest))
            .collect();
        repo_digests.extend(rec.pulled_digests.iter().cloned());
        Ok(Image {
            id: id.to_string(),
            repo_digests: repo_digests.into_iter().collect(),
            repo_tags,
            manifest_digest: rec.manifest_digest.clone(),
            config: cfg.api_config(),
            created: cfg.created.clone().unwrap_or_else(|| ZERO_TIME.to_string()),
            architecture: cfg.architecture.clone(),
            os: cfg.os.clone(),
            diff_ids: rec.diff_ids.clone(),
            size: rec.size,
        })
    }

    /// Moves staged blobs and snapshots into place and records the images. On failure, what
    /// this call added is removed again. The caller holds the write lock.
    pub(crate) fn commit(
        &self,
        stage: Stage,
        images: Vec<NewImage>,
    ) -> Result<Vec<Image>, ImageError> {
        let inner = &self.inner;
        // Everything each image needs must be staged or already stored.
        for img in &images {
            let mut blobs = vec![img.id.clone(), img.record.manifest_digest.clone()];
            blobs.extend(img.record.layers.iter().cloned());
            for b in &blobs {
                if !stage.blobs.contains_key(b) && !inner.content.exists(b) {
                    return Err(ImageError::archive(format!("blob {b} is missing")));
                }
            }
            for c in chain_ids(&img.record.diff_ids) {
                if !stage.snapshots.contains_key(&c) && !inner.snapshots.exists(&c) {
                    return Err(ImageError::archive(format!(
                        "layer snapshot {c} is missing"
                    )));
                }
            }
        }
        // Only what the final records reference is kept (an image already stored keeps its
        // record, so e.g. a manifest synthesized for it again is not needed).
        let (needed_blobs, needed_snaps) = {
            let idx = lock(&inner.index);
            let mut blobs = HashSet::new();
            let mut snaps = HashSet::new();
            for img in &images {
                let rec = idx.images.get(&img.id).unwrap_or(&img.record);
                blobs.insert(img.id.clone());
                blobs.insert(rec.manifest_digest.clone());
                blobs.extend(rec.layers.iter().cloned());
                snaps.extend(chain_ids(&rec.diff_ids));
            }
            (blobs, snaps)
        };
        let mut added_blobs = Vec::new();
        let mut added_snapshots = Vec::new();
        let result = (|| -> Result<Vec<Image>, ImageError> {
            // Unpacked files are written without a flush each; one flush of their file system
            // makes them durable before any record points at them.
            if let Some(snap) = stage.snapshots.values().next() {
                crate::content::sync_filesystem(&snap.dir)?;
            }
            for (digest, path) in &stage.blobs {
                if needed_blobs.contains(digest) && inner.content.commit(path, digest)? {
                    added_blobs.push(digest.clone());
                }
            }
            for (chain, snap) in &stage.snapshots {
                if needed_snaps.contains(chain) && inner.snapshots.commit(&snap.dir, chain)? {
                    added_snapshots.push(chain.clone());
                }
            }
            let mut idx = lock(&inner.index);
            let mut next = idx.clone();
            for img in &images {
                next.images
                    .entry(img.id.clone())
                    .or_insert_with(|| img.record.clone());
                for t in &img.tags {
                    next.tags.insert(t.clone(), img.id.clone());
                }
            }
            let mut seen = HashSet::new();
            let mut out = Vec::new();
            for img in &images {
                if seen.insert(img.id.clone()) {
                    if let Some(rec) = next.images.get(&img.id) {
                        out.push(self.build(&next, &img.id, rec)?);
                    }
                }
            }
            next.save(&inner.index_path)?;
            *idx = next;
            Ok(out)
        })();
        if result.is_err() {
            for d in &added_blobs {
                let _ = inner.content.remove(d);
            }
            for c in &added_snapshots {
                let _ = inner.snapshots.remove(c);
            }
        }
        drop(stage);
        result
    }

    /// Deletes blobs and snapshots no image references; with `sweep_tmp`, also leftover
    /// staging directories. Returns the bytes freed. The caller holds the write lock.
    fn collect_garbage(&self, sweep_tmp: bool) -> Result<u64, ImageError> {
        let inner = &self.inner;
        let idx = lock(&inner.index).clone();
        let mut blobs: HashSet<String> = HashSet::new();
        let mut snaps: HashSet<String> = HashSet::new();
        for (id, rec) in &idx.images {
            blobs.insert(id.clone());
            blobs.insert(rec.manifest_digest.clone());
            blobs.extend(rec.layers.iter().cloned());
            snaps.extend(chain_ids(&rec.diff_ids));
        }
        let mut freed = 0;
        for d in inner.content.list()? {
            if !blobs.contains(&d) {
                freed += inner.content.remove(&d)?;
            }
        }
        for c in inner.snapshots.list()? {
            if !snaps.contains(&c) {
                freed += inner.snapshots.remove(&c)?;
            }
        }
        if sweep_tmp {
            if let Ok(entries) = fs::read_dir(&inner.tmp) {
                for e in entries.flatten() {
                    let _ = fs::remove_dir_all(e.path()).or_else(|_| fs::remove_file(e.path()));
                }
            }
        }
        Ok(freed)
    }
}

/// Resolves `reference` to an image id, plus the tag when it named one.
fn resolve(idx: &Index, reference: &str) -> Result<(String, Option<String>), ImageError> {
    let not_found = || ImageError::NotFound(reference.to_string());
    let by_prefix = |hex: &str| -> Result<(String, Option<String>), ImageError> {
        let ids = idx.ids_with_prefix(hex);
        match ids.len() {
            0 => Err(not_found()),
            1 => Ok((ids[0].clone(), None)),
            _ => Err(ImageError::Ambiguous(reference.to_string())),
        }
    };
    if let Some(hex) = reference.strip_prefix(digest::SHA256) {
        if !digest::is_lower_hex(hex) || hex.len() > 64 {
            return Err(ImageError::InvalidReference(format!(
                "{reference:?}: an image id is sha256: and hex characters"
            )));
        }
        return by_prefix(hex);
    }
    if digest::is_hex64(reference) {
        return by_prefix(reference);
    }
    match Reference::parse(reference) {
        Ok(r) => {
            if let Some(d) = &r.digest {
                let name = r.familiar_name();
                return idx
                    .images
                    .iter()
                    .find(|(id, rec)| {
                        (&rec.manifest_digest == d
                            && idx.tags_of(id).iter().any(|t| {
                                Reference::parse(t).is_ok_and(|tr| tr.familiar_name() == name)
                            }))
                            || rec.pulled_digests.contains(&format!("{name}@{d}"))
                    })
                    .map(|(id, _)| (id.clone(), None))
                    .ok_or_else(not_found);
            }
            let tag = r.familiar_tagged();
            if let Some(id) = idx.tags.get(&tag) {
                return Ok((id.clone(), Some(tag)));
            }
            if r.tag.is_none() && reference.len() >= 4 && digest::is_lower_hex(reference) {
                return by_prefix(reference);
            }
            Err(not_found())
        }
        Err(e) => Err(e),
    }
}
