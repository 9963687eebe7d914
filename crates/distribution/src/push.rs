//! `push`: the layers and config of a stored image, then its manifest byte-for-byte as stored
//! (so its digest is the same everywhere), under a tag.
//!
//! Each blob is first checked with `HEAD` ("Layer already exists"); when another repository of
//! the same registry is known to hold the image (another tag of it names that registry), a
//! cross-repository mount (`POST .../blobs/uploads/?mount=<digest>&from=<repo>`) is tried
//! ("Mounted from ..."); otherwise the blob is uploaded: one `PUT` of the whole blob up to
//! [`MONOLITHIC_MAX`] bytes, else `PATCH` chunks of [`CHUNK_SIZE`] and a closing `PUT`.

use std::io::{Seek as _, SeekFrom};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_image::config::{self, Descriptor, Manifest};
use berth_image::reference::Reference;
use berth_image::{digest, ImageError, ImageStore};
use futures_util::{StreamExt as _, TryStreamExt as _};
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode};

use crate::progress::{short_digest, Progress, ProgressSink};
use crate::session::Session;
use crate::{Credentials, DistributionError, RegistryClient};

/// Largest blob sent in one `PUT` by default.
pub const MONOLITHIC_MAX: u64 = 32 << 20;
/// Chunk size of a chunked upload by default.
pub const CHUNK_SIZE: u64 = 16 << 20;
/// Blobs uploaded at once.
pub const CONCURRENT_UPLOADS: usize = 3;
const PROGRESS_EVERY: Duration = Duration::from_millis(100);
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// When a blob is sent in one `PUT` and how big the chunks of larger ones are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadSizes {
    /// Largest blob sent in one `PUT`.
    pub monolithic_max: u64,
    /// Chunk size of a chunked upload.
    pub chunk_size: u64,
}

impl Default for UploadSizes {
    fn default() -> Self {
        Self {
            monolithic_max: MONOLITHIC_MAX,
            chunk_size: CHUNK_SIZE,
        }
    }
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushOutcome {
    pub tag: String,
    /// The manifest digest.
    pub digest: String,
    /// The manifest size in bytes.
    pub size: usize,
}

/// Pushes the stored image `reference` (`NAME[:TAG]`) to its registry.
pub async fn push(
    client: &RegistryClient,
    store: &ImageStore,
    reference: &str,
    credentials: Credentials,
    progress: ProgressSink,
) -> Result<PushOutcome, DistributionError> {
    push_with(
        client,
        store,
        reference,
        credentials,
        progress,
        UploadSizes::default(),
    )
    .await
}

/// [`push`] with explicit upload sizes.
pub async fn push_with(
    client: &RegistryClient,
    store: &ImageStore,
    reference: &str,
    credentials: Credentials,
    progress: ProgressSink,
    sizes: UploadSizes,
) -> Result<PushOutcome, DistributionError> {
    let sizes = UploadSizes {
        monolithic_max: sizes.monolithic_max,
        chunk_size: sizes.chunk_size.max(1),
    };
    let r = Reference::parse(reference)?;
    if r.digest.is_some() {
        return Err(DistributionError::Invalid(format!(
            "cannot push {reference}: push a tag, not a digest"
        )));
    }
    let local = r.familiar_tagged();
    let tag = r.tag_or_default().to_string();
    let (image, manifest_bytes) = {
        let (store, name) = (store.clone(), local.clone());
        tokio::task::spawn_blocking(move || store.manifest_of(&name))
            .await
            .map_err(|e| DistributionError::Unsupported(format!("reading the image failed: {e}")))?
            .map_err(|e| match e {
                ImageError::NotFound(_) => DistributionError::Invalid(format!(
                    "an image does not exist locally with the tag: {local}"
                )),
                other => other.into(),
            })?
    };
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes).map_err(|e| {
        DistributionError::Unsupported(format!("the stored manifest of {local} is not valid: {e}"))
    })?;
    let media_type = manifest.media_type.clone().unwrap_or_else(|| {
        if manifest.config.media_type == DOCKER_CONFIG {
            config::DOCKER_MANIFEST.to_string()
        } else {
            config::OCI_MANIFEST.to_string()
        }
    });
    progress(Progress::status(format!(
        "The push refers to repository [{}]",
        r.full_name()
    )));
    let mut session = client.session(&r.domain, &r.path, credentials, "pull,push");
    let mut mount_from: Vec<String> = Vec::new();
    for t in &image.repo_tags {
        if let Ok(other) = Reference::parse(t) {
            if other.domain == r.domain && other.path != r.path && !mount_from.contains(&other.path)
            {
                mount_from.push(other.path);
            }
        }
    }
    for m in &mount_from {
        session.add_scope(&format!("repository:{m}:pull"));
    }
    let mut layers: Vec<Descriptor> = Vec::new();
    for l in manifest.layers.iter().rev() {
        if !layers.iter().any(|x| x.digest == l.digest) {
            progress(Progress::layer(short_digest(&l.digest), "Preparing"));
            layers.push(l.clone());
        }
    }
    let session = &session;
    let mounts = &mount_from;
    futures_util::stream::iter(layers.into_iter().map(|l: Descriptor| {
        let progress = progress.clone();
        async move { push_blob(session, store, &l, mounts, Some(&progress), sizes).await }
    }))
    .buffer_unordered(CONCURRENT_UPLOADS)
    .try_collect::<Vec<()>>()
    .await?;
    push_blob(session, store, &manifest.config, &mount_from, None, sizes).await?;

    let url = session.url(&format!("manifests/{tag}"));
    let body = manifest_bytes.clone();
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&media_type) {
        h.insert(CONTENT_TYPE, v);
    }
    let make = move || Ok(reqwest::Body::from(body.clone()));
    let resp = session.send(Method::PUT, &url, h, Some(&make)).await?;
    if !resp.status().is_success() {
        return Err(session
            .unexpected(resp, &format!("the manifest of {}", r.familiar_tagged()))
            .await);
    }
    let digest = digest::sha256_of(&manifest_bytes);
    progress(Progress::status(format!(
        "{tag}: digest: {digest} size: {}",
        manifest_bytes.len()
    )));
    Ok(PushOutcome {
        tag,
        digest,
        size: manifest_bytes.len(),
    })
}

/// Makes one blob present in the repository; `progress` is None for the config (Docker does
/// not show it).
async fn push_blob(
    session: &Session,
    store: &ImageStore,
    desc: &Descriptor,
    mount_from: &[String],
    progress: Option<&ProgressSink>,
    sizes: UploadSizes,
) -> Result<(), DistributionError> {
    let id = short_digest(&desc.digest);
    let say = |status: &str| {
        if let Some(p) = progress {
            p(Progress::layer(&id, status));
        }
    };
    digest::hex_of(&desc.digest)?;
    let head = session
        .get(
            Method::HEAD,
            &session.url(&format!("blobs/{}", desc.digest)),
            HeaderMap::new(),
        )
        .await?;
    match head.status() {
        s if s.is_success() => {
            say("Layer already exists");
            return Ok(());
        }
        StatusCode::NOT_FOUND => {}
        _ => {
            return Err(session
                .unexpected(head, &format!("a check of blob {}", desc.digest))
                .await)
        }
    }
    let mut location: Option<String> = None;
    for from in mount_from {
        let url = session.url(&format!("blobs/uploads/?mount={}&from={from}", desc.digest));
        let resp = session.get(Method::POST, &url, HeaderMap::new()).await?;
        match resp.status() {
            StatusCode::CREATED => {
                say(&format!("Mounted from {from}"));
                return Ok(());
            }
            StatusCode::ACCEPTED => {
                location = location_of(session, &resp);
                break;
            }
            _ => {}
        }
    }
    let mut location = match location {
        Some(l) => l,
        None => {
            let resp = session
                .get(
                    Method::POST,
                    &session.url("blobs/uploads/"),
                    HeaderMap::new(),
                )
                .await?;
            if resp.status() != StatusCode::ACCEPTED {
                return Err(session
                    .unexpected(resp, &format!("an upload of blob {}", desc.digest))
                    .await);
            }
            location_of(session, &resp).ok_or_else(|| {
                DistributionError::Unsupported(format!(
                    "registry {} started an upload without a Location",
                    session.endpoint.domain
                ))
            })?
        }
    };
    let size = store.blob_size(&desc.digest)?;
    let sent = Arc::new(AtomicU64::new(0));
    let last = Arc::new(Mutex::new(Instant::now()));
    let tick: Option<Arc<dyn Fn() + Send + Sync>> = progress.map(|p| {
        let (p, sent, last, id) = (p.clone(), sent.clone(), last.clone(), id.clone());
        Arc::new(move || {
            let mut l = last.lock().unwrap_or_else(|e| e.into_inner());
            if l.elapsed() >= PROGRESS_EVERY {
                *l = Instant::now();
                p(Progress::bytes(
                    &id,
                    "Pushing",
                    sent.load(Ordering::Relaxed),
                    size,
                ));
            }
        }) as Arc<dyn Fn() + Send + Sync>
    });
    if size <= sizes.monolithic_max {
        let url = with_query(&location, &format!("digest={}", desc.digest));
        let make = || file_body(store, &desc.digest, 0, size, &sent, tick.clone());
        let resp = session
            .send(Method::PUT, &url, octet_headers(size, None), Some(&make))
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(session
                .unexpected(resp, &format!("the upload of blob {}", desc.digest))
                .await);
        }
    } else {
        let mut start = 0;
        while start < size {
            let len = sizes.chunk_size.min(size - start);
            let range = format!("{start}-{}", start + len - 1);
            let base = sent.load(Ordering::Relaxed);
            let make = || {
                sent.store(base, Ordering::Relaxed);
                file_body(store, &desc.digest, start, len, &sent, tick.clone())
            };
            let resp = session
                .send(
                    Method::PATCH,
                    &location,
                    octet_headers(len, Some(&range)),
                    Some(&make),
                )
                .await?;
            if resp.status() != StatusCode::ACCEPTED {
                return Err(session
                    .unexpected(resp, &format!("a chunk of blob {}", desc.digest))
                    .await);
            }
            if let Some(l) = location_of(session, &resp) {
                location = l;
            }
            start += len;
        }
        let url = with_query(&location, &format!("digest={}", desc.digest));
        let resp = session
            .send(
                Method::PUT,
                &url,
                octet_headers(0, None),
                Some(&|| Ok(reqwest::Body::from(Vec::new()))),
            )
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(session
                .unexpected(resp, &format!("the upload of blob {}", desc.digest))
                .await);
        }
    }
    if let Some(p) = progress {
        p(Progress::bytes(&id, "Pushing", size, size));
    }
    say("Pushed");
    Ok(())
}

fn location_of(session: &Session, resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(|l| session.resolve_location(l))
}

fn with_query(url: &str, pair: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{pair}")
}

fn octet_headers(len: u64, range: Option<&str>) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    if let Some(r) = range.and_then(|r| HeaderValue::from_str(r).ok()) {
        h.insert("Content-Range", r);
    }
    h
}

/// A body streaming `len` bytes of a stored blob from `start`, counting into `sent`.
fn file_body(
    store: &ImageStore,
    digest: &str,
    start: u64,
    len: u64,
    sent: &Arc<AtomicU64>,
    tick: Option<Arc<dyn Fn() + Send + Sync>>,
) -> Result<reqwest::Body, DistributionError> {
    let mut f = store.open_blob(digest)?;
    f.seek(SeekFrom::Start(start))
        .map_err(|e| DistributionError::io(format!("reading blob {digest}"), e))?;
    let reader = tokio::fs::File::from_std(f);
    let limited = tokio::io::AsyncReadExt::take(reader, len);
    let sent = sent.clone();
    let stream =
        tokio_util::io::ReaderStream::with_capacity(limited, 256 << 10).inspect(move |c| {
            if let Ok(c) = c {
                sent.fetch_add(c.len() as u64, Ordering::Relaxed);
                if let Some(t) = &tick {
                    t();
                }
            }
        });
    Ok(reqwest::Body::wrap_stream(stream))
}
