//! Where the registry keeps things, all under one root:
//!
//! ```text
//! <root>/content/blobs/sha256/<hex>                     blobs (the engine's content store layout)
//! <root>/registry/uploads/<uuid>/{name,data}            uploads in progress
//! <root>/registry/repositories/<name>/_layers/<hex>     blob linked into the repository
//! <root>/registry/repositories/<name>/_manifests/revisions/<hex>   manifest; holds its media type
//! <root>/registry/repositories/<name>/_manifests/tags/<tag>        holds the manifest digest
//! ```
//!
//! Blobs enter the content store only through [`ContentStore::commit`] after their digest was
//! checked, from a file that was fsynced, so an interrupted upload never leaves a visible blob.
//! Small files (links, tags) are written to a temp name, fsynced and renamed.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use berth_image::content::ContentStore;
use berth_image::digest::{self, HashingReader};
use rand::Rng;

use crate::error::RegistryError;

/// Largest manifest accepted (as distribution: 4 MiB).
pub const MAX_MANIFEST: usize = 4 << 20;

#[derive(Debug, Clone)]
pub struct Storage {
    content: ContentStore,
    uploads: PathBuf,
    repos: PathBuf,
}

/// A manifest as stored.
#[derive(Debug, Clone)]
pub struct StoredManifest {
    pub digest: String,
    pub media_type: String,
    pub bytes: Vec<u8>,
}

/// True for a repository name of the distribution spec:
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`, at most 255 bytes.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 255 && name.split('/').all(valid_component)
}

fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__" or "-+", always followed by an alphanumeric.
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// True for a tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'))
}

/// True for a digest the registry accepts (`sha256:<64 lowercase hex>`).
pub fn valid_digest(d: &str) -> bool {
    digest::hex_of(d).is_ok()
}

fn hex(d: &str) -> &str {
    d.strip_prefix(digest::SHA256).unwrap_or(d)
}

fn is_not_found(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

/// Writes `bytes` to `path` atomically (temp, fsync, rename, fsync dir).
fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".tmp-{:016x}", rand::thread_rng().gen::<u64>()));
    let res = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

impl Storage {
    /// Opens (creating) the registry's directories under `root`.
    pub fn open(root: &Path) -> Result<Self, RegistryError> {
        let content = ContentStore::open(root)?;
        let uploads = root.join("registry").join("uploads");
        let repos = root.join("registry").join("repositories");
        fs::create_dir_all(&uploads)?;
        fs::create_dir_all(&repos)?;
        Ok(Self {
            content,
            uploads,
            repos,
        })
    }

    pub fn content(&self) -> &ContentStore {
        &self.content
    }

    fn repo(&self, name: &str) -> PathBuf {
        self.repos.join(name)
    }

    /// Whether the repository has anything in it.
    pub fn repo_exists(&self, name: &str) -> bool {
        let r = self.repo(name);
        r.join("_manifests").is_dir() || r.join("_layers").is_dir()
    }

    // ---- blobs ----

    /// Size of the blob when it is linked into `name` and stored.
    pub fn blob_size(&self, name: &str, digest: &str) -> Option<u64> {
        if !valid_digest(digest) || !self.repo(name).join("_layers").join(hex(digest)).is_file() {
            return None;
        }
        self.content.size(digest).ok()
    }

    /// Links a stored blob into repository `name`.
    pub fn link_blob(&self, name: &str, digest: &str) -> Result<(), RegistryError> {
        let p = self.repo(name).join("_layers").join(hex(digest));
        if !p.is_file() {
            write_atomic(&p, digest.as_bytes())?;
        }
        Ok(())
    }

    /// Removes a blob's link from a repository; false when it was not linked.
    pub fn unlink_blob(&self, name: &str, digest: &str) -> Result<bool, RegistryError> {
        let p = self.repo(name).join("_layers").join(hex(digest));
        match fs::remove_file(p) {
            Ok(()) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, RegistryError> {
        Ok(self.content.path(digest)?)
    }

    // ---- uploads ----

    /// Starts an upload for `name`; returns its id.
    pub fn new_upload(&self, name: &str) -> Result<String, RegistryError> {
        let mut b = [0u8; 16];
        rand::thread_rng().fill(&mut b);
        let id = hex::encode(b);
        let dir = self.uploads.join(&id);
        fs::create_dir_all(&dir)?;
        fs::write(dir.join("name"), name)?;
        fs::File::create(dir.join("data"))?;
        Ok(id)
    }

    /// The data file of upload `id` of repository `name`.
    pub fn upload_data(&self, name: &str, id: &str) -> Result<PathBuf, RegistryError> {
        if id.len() != 32 || !digest::is_lower_hex(id) {
            return Err(RegistryError::upload_unknown());
        }
        let dir = self.uploads.join(id);
        match fs::read_to_string(dir.join("name")) {
            Ok(n) if n == name => Ok(dir.join("data")),
            Ok(_) => Err(RegistryError::upload_unknown()),
            Err(e) if is_not_found(&e) => Err(RegistryError::upload_unknown()),
            Err(e) => Err(e.into()),
        }
    }

    /// Bytes received so far by an upload.
    pub fn upload_size(&self, name: &str, id: &str) -> Result<u64, RegistryError> {
        let p = self.upload_data(name, id)?;
        match fs::metadata(p) {
            Ok(m) => Ok(m.len()),
            Err(e) if is_not_found(&e) => Err(RegistryError::upload_unknown()),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes an upload (finished, failed or cancelled).
    pub fn remove_upload(&self, id: &str) {
        if id.len() == 32 && digest::is_lower_hex(id) {
            let _ = fs::remove_dir_all(self.uploads.join(id));
        }
    }

    /// A fresh temp file path for a monolithic upload (same filesystem as the content store).
    pub fn temp_path(&self) -> PathBuf {
        self.uploads
            .join(format!(".mono-{:016x}", rand::thread_rng().gen::<u64>()))
    }

    /// Verifies that the file `data` hashes to `digest`, fsyncs it and commits it as a blob
    /// linked into `name`. The file is consumed either way.
    pub fn commit_file(&self, name: &str, data: &Path, digest: &str) -> Result<u64, RegistryError> {
        let res = (|| {
            let f = fs::File::open(data)?;
            let (got, size) =
                HashingReader::new(io::BufReader::with_capacity(1 << 20, f)).drain_and_finish()?;
            if got != digest {
                return Err(RegistryError::digest_invalid(format!(
                    "provided digest {digest} does not match uploaded content {got}"
                )));
            }
            fs::OpenOptions::new().write(true).open(data)?.sync_all()?;
            self.content.commit(data, digest)?;
            self.link_blob(name, digest)?;
            Ok(size)
        })();
        let _ = fs::remove_file(data);
        res
    }

    // ---- manifests ----

    /// Resolves a tag or digest to a manifest digest of `name`.
    pub fn resolve(&self, name: &str, reference: &str) -> Option<String> {
        let m = self.repo(name).join("_manifests");
        if valid_digest(reference) {
            m.join("revisions")
                .join(hex(reference))
                .is_file()
                .then(|| reference.to_string())
        } else if valid_tag(reference) {
            let d = fs::read_to_string(m.join("tags").join(reference)).ok()?;
            let d = d.trim().to_string();
            (valid_digest(&d) && m.join("revisions").join(hex(&d)).is_file()).then_some(d)
        } else {
            None
        }
    }

    /// Reads a manifest by tag or digest.
    pub fn get_manifest(
        &self,
        name: &str,
        reference: &str,
    ) -> Result<StoredManifest, RegistryError> {
        let unknown = || RegistryError::manifest_unknown(reference);
        let digest = self.resolve(name, reference).ok_or_else(unknown)?;
        let media_type = fs::read_to_string(
            self.repo(name)
                .join("_manifests")
                .join("revisions")
                .join(hex(&digest)),
        )
        .map_err(|_| unknown())?;
        let bytes = self.content.read_verified(&digest).map_err(|_| unknown())?;
        Ok(StoredManifest {
            digest,
            media_type,
            bytes,
        })
    }

    /// Whether manifest `digest` is a revision of `name`.
    pub fn has_manifest(&self, name: &str, digest: &str) -> bool {
        valid_digest(digest)
            && self
                .repo(name)
                .join("_manifests")
                .join("revisions")
                .join(hex(digest))
                .is_file()
            && self.content.exists(digest)
    }

    /// Stores a manifest (already validated) and points `tag` at it when given.
    pub fn put_manifest(
        &self,
        name: &str,
        tag: Option<&str>,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<String, RegistryError> {
        let digest = digest::sha256_of(bytes);
        if !self.content.exists(&digest) {
            let tmp = self.temp_path();
            let res = (|| -> Result<(), RegistryError> {
                let mut f = fs::File::create(&tmp)?;
                f.write_all(bytes)?;
                f.sync_all()?;
                self.content.commit(&tmp, &digest)?;
                Ok(())
            })();
            if res.is_err() {
                let _ = fs::remove_file(&tmp);
            }
            res?;
        }
        let m = self.repo(name).join("_manifests");
        write_atomic(
            &m.join("revisions").join(hex(&digest)),
            media_type.as_bytes(),
        )?;
        if let Some(tag) = tag {
            write_atomic(&m.join("tags").join(tag), digest.as_bytes())?;
        }
        Ok(digest)
    }

    /// Deletes a tag (reference is a tag) or a manifest and every tag pointing at it (a digest).
    pub fn delete_manifest(&self, name: &str, reference: &str) -> Result<(), RegistryError> {
        let m = self.repo(name).join("_manifests");
        if valid_digest(reference) {
            match fs::remove_file(m.join("revisions").join(hex(reference))) {
                Ok(()) => {}
                Err(e) if is_not_found(&e) => {
                    return Err(RegistryError::manifest_unknown(reference))
                }
                Err(e) => return Err(e.into()),
            }
            for tag in self.tags(name).unwrap_or_default() {
                let p = m.join("tags").join(&tag);
                if fs::read_to_string(&p)
                    .map(|d| d.trim() == reference)
                    .unwrap_or(false)
                {
                    let _ = fs::remove_file(p);
                }
            }
            Ok(())
        } else {
            match fs::remove_file(m.join("tags").join(reference)) {
                Ok(()) => Ok(()),
                Err(e) if is_not_found(&e) => Err(RegistryError::manifest_unknown(reference)),
                Err(e) => Err(e.into()),
            }
        }
    }

    /// Tags of `name`, sorted; None when the repository does not exist.
    pub fn tags(&self, name: &str) -> Option<Vec<String>> {
        if !self.repo_exists(name) {
            return None;
        }
        let mut out: Vec<String> =
            match fs::read_dir(self.repo(name).join("_manifests").join("tags")) {
                Ok(rd) => rd
                    .flatten()
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| valid_tag(n))
                    .collect(),
                Err(_) => Vec::new(),
            };
        out.sort();
        Some(out)
    }

    /// Every repository name, sorted.
    pub fn catalog(&self) -> Vec<String> {
        let mut out = Vec::new();
        walk(&self.repos, String::new(), &mut out);
        out.sort();
        out
    }
}

fn walk(dir: &Path, prefix: String, out: &mut Vec<String>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    let mut is_repo = false;
    for e in rd.flatten() {
        let Ok(n) = e.file_name().into_string() else {
            continue;
        };
        if n == "_manifests" || n == "_layers" {
            is_repo = true;
            continue;
        }
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) && valid_component(&n) {
            let p = if prefix.is_empty() {
                n.clone()
            } else {
                format!("{prefix}/{n}")
            };
            walk(&e.path(), p, out);
        }
    }
    if is_repo && !prefix.is_empty() {
        out.push(prefix);
    }
}

/// Reads all of `r` up to `limit` bytes; None when it is longer.
pub fn read_limited(r: impl Read, limit: usize) -> io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    r.take(limit as u64 + 1).read_to_end(&mut buf)?;
    Ok((buf.len() <= limit).then_some(buf))
}

/// Collects an HTTP body up to `limit` bytes; None when it is longer.
pub async fn read_limited_async(
    body: axum::body::Body,
    limit: usize,
) -> Result<Option<Vec<u8>>, RegistryError> {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| RegistryError::manifest_invalid(format!("reading body: {e}")))?;
        if buf.len() + chunk.len() > limit {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Some(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "library/busybox", "a.b_c__d--e/f", "x0/y-1/z"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in [
            "", "A", "a//b", "/a", "a/", "-a", "a.", "a..b", "a___b", "../x", "a/..",
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert!(valid_tag("latest") && valid_tag("_x.1-2") && !valid_tag(".x") && !valid_tag(""));
        assert!(!valid_tag(&"a".repeat(129)));
    }

    #[test]
    fn manifests_tags_and_catalog() {
        let d = tempfile::tempdir().unwrap();
        let s = Storage::open(d.path()).unwrap();
        let dg = s
            .put_manifest("a/b", Some("v1"), "application/x", b"{}")
            .unwrap();
        assert_eq!(s.resolve("a/b", "v1").as_deref(), Some(dg.as_str()));
        assert_eq!(s.get_manifest("a/b", &dg).unwrap().bytes, b"{}");
        s.put_manifest("c", Some("x"), "application/x", b"{}")
            .unwrap();
        assert_eq!(s.catalog(), vec!["a/b", "c"]);
        assert_eq!(s.tags("a/b").unwrap(), vec!["v1"]);
        s.delete_manifest("a/b", &dg).unwrap();
        assert!(s.resolve("a/b", "v1").is_none());
        assert!(s.tags("nope").is_none());
    }
}
