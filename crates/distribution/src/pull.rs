//! `pull`: reference -> manifest (an index resolved to linux/<host arch>) -> config -> layers
//! -> [`ImageStore::commit_pulled`].
//!
//! Each missing layer is downloaded into `<root>/ingest/<hex>.partial`, hashed as it arrives.
//! A partial file left by an interrupted pull (or a broken connection in this one, retried up
//! to [`MAX_ATTEMPTS`] times) is continued with `Range: bytes=N-`; a registry answering 200
//! instead of 206 sends the whole blob again and the file starts over. A blob whose sha256 does
//! not match is deleted and the pull fails. Only verified files are handed to the store, which
//! renames them into `content/` once the whole image checks out. Layers already in the store
//! are not downloaded ("Already exists"); up to [`CONCURRENT_DOWNLOADS`] download at once. A
//! layer whose snapshot is missing is also unpacked while it downloads (`unpack_ahead`), so the
//! commit only checks its diff id and moves the directory into place.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_image::config::{self, Descriptor, Index, Manifest};
use berth_image::content::MAX_METADATA_BLOB;
use berth_image::pulled::PulledImage;
use berth_image::reference::Reference;
use berth_image::{digest, ImageStore};
use futures_util::{StreamExt as _, TryStreamExt as _};
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, CONTENT_TYPE, RANGE};
use reqwest::{Method, StatusCode};
use sha2::{Digest as _, Sha256};

use crate::ingest::IngestWriter;
use crate::progress::{short_digest, Progress, ProgressSink};
use crate::session::{error_code, Session};
use crate::unpack_ahead::{AheadUnpack, UnpackedLayers};
use crate::{Credentials, DistributionError, RegistryClient};

/// Layers downloaded at once.
pub const CONCURRENT_DOWNLOADS: usize = 3;
/// Tries per blob when the connection breaks (each resumes where the last stopped).
pub const MAX_ATTEMPTS: usize = 3;
/// Manifest media types a pull accepts.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";
const MAX_INDEX_DEPTH: usize = 4;
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// What a pull did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullOutcome {
    /// The fully qualified reference pulled (`docker.io/library/busybox:latest`).
    pub reference: String,
    /// Digest of what the reference named (an index or a manifest).
    pub digest: String,
    /// The image id.
    pub image_id: String,
    /// True when the store already had this image under this name.
    pub up_to_date: bool,
}

/// A manifest or index as fetched.
struct Fetched {
    bytes: Vec<u8>,
    media_type: String,
    digest: String,
}

/// Pulls `reference` into `store`.
pub async fn pull(
    client: &RegistryClient,
    store: &ImageStore,
    reference: &str,
    credentials: Credentials,
    progress: ProgressSink,
) -> Result<PullOutcome, DistributionError> {
    let r = Reference::parse(reference)?;
    let (want, display, full) = match &r.digest {
        Some(d) => (
            d.clone(),
            format!("{}@{d}", r.familiar_name()),
            format!("{}@{d}", r.full_name()),
        ),
        None => (
            r.tag_or_default().to_string(),
            r.familiar_tagged(),
            r.full_tagged(),
        ),
    };
    let short_want = match &r.digest {
        Some(d) => d.clone(),
        None => r.tag_or_default().to_string(),
    };
    let (session, top) = first_manifest(client, &r, credentials, &want, &display).await?;
    progress(Progress::layer(
        short_want,
        format!("Pulling from {}", r.path),
    ));
    let top_digest = top.digest.clone();
    let chosen = resolve_index(&session, top, &display, 0).await?;
    let manifest: Manifest = serde_json::from_slice(&chosen.bytes).map_err(|e| {
        DistributionError::Unsupported(format!("manifest of {display} is not valid: {e}"))
    })?;
    let config_bytes = fetch_small_blob(&session, &manifest.config, "image config").await?;
    let image_id = manifest.config.digest.clone();
    let already = {
        let (store, name, id) = (store.clone(), display.clone(), image_id.clone());
        tokio::task::spawn_blocking(move || store.get(&name).map(|i| i.id == id).unwrap_or(false))
            .await
            .unwrap_or(false)
    };

    // Layers whose snapshot is missing are unpacked while they download.
    let diff_ids = config::ImageConfigFile::parse(&config_bytes, &image_id)
        .map(|c| c.rootfs.diff_ids)
        .unwrap_or_default();
    let unpack_while_downloading: Vec<String> = if diff_ids.len() == manifest.layers.len() {
        manifest
            .layers
            .iter()
            .enumerate()
            .filter(|(i, _)| !store.has_snapshot_for(&diff_ids[..=*i]))
            .map(|(_, l)| l.digest.clone())
            .collect()
    } else {
        Vec::new()
    };
    let ingest = store.ingest_dir();
    tokio::fs::create_dir_all(&ingest)
        .await
        .map_err(|e| DistributionError::io(format!("creating {}", ingest.display()), e))?;
    let mut to_fetch: Vec<Descriptor> = Vec::new();
    for l in &manifest.layers {
        let id = short_digest(&l.digest);
        if store.has_blob(&l.digest) {
            progress(Progress::layer(id, "Already exists"));
        } else if !to_fetch.iter().any(|f| f.digest == l.digest) {
            progress(Progress::layer(id, "Pulling fs layer"));
            to_fetch.push(l.clone());
        }
    }
    let (session_ref, ingest_ref, ahead_ref) = (&session, &ingest, &unpack_while_downloading);
    let files: Vec<Option<(String, PathBuf, UnpackedLayers)>> =
        futures_util::stream::iter(to_fetch.clone().into_iter().map(|l: Descriptor| {
            let progress = progress.clone();
            async move {
                // Another pull may be downloading the same layer: wait for it, then take what it
                // stored (or continue its file) instead of writing the same file at once.
                let _guard = client.lock_blob(&l.digest).await;
                if store.has_blob(&l.digest) {
                    progress(Progress::layer(short_digest(&l.digest), "Already exists"));
                    return Ok(None);
                }
                let ahead = ahead_ref.contains(&l.digest).then(|| {
                    let what = format!("layer {} ({})", l.digest, l.media_type);
                    AheadUnpack::start(store, l.digest.clone(), what)
                });
                let (path, unpacked) =
                    download_blob(session_ref, &l, ingest_ref, &progress, ahead).await?;
                Ok::<_, DistributionError>(Some((l.digest, path, unpacked)))
            }
        }))
        .buffer_unordered(CONCURRENT_DOWNLOADS)
        .try_collect()
        .await?;
    let mut layer_files: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut unpacked = UnpackedLayers::default();
    for (digest, path, mut ahead) in files.into_iter().flatten() {
        unpacked.0.append(&mut ahead.0);
        layer_files.insert(digest, path);
    }
    let leftovers: Vec<PathBuf> = layer_files.values().cloned().collect();
    let pulled = PulledImage {
        manifest: chosen.bytes,
        config: config_bytes,
        layer_files,
        tag: r.digest.is_none().then(|| r.familiar_tagged()),
        pulled_digest: (r.digest.is_some() || top_digest != chosen.digest)
            .then(|| format!("{}@{top_digest}", r.familiar_name())),
        unpacked: unpacked.0.clone(),
    };
    let st = store.clone();
    let committed = tokio::task::spawn_blocking(move || {
        let committed = st.commit_pulled(pulled);
        // Unpacked layers the commit did not move into the store.
        drop(unpacked);
        committed
    })
    .await
    .map_err(|e| DistributionError::Unsupported(format!("committing the image failed: {e}")))?;
    // Files the store did not take (it already had them) are not needed any more.
    for p in &leftovers {
        let _ = tokio::fs::remove_file(p).await;
    }
    let image = committed?;
    for l in &to_fetch {
        progress(Progress::layer(short_digest(&l.digest), "Pull complete"));
    }
    progress(Progress::status(format!("Digest: {top_digest}")));
    progress(Progress::status(if already {
        format!("Status: Image is up to date for {display}")
    } else {
        format!("Status: Downloaded newer image for {display}")
    }));
    Ok(PullOutcome {
        reference: full,
        digest: top_digest,
        image_id: image.id,
        up_to_date: already,
    })
}

/// The session the image comes from and its top manifest: for a Docker Hub image the first
/// mirror that serves the manifest (anonymously, as Docker asks mirrors), else Docker Hub;
/// for any other registry that registry.
async fn first_manifest(
    client: &RegistryClient,
    r: &Reference,
    credentials: Credentials,
    want: &str,
    display: &str,
) -> Result<(Session, Fetched), DistributionError> {
    if r.domain == berth_image::reference::DEFAULT_DOMAIN {
        for m in client.mirrors() {
            let session = client.session_at(m.clone(), &r.path, Credentials::default(), "pull");
            match fetch_manifest(&session, want, display).await {
                Ok(top) => return Ok((session, top)),
                Err(e) => {
                    let why = format!("mirror {} cannot serve {display}: {e}", m.base_url());
                    tracing::info!("{why}")
                }
            }
        }
    }
    let session = client.session(&r.domain, &r.path, credentials, "pull");
    let top = fetch_manifest(&session, want, display).await?;
    Ok((session, top))
}

/// GETs `manifests/<want>` (a tag or digest), verifying a digest reference.
async fn fetch_manifest(
    session: &Session,
    want: &str,
    display: &str,
) -> Result<Fetched, DistributionError> {
    let mut h = HeaderMap::new();
    h.insert(ACCEPT, HeaderValue::from_static(MANIFEST_ACCEPT));
    let url = session.url(&format!("manifests/{want}"));
    let resp = session.get(Method::GET, &url, h).await?;
    let status = resp.status();
    if status == StatusCode::NOT_FOUND {
        let body = resp.bytes().await.unwrap_or_default();
        return Err(match error_code(&body).as_deref() {
            Some("NAME_UNKNOWN") => DistributionError::ManifestUnknown(format!(
                "{display} (the registry has no repository {})",
                session.repository
            )),
            _ => DistributionError::ManifestUnknown(display.to_string()),
        });
    }
    if !status.is_success() {
        return Err(session
            .unexpected(resp, &format!("manifest {display}"))
            .await);
    }
    let media_type = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_string())
        .unwrap_or_default();
    let bytes = read_limited(session, resp, &format!("manifest {display}")).await?;
    let got = digest::sha256_of(&bytes);
    if want.starts_with(digest::SHA256) && got != want {
        return Err(DistributionError::DigestMismatch {
            what: format!("manifest {display}"),
            expected: want.to_string(),
            got,
        });
    }
    let media_type = if media_type.is_empty() || media_type == "application/json" {
        serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["mediaType"].as_str().map(str::to_string))
            .unwrap_or_default()
    } else {
        media_type
    };
    Ok(Fetched {
        bytes,
        media_type,
        digest: got,
    })
}

/// Follows an index (or manifest list) to this platform's image manifest.
async fn resolve_index(
    session: &Session,
    fetched: Fetched,
    display: &str,
    depth: usize,
) -> Result<Fetched, DistributionError> {
    let value: serde_json::Value = serde_json::from_slice(&fetched.bytes).map_err(|e| {
        DistributionError::Unsupported(format!("manifest of {display} is not JSON: {e}"))
    })?;
    if value["schemaVersion"].as_u64() == Some(1)
        || fetched.media_type == "application/vnd.docker.distribution.manifest.v1+json"
        || fetched.media_type.ends_with("prettyjws")
    {
        return Err(DistributionError::Unsupported(format!(
            "{display} is a schema 1 manifest, which berth does not support; push it again with a current client"
        )));
    }
    let is_index = matches!(
        fetched.media_type.as_str(),
        config::OCI_INDEX | config::DOCKER_MANIFEST_LIST
    ) || (value.get("manifests").is_some() && value.get("layers").is_none());
    if !is_index {
        return Ok(fetched);
    }
    if depth >= MAX_INDEX_DEPTH {
        return Err(DistributionError::Unsupported(format!(
            "indexes of {display} are nested too deeply"
        )));
    }
    let index: Index = serde_json::from_value(value).map_err(|e| {
        DistributionError::Unsupported(format!("index of {display} is not valid: {e}"))
    })?;
    let arch = config::host_architecture();
    let chosen = index.for_this_platform().ok_or_else(|| {
        let have: Vec<String> = index
            .manifests
            .iter()
            .filter_map(|m| m.platform.as_ref())
            .map(|p| format!("{}/{}", p.os, p.architecture))
            .collect();
        DistributionError::Unsupported(format!(
            "{display} has no image for linux/{arch} (it has: {})",
            have.join(", ")
        ))
    })?;
    let next = fetch_manifest(session, &chosen.digest, display).await?;
    Box::pin(resolve_index(session, next, display, depth + 1)).await
}

/// Reads a response body of at most [`MAX_METADATA_BLOB`] bytes.
async fn read_limited(
    session: &Session,
    resp: reqwest::Response,
    what: &str,
) -> Result<Vec<u8>, DistributionError> {
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| session.transport_error(e))?;
        out.extend_from_slice(&chunk);
        if out.len() as u64 > MAX_METADATA_BLOB {
            return Err(DistributionError::Unsupported(format!(
                "{what} is larger than {MAX_METADATA_BLOB} bytes"
            )));
        }
    }
    Ok(out)
}

/// Fetches a config blob into memory and verifies it.
async fn fetch_small_blob(
    session: &Session,
    desc: &Descriptor,
    what: &str,
) -> Result<Vec<u8>, DistributionError> {
    digest::hex_of(&desc.digest)?;
    let url = session.url(&format!("blobs/{}", desc.digest));
    let resp = session.get(Method::GET, &url, HeaderMap::new()).await?;
    if !resp.status().is_success() {
        return Err(session
            .unexpected(resp, &format!("{what} {}", desc.digest))
            .await);
    }
    let bytes = read_limited(session, resp, what).await?;
    let got = digest::sha256_of(&bytes);
    if got != desc.digest {
        return Err(DistributionError::DigestMismatch {
            what: format!("{what} {}", desc.digest),
            expected: desc.digest.clone(),
            got,
        });
    }
    Ok(bytes)
}

/// Hashes what an earlier, interrupted download left in `path`.
async fn resume_state(path: &Path) -> Result<(u64, Sha256), DistributionError> {
    let p = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut hasher = Sha256::new();
        let mut f = match std::fs::File::open(&p) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, hasher)),
            Err(e) => return Err(DistributionError::io(format!("opening {}", p.display()), e)),
        };
        let mut buf = vec![0u8; 1 << 20];
        let mut n: u64 = 0;
        loop {
            let k = f
                .read(&mut buf)
                .map_err(|e| DistributionError::io(format!("reading {}", p.display()), e))?;
            if k == 0 {
                break;
            }
            hasher.update(&buf[..k]);
            n += k as u64;
        }
        Ok((n, hasher))
    })
    .await
    .map_err(|e| {
        DistributionError::Unsupported(format!("hashing a partial download failed: {e}"))
    })?
}

async fn open_ingest(path: &Path, truncate: bool) -> Result<tokio::fs::File, DistributionError> {
    let mut o = tokio::fs::OpenOptions::new();
    o.create(true);
    if truncate {
        o.write(true).truncate(true);
    } else {
        o.append(true);
    }
    o.open(path)
        .await
        .map_err(|e| DistributionError::io(format!("opening {}", path.display()), e))
}

/// Downloads one blob into `<dir>/<hex>.partial` (continuing a partial file), verifies its
/// sha256 and returns the path.
async fn download_blob(
    session: &Session,
    desc: &Descriptor,
    dir: &Path,
    progress: &ProgressSink,
    mut ahead: Option<AheadUnpack>,
) -> Result<(PathBuf, UnpackedLayers), DistributionError> {
    let hex = digest::hex_of(&desc.digest)?;
    let path = dir.join(format!("{hex}.partial"));
    let id = short_digest(&desc.digest);
    let total = u64::try_from(desc.size).unwrap_or(0);
    let url = session.url(&format!("blobs/{}", desc.digest));
    let (mut offset, mut hasher) = resume_state(&path).await?;
    if offset > 0 {
        // An earlier pull's partial file: unpacked from the whole blob at commit instead.
        if let Some(a) = &mut ahead {
            a.abandon();
        }
    }
    if total > 0 && offset > total {
        (offset, hasher) = (0, Sha256::new());
        open_ingest(&path, true).await?;
    }
    let io_err =
        |e: std::io::Error| DistributionError::io(format!("writing {}", path.display()), e);
    let mut attempts = 0;
    let mut last_error: Option<DistributionError> = None;
    while !(total > 0 && offset == total) {
        if attempts >= MAX_ATTEMPTS {
            return Err(last_error.unwrap_or_else(|| DistributionError::Transport {
                registry: session.endpoint.domain.clone(),
                cause: format!("blob {} kept breaking off", desc.digest),
            }));
        }
        attempts += 1;
        let mut h = HeaderMap::new();
        if offset > 0 {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes={offset}-")) {
                h.insert(RANGE, v);
            }
        }
        let resp = match session.get(Method::GET, &url, h).await {
            Ok(r) => r,
            Err(e @ DistributionError::Transport { .. }) => {
                last_error = Some(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        let truncate = match resp.status() {
            StatusCode::PARTIAL_CONTENT if offset > 0 => false,
            StatusCode::OK => {
                (offset, hasher) = (0, Sha256::new());
                true
            }
            StatusCode::RANGE_NOT_SATISFIABLE => {
                (offset, hasher) = (0, Sha256::new());
                open_ingest(&path, true).await?;
                continue;
            }
            _ => {
                return Err(session
                    .unexpected(resp, &format!("blob {}", desc.digest))
                    .await)
            }
        };
        let mut file = IngestWriter::open(&path, truncate, hasher);
        let mut stream = resp.bytes_stream();
        let mut last = Instant::now();
        progress(Progress::bytes(&id, "Downloading", offset, total));
        let mut broke = None;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(c) => {
                    if let Some(a) = &mut ahead {
                        a.feed(offset, &c).await;
                    }
                    offset += c.len() as u64;
                    if total > 0 && offset > total {
                        let _ = file.finish().await;
                        let _ = tokio::fs::remove_file(&path).await;
                        return Err(DistributionError::DigestMismatch {
                            what: format!("blob {}", desc.digest),
                            expected: format!("{} ({total} bytes)", desc.digest),
                            got: format!("more than {total} bytes"),
                        });
                    }
                    if file.write(c).await.is_err() {
                        break;
                    }
                    if last.elapsed() >= PROGRESS_EVERY {
                        last = Instant::now();
                        progress(Progress::bytes(&id, "Downloading", offset, total));
                    }
                }
                Err(e) => {
                    broke = Some(session.transport_error(e));
                    break;
                }
            }
        }
        hasher = file.finish().await.map_err(io_err)?;
        match broke {
            Some(e) => {
                tracing::info!(blob = %desc.digest, offset, error = %e, "download broke off; resuming");
                last_error = Some(e);
            }
            None if total == 0 => break,
            None => {}
        }
    }
    progress(Progress::bytes(&id, "Downloading", offset, total));
    progress(Progress::layer(&id, "Verifying Checksum"));
    let got = format!("{}{}", digest::SHA256, hex::encode(hasher.finalize()));
    if got != desc.digest {
        let _ = tokio::fs::remove_file(&path).await;
        return Err(DistributionError::DigestMismatch {
            what: format!("blob {}", desc.digest),
            expected: desc.digest.clone(),
            got,
        });
    }
    progress(Progress::layer(&id, "Download complete"));
    let mut unpacked = UnpackedLayers::default();
    if let Some(u) = match ahead {
        Some(a) => a.finish(true).await,
        None => None,
    } {
        unpacked.0.insert(desc.digest.clone(), u);
    }
    Ok((path, unpacked))
}
