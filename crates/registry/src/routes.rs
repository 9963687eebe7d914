//! Request dispatch and handlers. Repository names contain slashes, so `/v2/...` paths are
//! split by hand on their last `/manifests/`, `/blobs/uploads`, `/blobs/` or `/tags/list`.

use std::collections::HashMap;
use std::io::SeekFrom;
use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::auth::{parse_basic, Auth, SERVICE};
use crate::error::{range_header, RegistryError};
use crate::range::{parse_content_range, parse_range};
use crate::storage::{
    read_limited_async, valid_digest, valid_name, valid_tag, Storage, MAX_MANIFEST,
};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

pub struct App {
    pub storage: Storage,
    pub(crate) auth: Auth,
}

type R = Result<Response, RegistryError>;

pub fn router(app: Arc<App>) -> axum::Router {
    axum::Router::new().fallback(dispatch).with_state(app)
}

/// What a `/v2/` path addresses.
#[derive(Debug, PartialEq, Eq)]
pub enum Target<'a> {
    Base,
    Catalog,
    Tags(&'a str),
    Manifest(&'a str, &'a str),
    Uploads(&'a str, Option<&'a str>),
    Blob(&'a str, &'a str),
}

/// Splits a request path into its target; None for paths outside the API.
pub fn parse_path(path: &str) -> Option<Target<'_>> {
    let rest = path.strip_prefix("/v2")?;
    if rest.is_empty() || rest == "/" {
        return Some(Target::Base);
    }
    let rest = rest.strip_prefix('/')?;
    if rest == "_catalog" {
        return Some(Target::Catalog);
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Some(Target::Tags(name));
    }
    if let Some(i) = rest.rfind("/manifests/") {
        return Some(Target::Manifest(
            &rest[..i],
            &rest[i + "/manifests/".len()..],
        ));
    }
    if let Some(name) = rest
        .strip_suffix("/blobs/uploads/")
        .or_else(|| rest.strip_suffix("/blobs/uploads"))
    {
        return Some(Target::Uploads(name, None));
    }
    if let Some(i) = rest.rfind("/blobs/uploads/") {
        return Some(Target::Uploads(
            &rest[..i],
            Some(&rest[i + "/blobs/uploads/".len()..]),
        ));
    }
    if let Some(i) = rest.rfind("/blobs/") {
        return Some(Target::Blob(&rest[..i], &rest[i + "/blobs/".len()..]));
    }
    None
}

fn header_str(h: &HeaderMap, name: impl axum::http::header::AsHeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn hv(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

async fn dispatch(State(app): State<Arc<App>>, req: Request) -> Response {
    let mut resp = match handle(&app, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    resp.headers_mut().insert(
        "Docker-Distribution-API-Version",
        HeaderValue::from_static("registry/2.0"),
    );
    resp
}

fn query(req: &Request) -> HashMap<String, String> {
    req.uri()
        .query()
        .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
        .map(|v| v.into_iter().collect())
        .unwrap_or_default()
}

async fn handle(app: &Arc<App>, req: Request) -> R {
    let path = req.uri().path().to_string();
    if path == "/token" {
        return token(app, &req);
    }
    let Some(target) = parse_path(&path) else {
        return Err(RegistryError::not_found());
    };
    let name = match &target {
        Target::Base | Target::Catalog => None,
        Target::Tags(n) | Target::Manifest(n, _) | Target::Uploads(n, _) | Target::Blob(n, _) => {
            Some(*n)
        }
    };
    if !app
        .auth
        .allows(header_str(req.headers(), header::AUTHORIZATION))
    {
        let host = header_str(req.headers(), header::HOST).unwrap_or("localhost");
        let scope = match (&target, name) {
            (Target::Catalog, _) => Some("registry:catalog:*".to_string()),
            (_, Some(n)) => Some(format!("repository:{n}:pull,push")),
            _ => None,
        };
        return Err(RegistryError::unauthorized(
            app.auth.challenge(host, scope.as_deref()),
        ));
    }
    if let Some(n) = name {
        if !valid_name(n) {
            return Err(RegistryError::name_invalid(n));
        }
    }
    let q = query(&req);
    let method = req.method().clone();
    let app2 = app.clone();
    match (target, method) {
        (Target::Base, Method::GET | Method::HEAD) => {
            Ok((StatusCode::OK, axum::Json(serde_json::json!({}))).into_response())
        }
        (Target::Catalog, Method::GET) => catalog(app, &q),
        (Target::Tags(n), Method::GET) => tags(app, n, &q),
        (Target::Manifest(n, r), Method::GET | Method::HEAD) => {
            get_manifest(app, n, r, req.method() == Method::HEAD)
        }
        (Target::Manifest(n, r), Method::PUT) => put_manifest(&app2, n, r, req).await,
        (Target::Manifest(n, r), Method::DELETE) => {
            check_ref(r)?;
            app.storage.delete_manifest(n, r)?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        (Target::Blob(n, d), Method::GET | Method::HEAD) => {
            let range = header_str(req.headers(), header::RANGE).map(str::to_string);
            get_blob(app, n, d, range, req.method() == Method::HEAD).await
        }
        (Target::Blob(n, d), Method::DELETE) => {
            if !valid_digest(d) {
                return Err(RegistryError::digest_invalid(format!(
                    "invalid digest {d:?}"
                )));
            }
            if !app.storage.unlink_blob(n, d)? {
                return Err(RegistryError::blob_unknown(d));
            }
            Ok(StatusCode::ACCEPTED.into_response())
        }
        (Target::Uploads(n, None), Method::POST) => start_upload(&app2, n, &q, req).await,
        (Target::Uploads(n, Some(id)), Method::GET) => {
            let size = app.storage.upload_size(n, id)?;
            Ok(upload_accepted(StatusCode::NO_CONTENT, n, id, size))
        }
        (Target::Uploads(n, Some(id)), Method::PATCH) => patch_upload(&app2, n, id, req).await,
        (Target::Uploads(n, Some(id)), Method::PUT) => finish_upload(&app2, n, id, &q, req).await,
        (Target::Uploads(n, Some(id)), Method::DELETE) => {
            app.storage.upload_data(n, id)?;
            app.storage.remove_upload(id);
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (_, m) => Err(RegistryError::unsupported(format!(
            "method {m} is not supported on {path}"
        ))),
    }
}

fn check_ref(r: &str) -> Result<(), RegistryError> {
    if r.contains(':') {
        if !valid_digest(r) {
            return Err(RegistryError::digest_invalid(format!(
                "invalid digest {r:?}"
            )));
        }
    } else if !valid_tag(r) {
        return Err(RegistryError::tag_invalid(r));
    }
    Ok(())
}

// ---- token ----

fn token(app: &Arc<App>, req: &Request) -> R {
    let user = match header_str(req.headers(), header::AUTHORIZATION).and_then(parse_basic) {
        Some((u, p)) if app.auth.check_user(&u, &p) => u,
        _ if !app.auth.enabled() => String::new(),
        _ => {
            return Err(RegistryError::unauthorized(format!(
                "Basic realm=\"{SERVICE}\""
            )))
        }
    };
    let (t, ttl) = app.auth.issue(&user);
    Ok(axum::Json(serde_json::json!({
        "token": t, "access_token": t, "expires_in": ttl,
    }))
    .into_response())
}

// ---- listing ----

/// Applies `n`/`last` pagination; returns the page and whether more follow.
pub fn paginate(
    all: Vec<String>,
    q: &HashMap<String, String>,
) -> Result<(Vec<String>, Option<usize>), RegistryError> {
    let n = match q.get("n") {
        Some(s) => Some(
            s.parse::<usize>()
                .map_err(|_| RegistryError::pagination_invalid(format!("invalid n {s:?}")))?,
        ),
        None => None,
    };
    let mut items: Vec<String> = match q.get("last") {
        Some(last) => all.into_iter().filter(|t| t > last).collect(),
        None => all,
    };
    match n {
        Some(n) if items.len() > n => {
            items.truncate(n);
            Ok((items, Some(n)))
        }
        _ => Ok((items, None)),
    }
}

fn with_link(mut resp: Response, base: &str, page: &[String], more: Option<usize>) -> Response {
    if let (Some(n), Some(last)) = (more, page.last()) {
        let last: String = serde_urlencoded::to_string([("last", last)]).unwrap_or_default();
        resp.headers_mut().insert(
            header::LINK,
            hv(&format!("<{base}?n={n}&{last}>; rel=\"next\"")),
        );
    }
    resp
}

fn catalog(app: &Arc<App>, q: &HashMap<String, String>) -> R {
    let (page, more) = paginate(app.storage.catalog(), q)?;
    let resp = axum::Json(serde_json::json!({ "repositories": page })).into_response();
    Ok(with_link(resp, "/v2/_catalog", &page, more))
}

fn tags(app: &Arc<App>, name: &str, q: &HashMap<String, String>) -> R {
    let all = app
        .storage
        .tags(name)
        .ok_or_else(|| RegistryError::name_unknown(name))?;
    let (page, more) = paginate(all, q)?;
    let resp = axum::Json(serde_json::json!({ "name": name, "tags": page })).into_response();
    Ok(with_link(
        resp,
        &format!("/v2/{name}/tags/list"),
        &page,
        more,
    ))
}

// ---- manifests ----

fn get_manifest(app: &Arc<App>, name: &str, reference: &str, head: bool) -> R {
    check_ref(reference)?;
    let m = app.storage.get_manifest(name, reference)?;
    let len = m.bytes.len();
    let mut resp = if head {
        Response::new(Body::empty())
    } else {
        Response::new(Body::from(m.bytes))
    };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, hv(&m.media_type));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert("Docker-Content-Digest", hv(&m.digest));
    h.insert(header::ETAG, hv(&format!("\"{}\"", m.digest)));
    Ok(resp)
}

/// Media type of a manifest body: the `Content-Type` when it names one, else the body's
/// `mediaType`, else guessed from its shape.
fn manifest_media_type(content_type: Option<&str>, doc: &serde_json::Value) -> String {
    let ct = content_type
        .map(|c| c.split(';').next().unwrap_or("").trim())
        .filter(|c| !c.is_empty() && *c != "application/octet-stream" && *c != "application/json");
    if let Some(ct) = ct {
        return ct.to_string();
    }
    if let Some(mt) = doc.get("mediaType").and_then(|m| m.as_str()) {
        return mt.to_string();
    }
    if doc.get("manifests").is_some() {
        OCI_INDEX.to_string()
    } else {
        OCI_MANIFEST.to_string()
    }
}

fn descriptor_digests(doc: &serde_json::Value, field: &str) -> Result<Vec<String>, RegistryError> {
    let Some(v) = doc.get(field) else {
        return Ok(Vec::new());
    };
    let items: Vec<&serde_json::Value> = match v {
        serde_json::Value::Array(a) => a.iter().collect(),
        serde_json::Value::Object(_) => vec![v],
        serde_json::Value::Null => Vec::new(),
        _ => {
            return Err(RegistryError::manifest_invalid(format!(
                "{field} is malformed"
            )))
        }
    };
    items
        .into_iter()
        .map(|d| {
            d.get("digest")
                .and_then(|x| x.as_str())
                .filter(|x| valid_digest(x))
                .map(str::to_string)
                .ok_or_else(|| {
                    RegistryError::manifest_invalid(format!(
                        "{field} has a descriptor without a valid sha256 digest"
                    ))
                })
        })
        .collect()
}

async fn put_manifest(app: &Arc<App>, name: &str, reference: &str, req: Request) -> R {
    check_ref(reference)?;
    let ct = header_str(req.headers(), header::CONTENT_TYPE).map(str::to_string);
    let bytes = read_limited_async(req.into_body(), MAX_MANIFEST)
        .await?
        .ok_or_else(|| {
            RegistryError::size_invalid(format!("manifest is larger than {MAX_MANIFEST} bytes"))
        })?;
    let doc: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| RegistryError::manifest_invalid(format!("manifest is not valid JSON: {e}")))?;
    if !doc.is_object() {
        return Err(RegistryError::manifest_invalid(
            "manifest is not a JSON object",
        ));
    }
    if doc.get("schemaVersion").and_then(|v| v.as_u64()) != Some(2) {
        return Err(RegistryError::manifest_invalid(
            "only schemaVersion 2 manifests are supported",
        ));
    }
    let media_type = manifest_media_type(ct.as_deref(), &doc);
    let digest = berth_image::digest::sha256_of(&bytes);
    if valid_digest(reference) && reference != digest {
        return Err(RegistryError::digest_invalid(format!(
            "manifest digest {digest} does not match reference {reference}"
        )));
    }
    let is_index = doc.get("manifests").is_some();
    let storage = app.storage.clone();
    let name_s = name.to_string();
    let tag = (!valid_digest(reference)).then(|| reference.to_string());
    let digest = tokio::task::spawn_blocking(move || -> Result<String, RegistryError> {
        if is_index {
            for d in descriptor_digests(&doc, "manifests")? {
                if !storage.has_manifest(&name_s, &d) {
                    return Err(RegistryError::manifest_blob_unknown(&d));
                }
            }
        } else {
            let mut refs = descriptor_digests(&doc, "config")?;
            refs.extend(descriptor_digests(&doc, "layers")?);
            for d in refs {
                if storage.blob_size(&name_s, &d).is_none() {
                    return Err(RegistryError::manifest_blob_unknown(&d));
                }
            }
        }
        storage.put_manifest(&name_s, tag.as_deref(), &media_type, &bytes)
    })
    .await
    .map_err(|e| RegistryError::internal(e.to_string()))??;
    let mut resp = StatusCode::CREATED.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::LOCATION,
        hv(&format!("/v2/{name}/manifests/{digest}")),
    );
    h.insert("Docker-Content-Digest", hv(&digest));
    Ok(resp)
}

// ---- blobs ----

async fn get_blob(
    app: &Arc<App>,
    name: &str,
    digest: &str,
    range: Option<String>,
    head: bool,
) -> R {
    if !valid_digest(digest) {
        return Err(RegistryError::digest_invalid(format!(
            "invalid digest {digest:?}"
        )));
    }
    let size = app
        .storage
        .blob_size(name, digest)
        .ok_or_else(|| RegistryError::blob_unknown(digest))?;
    let range = match range {
        Some(r) => match parse_range(&r, size) {
            Ok(r) => r,
            Err(()) => {
                let mut resp = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
                resp.headers_mut()
                    .insert(header::CONTENT_RANGE, hv(&format!("bytes */{size}")));
                return Ok(resp);
            }
        },
        None => None,
    };
    let (start, len, status) = match range {
        Some((a, b)) => (a, b - a + 1, StatusCode::PARTIAL_CONTENT),
        None => (0, size, StatusCode::OK),
    };
    let mut resp = if head {
        Response::new(Body::empty())
    } else {
        let mut f = tokio::fs::File::open(app.storage.blob_path(digest)?).await?;
        f.seek(SeekFrom::Start(start)).await?;
        let stream = tokio_util::io::ReaderStream::with_capacity(f.take(len), 256 << 10);
        Response::new(Body::from_stream(stream))
    };
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert("Docker-Content-Digest", hv(digest));
    h.insert(header::ETAG, hv(&format!("\"{digest}\"")));
    if let Some((a, b)) = range {
        h.insert(header::CONTENT_RANGE, hv(&format!("bytes {a}-{b}/{size}")));
    }
    Ok(resp)
}

fn upload_accepted(status: StatusCode, name: &str, id: &str, size: u64) -> Response {
    let mut resp = status.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::LOCATION,
        hv(&format!("/v2/{name}/blobs/uploads/{id}")),
    );
    h.insert(header::RANGE, hv(&range_header(size)));
    h.insert("Docker-Upload-UUID", hv(id));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    resp
}

fn blob_created(name: &str, digest: &str) -> Response {
    let mut resp = StatusCode::CREATED.into_response();
    let h = resp.headers_mut();
    h.insert(header::LOCATION, hv(&format!("/v2/{name}/blobs/{digest}")));
    h.insert("Docker-Content-Digest", hv(digest));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    resp
}

/// Appends the request body to `path`; returns the bytes written. A body cut off midway is an
/// error (what arrived stays: the upload's status tells the client where to resume).
async fn append_body(path: &Path, body: Body) -> Result<u64, RegistryError> {
    let mut f = tokio::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .await?;
    let mut stream = body.into_data_stream();
    let mut n = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| RegistryError::upload_invalid(format!("reading body: {e}")))?;
        f.write_all(&chunk).await?;
        n += chunk.len() as u64;
    }
    f.flush().await?;
    Ok(n)
}

async fn commit(
    app: &Arc<App>,
    name: &str,
    data: std::path::PathBuf,
    digest: &str,
) -> Result<u64, RegistryError> {
    let storage = app.storage.clone();
    let (name, digest) = (name.to_string(), digest.to_string());
    tokio::task::spawn_blocking(move || storage.commit_file(&name, &data, &digest))
        .await
        .map_err(|e| RegistryError::internal(e.to_string()))?
}

async fn start_upload(app: &Arc<App>, name: &str, q: &HashMap<String, String>, req: Request) -> R {
    if let Some(d) = q.get("mount") {
        if !valid_digest(d) {
            return Err(RegistryError::digest_invalid(format!(
                "invalid digest {d:?}"
            )));
        }
        if let Some(from) = q.get("from").filter(|f| valid_name(f)) {
            if app.storage.blob_size(from, d).is_some() {
                app.storage.link_blob(name, d)?;
                return Ok(blob_created(name, d));
            }
        }
        // Not mountable: fall back to a regular upload, as the spec says.
    }
    if let Some(d) = q.get("digest") {
        if !valid_digest(d) {
            return Err(RegistryError::digest_invalid(format!(
                "invalid digest {d:?}"
            )));
        }
        let tmp = app.storage.temp_path();
        tokio::fs::File::create(&tmp).await?;
        if let Err(e) = append_body(&tmp, req.into_body()).await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
        commit(app, name, tmp, d).await?;
        return Ok(blob_created(name, d));
    }
    let id = app.storage.new_upload(name)?;
    Ok(upload_accepted(StatusCode::ACCEPTED, name, &id, 0))
}

async fn patch_upload(app: &Arc<App>, name: &str, id: &str, req: Request) -> R {
    let data = app.storage.upload_data(name, id)?;
    let size = app.storage.upload_size(name, id)?;
    let range = match header_str(req.headers(), header::CONTENT_RANGE) {
        Some(h) => Some(parse_content_range(h).ok_or_else(|| {
            RegistryError::range_invalid(format!("malformed Content-Range {h:?}"), size)
        })?),
        None => None,
    };
    if let Some((start, _)) = range {
        if start != size {
            return Err(RegistryError::range_invalid(
                format!("chunk starts at {start} but the upload holds {size} bytes"),
                size,
            ));
        }
    }
    let n = append_body(&data, req.into_body()).await?;
    if let Some((start, end)) = range {
        if n != end - start + 1 {
            // Keep the upload consistent with what the client declared: drop the chunk.
            let f = tokio::fs::OpenOptions::new()
                .write(true)
                .open(&data)
                .await?;
            f.set_len(size).await?;
            return Err(RegistryError::range_invalid(
                format!("chunk of {n} bytes does not match Content-Range {start}-{end}"),
                size,
            ));
        }
    }
    Ok(upload_accepted(StatusCode::ACCEPTED, name, id, size + n))
}

async fn finish_upload(
    app: &Arc<App>,
    name: &str,
    id: &str,
    q: &HashMap<String, String>,
    req: Request,
) -> R {
    let data = app.storage.upload_data(name, id)?;
    let Some(d) = q.get("digest") else {
        return Err(RegistryError::digest_invalid(
            "missing digest query parameter",
        ));
    };
    if !valid_digest(d) {
        return Err(RegistryError::digest_invalid(format!(
            "invalid digest {d:?}"
        )));
    }
    append_body(&data, req.into_body()).await?;
    let res = commit(app, name, data, d).await;
    app.storage.remove_upload(id);
    res?;
    Ok(blob_created(name, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(parse_path("/v2/"), Some(Target::Base));
        assert_eq!(parse_path("/v2/_catalog"), Some(Target::Catalog));
        assert_eq!(parse_path("/v2/a/b/tags/list"), Some(Target::Tags("a/b")));
        assert_eq!(
            parse_path("/v2/a/manifests/x/manifests/v1"),
            Some(Target::Manifest("a/manifests/x", "v1"))
        );
        assert_eq!(
            parse_path("/v2/a/blobs/uploads/"),
            Some(Target::Uploads("a", None))
        );
        assert_eq!(
            parse_path("/v2/a/blobs/uploads/u1"),
            Some(Target::Uploads("a", Some("u1")))
        );
        assert_eq!(
            parse_path("/v2/a/b/blobs/sha256:00"),
            Some(Target::Blob("a/b", "sha256:00"))
        );
        assert_eq!(parse_path("/v3/"), None);
    }

    #[test]
    fn pagination() {
        let all: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let q = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>()
        };
        assert_eq!(
            paginate(all.clone(), &q(&[("n", "2")])).unwrap(),
            (vec!["a".into(), "b".into()], Some(2))
        );
        assert_eq!(
            paginate(all.clone(), &q(&[("n", "2"), ("last", "b")])).unwrap(),
            (vec!["c".into()], None)
        );
        assert!(paginate(all, &q(&[("n", "x")])).is_err());
    }
}
