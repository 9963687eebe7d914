//! The engine's HTTP API (see docs/engine-api.md): parses requests, calls the engine, maps
//! errors to statuses. No lifecycle policy lives here.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use berth_engine_client::{
    ContainerCreate, ErrorResponse, ExecCreate, IdResponse, ImagesLoaded, VersionInfo,
    VolumeCreate, VolumeList, WaitResponse,
};
use bytes::Bytes;
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio_stream_shim::ReceiverStream;

use crate::engine::Engine;
use crate::error::EngineError;
use crate::logs::LogOptions;

type AppState = Arc<Engine>;
type ApiResult = std::result::Result<Response, EngineError>;

impl IntoResponse for EngineError {
    fn into_response(self) -> Response {
        let status = match &self {
            EngineError::NotFound(_) => StatusCode::NOT_FOUND,
            EngineError::Invalid(_) => StatusCode::BAD_REQUEST,
            EngineError::Conflict(_) => StatusCode::CONFLICT,
            EngineError::NotModified(_) => StatusCode::NOT_MODIFIED,
            EngineError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            EngineError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::NOT_MODIFIED {
            return status.into_response();
        }
        (
            status,
            Json(ErrorResponse {
                message: self.to_string(),
            }),
        )
            .into_response()
    }
}

/// Channel-to-stream adapter (keeps us off the tokio-stream crate).
mod tokio_stream_shim {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    pub struct ReceiverStream<T>(pub tokio::sync::mpsc::Receiver<T>);

    impl<T> futures_util::Stream for ReceiverStream<T> {
        type Item = T;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
            self.0.poll_recv(cx)
        }
    }
}

pub(crate) fn stream_body(rx: tokio::sync::mpsc::Receiver<Bytes>, content_type: &str) -> Response {
    let stream = ReceiverStream(rx).map(Ok::<Bytes, std::io::Error>);
    Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

const RAW_STREAM: &str = "application/vnd.docker.multiplexed-stream";

/// Parses a JSON body; `null` fields count as absent (Docker clients send many of them).
fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, EngineError> {
    fn strip_nulls(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                map.retain(|_, x| !x.is_null());
                map.values_mut().for_each(strip_nulls);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip_nulls),
            _ => {}
        }
    }
    let mut value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| EngineError::Invalid(format!("invalid {what}: {e}")))?;
    strip_nulls(&mut value);
    serde_json::from_value(value).map_err(|e| EngineError::Invalid(format!("invalid {what}: {e}")))
}

fn flag(v: &Option<String>) -> bool {
    matches!(
        v.as_deref(),
        Some("1") | Some("true") | Some("True") | Some("")
    )
}

fn parse_filters(raw: &Option<String>) -> Result<HashMap<String, Vec<String>>, EngineError> {
    let Some(raw) = raw.as_deref().filter(|r| !r.is_empty()) else {
        return Ok(HashMap::new());
    };
    // Docker accepts {"k":["v"]} and the older {"k":{"v":true}}.
    let value: serde_json::Value = serde_json::from_str(raw)
        .map_err(|e| EngineError::Invalid(format!("invalid filters {raw:?}: {e}")))?;
    let obj = value.as_object().ok_or_else(|| {
        EngineError::Invalid(format!("invalid filters {raw:?}: expected a JSON object"))
    })?;
    let mut out = HashMap::new();
    for (k, v) in obj {
        let vals = match v {
            serde_json::Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            serde_json::Value::Object(o) => o.keys().cloned().collect(),
            serde_json::Value::String(s) => vec![s.clone()],
            _ => Vec::new(),
        };
        out.insert(k.clone(), vals);
    }
    Ok(out)
}

pub fn router(engine: Arc<Engine>) -> Router {
    Router::new()
        .route(
            "/_ping",
            get(|| async { (ping_headers(), "OK") }).head(|| async { (ping_headers(), "") }),
        )
        .route("/version", get(version))
        .route("/info", get(version))
        .route("/containers/create", post(create_container))
        .route("/containers/json", get(list_containers))
        .route("/containers/prune", post(prune_containers))
        .route("/containers/{id}/json", get(inspect_container))
        .route("/containers/{id}/start", post(start_container))
        .route("/containers/{id}/stop", post(stop_container))
        .route("/containers/{id}/restart", post(restart_container))
        .route("/containers/{id}/kill", post(kill_container))
        .route("/containers/{id}/wait", post(wait_container))
        .route("/containers/{id}", delete(remove_container))
        .route("/containers/{id}/logs", get(container_logs))
        .route("/containers/{id}/attach", post(attach_container))
        .route("/containers/{id}/resize", post(resize_container))
        .route("/containers/{id}/stats", get(container_stats))
        .route("/containers/{id}/top", get(container_top))
        .route("/containers/{id}/exec", post(exec_create))
        .route("/exec/{id}/start", post(exec_start))
        .route("/exec/{id}/json", get(exec_inspect))
        .route("/exec/{id}/resize", post(exec_resize))
        .route("/build", post(build_image))
        .route("/images/json", get(list_images))
        .route("/images/import", post(import_image))
        .route("/images/create", post(crate::distribution::create_image))
        .route("/auth", post(crate::distribution::auth))
        .route("/images/load", post(load_images))
        .route("/images/get", get(save_images))
        .route("/images/prune", post(prune_images))
        .route(
            "/images/{*rest}",
            get(image_get_route)
                .delete(remove_image)
                .post(image_post_route),
        )
        .route("/volumes", get(list_volumes))
        .route("/volumes/create", post(create_volume))
        .route("/volumes/prune", post(prune_volumes))
        .route("/volumes/{name}", get(inspect_volume).delete(remove_volume))
        .route("/networks", get(list_networks))
        .route("/networks/create", post(create_network))
        .route("/networks/prune", post(prune_networks))
        .route(
            "/networks/{id}",
            get(inspect_network).delete(remove_network),
        )
        .route("/networks/{id}/connect", post(connect_network))
        .route("/networks/{id}/disconnect", post(disconnect_network))
        .route("/system/df", get(disk_usage))
        .route("/system/prune", post(prune_system))
        .route("/events", get(events))
        .with_state(engine)
}

/// The Docker Engine API version whose paths and shapes the engine serves: Docker clients
/// negotiate down to it (they read it from `/_ping`'s `API-Version` header).
pub const API_VERSION: &str = "1.43";
/// The oldest version clients may ask for.
pub const MIN_API_VERSION: &str = "1.24";

fn ping_headers() -> [(&'static str, &'static str); 3] {
    [
        ("API-Version", API_VERSION),
        ("OSType", "linux"),
        ("Docker-Experimental", "false"),
    ]
}

async fn version(State(engine): State<AppState>) -> Json<VersionInfo> {
    let uname = nix::sys::utsname::uname().ok();
    Json(VersionInfo {
        version: env!("CARGO_PKG_VERSION").into(),
        api_version: API_VERSION.into(),
        min_api_version: MIN_API_VERSION.into(),
        os: "linux".into(),
        arch: std::env::consts::ARCH.into(),
        kernel_version: uname
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default(),
        cgroup_version: match berth_runtime::cgroups::version() {
            berth_runtime::cgroups::CgroupVersion::V1 => "1".into(),
            berth_runtime::cgroups::CgroupVersion::V2 => "2".into(),
        },
        root_dir: engine.paths.root.display().to_string(),
    })
}

// ---------------------------------------------------------------------------------------------
// containers
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct NameQuery {
    name: Option<String>,
}

async fn create_container(
    State(engine): State<AppState>,
    Query(q): Query<NameQuery>,
    body: Bytes,
) -> ApiResult {
    let req: ContainerCreate = parse_body(&body, "container config")?;
    let created = engine.create(req, q.name).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

#[derive(Deserialize)]
struct ListQuery {
    all: Option<String>,
    filters: Option<String>,
}

async fn list_containers(State(engine): State<AppState>, Query(q): Query<ListQuery>) -> ApiResult {
    let filters = parse_filters(&q.filters)?;
    Ok(Json(engine.list(flag(&q.all), &filters)?).into_response())
}

async fn inspect_container(State(engine): State<AppState>, Path(id): Path<String>) -> ApiResult {
    Ok(Json(engine.inspect(&id)?).into_response())
}

async fn start_container(State(engine): State<AppState>, Path(id): Path<String>) -> ApiResult {
    engine.start(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct StopQuery {
    t: Option<u64>,
}

async fn stop_container(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<StopQuery>,
) -> ApiResult {
    engine.stop(&id, q.t).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn restart_container(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<StopQuery>,
) -> ApiResult {
    engine.restart(&id, q.t).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct KillQuery {
    signal: Option<String>,
}

async fn kill_container(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<KillQuery>,
) -> ApiResult {
    engine
        .kill(&id, q.signal.as_deref().unwrap_or("SIGKILL"))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct WaitQuery {
    condition: Option<String>,
}

async fn wait_container(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<WaitQuery>,
) -> ApiResult {
    let condition = q.condition.unwrap_or_default();
    // A missing container or a bad condition is an error before the long wait begins; then
    // the headers go out at once (Docker clients wait for them before starting the
    // container) and the body follows when the condition holds.
    let waiter = engine.waiter(&id, &condition)?;
    let body = futures_util::stream::once(async move {
        let code = waiter.await;
        let json = serde_json::to_vec(&WaitResponse {
            status_code: code,
            error: None,
        })
        .unwrap_or_default();
        Ok::<Bytes, std::io::Error>(Bytes::from(json))
    });
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()))
}

#[derive(Deserialize)]
struct RemoveQuery {
    force: Option<String>,
    v: Option<String>,
}

async fn remove_container(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<RemoveQuery>,
) -> ApiResult {
    engine.remove(&id, flag(&q.force), flag(&q.v)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct LogsQuery {
    follow: Option<String>,
    stdout: Option<String>,
    stderr: Option<String>,
    timestamps: Option<String>,
    tail: Option<String>,
    since: Option<String>,
}

#[derive(Deserialize, Default)]
struct AttachQuery {
    stream: Option<String>,
    stdin: Option<String>,
    stdout: Option<String>,
    stderr: Option<String>,
}

/// `POST /containers/{id}/attach`: hijacks the connection (`Upgrade: tcp`, answered with 101)
/// and splices it to the container's stdio.
async fn attach_container(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<AttachQuery>,
    mut request: axum::extract::Request,
) -> ApiResult {
    let (id, tty) = engine.attachable(&id)?;
    if q.stream.is_some() && !flag(&q.stream) {
        return Err(EngineError::Invalid(
            "attach without stream=1 (logs only) is not supported: use logs".into(),
        ));
    }
    if !request.headers().contains_key(header::UPGRADE) {
        return Err(EngineError::Invalid(
            "attach needs an upgradable connection: send \"Connection: Upgrade\" and \"Upgrade: tcp\"".into(),
        ));
    }
    let attach = crate::monitor_io::AttachRequest {
        stdin: flag(&q.stdin),
        stdout: flag(&q.stdout),
        stderr: flag(&q.stderr),
        resize: None,
    };
    let upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else {
            return;
        };
        let client = hyper_util::rt::TokioIo::new(upgraded);
        match engine.attach(&id, &attach).await {
            Some(monitor) => crate::attach::splice(client, monitor).await,
            None => {
                let mut client = client;
                let _ = client.shutdown().await;
            }
        }
    });
    Ok(switching_protocols(tty))
}

/// The `101 Switching Protocols` answer to a taken-over connection (attach, attached exec):
/// the raw stream for a terminal, Docker's multiplexed frames otherwise.
fn switching_protocols(tty: bool) -> Response {
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "tcp")
        .header(
            header::CONTENT_TYPE,
            if tty {
                "application/vnd.docker.raw-stream"
            } else {
                RAW_STREAM
            },
        )
        .body(Body::empty())
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

#[derive(Deserialize, Default)]
struct ResizeQuery {
    h: Option<u16>,
    w: Option<u16>,
}

impl ResizeQuery {
    /// The terminal size asked for: (rows, columns), both required.
    fn size(&self) -> Result<(u16, u16), EngineError> {
        match (self.h, self.w) {
            (Some(h), Some(w)) => Ok((h, w)),
            _ => Err(EngineError::Invalid(
                "resize needs h and w (rows and columns)".into(),
            )),
        }
    }
}

async fn resize_container(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<ResizeQuery>,
) -> ApiResult {
    let (h, w) = q.size()?;
    engine.resize(&id, h, w).await?;
    Ok(StatusCode::OK.into_response())
}

async fn container_logs(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<LogsQuery>,
) -> ApiResult {
    let (mut stdout, mut stderr) = (flag(&q.stdout), flag(&q.stderr));
    if q.stdout.is_none() && q.stderr.is_none() {
        stdout = true;
        stderr = true;
    }
    let tail = match q.tail.as_deref() {
        None | Some("all") | Some("") => None,
        Some(n) => Some(n.parse::<usize>().map_err(|_| {
            EngineError::Invalid(format!("invalid tail {n:?}: use a number or \"all\""))
        })?),
    };
    let since = match q.since.as_deref() {
        None | Some("") | Some("0") => None,
        Some(s) => Some(
            s.split('.')
                .next()
                .and_then(|x| x.parse::<i64>().ok())
                .ok_or_else(|| {
                    EngineError::Invalid(format!("invalid since {s:?}: use unix seconds"))
                })?,
        ),
    };
    let rx = engine.logs(
        &id,
        LogOptions {
            follow: flag(&q.follow),
            stdout,
            stderr,
            timestamps: flag(&q.timestamps),
            tail,
            since,
        },
    )?;
    Ok(stream_body(rx, RAW_STREAM))
}

#[derive(Deserialize)]
struct StatsQuery {
    stream: Option<String>,
}

async fn container_stats(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<StatsQuery>,
) -> ApiResult {
    let first = engine.stats(&id)?;
    let stream = q.stream.is_none() || flag(&q.stream);
    if !stream {
        return Ok(Json(first).into_response());
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let id = first.id.clone();
    tokio::spawn(async move {
        loop {
            let Ok(s) = engine.stats(&id) else { return };
            let mut line = serde_json::to_vec(&s).unwrap_or_default();
            line.push(b'\n');
            if tx.send(Bytes::from(line)).await.is_err() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    });
    Ok(stream_body(rx, "application/json"))
}

async fn container_top(State(engine): State<AppState>, Path(id): Path<String>) -> ApiResult {
    Ok(Json(engine.top(&id).await?).into_response())
}

async fn prune_containers(State(engine): State<AppState>) -> ApiResult {
    Ok(Json(engine.prune_containers().await?).into_response())
}

async fn exec_create(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let req: ExecCreate = parse_body(&body, "exec config")?;
    let exec_id = engine.exec_create(&id, &req)?;
    Ok((StatusCode::CREATED, Json(IdResponse { id: exec_id })).into_response())
}

/// `POST /exec/{id}/start`. On a connection the client offers to give up (`Upgrade: tcp`, as
/// Docker clients send) the exec is attached: input, a terminal, and the exit code recorded
/// before the connection closes. Otherwise the output streams back as the response body.
async fn exec_start(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    mut request: axum::extract::Request,
) -> ApiResult {
    let wants_upgrade = request.headers().contains_key(header::UPGRADE);
    let body = axum::body::to_bytes(std::mem::take(request.body_mut()), 1 << 20)
        .await
        .map_err(|e| EngineError::Invalid(format!("cannot read the exec start request: {e}")))?;
    let start: berth_engine_client::ExecStart = if body.iter().all(u8::is_ascii_whitespace) {
        Default::default()
    } else {
        parse_body(&body, "exec start request")?
    };
    if wants_upgrade && !start.detach {
        let (container_id, spec, attach_stdin) = engine.exec_begin(&id)?;
        let tty = spec.terminal;
        let upgrade = hyper::upgrade::on(&mut request);
        tokio::spawn(async move {
            let Ok(upgraded) = upgrade.await else {
                engine.exec_finished(&id, 126);
                return;
            };
            let client = hyper_util::rt::TokioIo::new(upgraded);
            engine
                .exec_session(id, container_id, spec, attach_stdin, client)
                .await;
        });
        return Ok(switching_protocols(tty));
    }
    let rx = engine.exec_start(&id)?;
    Ok(stream_body(rx, RAW_STREAM))
}

async fn exec_resize(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<ResizeQuery>,
) -> ApiResult {
    let (h, w) = q.size()?;
    engine.exec_resize(&id, h, w)?;
    Ok(StatusCode::OK.into_response())
}

async fn exec_inspect(State(engine): State<AppState>, Path(id): Path<String>) -> ApiResult {
    Ok(Json(engine.exec_inspect(&id)?).into_response())
}

// ---------------------------------------------------------------------------------------------
// images
// ---------------------------------------------------------------------------------------------

async fn list_images(State(engine): State<AppState>) -> ApiResult {
    let e = engine.clone();
    let images = tokio::task::spawn_blocking(move || e.images.list())
        .await
        .map_err(EngineError::internal)??;
    Ok(Json(images.iter().map(|i| i.summary()).collect::<Vec<_>>()).into_response())
}

/// `/images/{name}/json` and `/images/{name}` with names that contain slashes.
async fn image_get_route(State(engine): State<AppState>, Path(rest): Path<String>) -> ApiResult {
    let Some(name) = rest.strip_suffix("/json") else {
        return Err(EngineError::NotFound(format!(
            "unknown image endpoint /images/{rest}"
        )));
    };
    let e = engine.clone();
    let name = name.to_string();
    let image = tokio::task::spawn_blocking(move || e.images.get(&name))
        .await
        .map_err(EngineError::internal)??;
    Ok(Json(image.inspect()).into_response())
}

#[derive(Deserialize)]
struct TagQuery {
    repo: Option<String>,
    tag: Option<String>,
}

async fn image_post_route(
    State(engine): State<AppState>,
    Path(rest): Path<String>,
    Query(q): Query<TagQuery>,
    headers: axum::http::HeaderMap,
) -> ApiResult {
    if let Some(name) = rest.strip_suffix("/push") {
        return crate::distribution::push_image(engine, name, q.tag, headers).await;
    }
    let Some(name) = rest.strip_suffix("/tag") else {
        return Err(EngineError::NotFound(format!(
            "unknown image endpoint /images/{rest}"
        )));
    };
    let repo = q
        .repo
        .filter(|r| !r.is_empty())
        .ok_or_else(|| EngineError::Invalid("tag: repo is required".into()))?;
    let target = match q.tag.filter(|t| !t.is_empty()) {
        Some(t) => format!("{repo}:{t}"),
        None => repo,
    };
    let e = engine.clone();
    let name = name.to_string();
    let t2 = target.clone();
    tokio::task::spawn_blocking(move || e.images.tag(&name, &t2))
        .await
        .map_err(EngineError::internal)??;
    engine
        .events
        .publish("image", "tag", &target, Default::default());
    Ok(StatusCode::CREATED.into_response())
}

#[derive(Deserialize)]
struct ImageRemoveQuery {
    force: Option<String>,
}

async fn remove_image(
    State(engine): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<ImageRemoveQuery>,
) -> ApiResult {
    let force = flag(&q.force);
    let e = engine.clone();
    let n = name.clone();
    let image = tokio::task::spawn_blocking(move || e.images.get(&n))
        .await
        .map_err(EngineError::internal)??;
    let users = engine.image_in_use_by(&image.id);
    let untag_only = image.repo_tags.len() > 1
        && !name.starts_with("sha256:")
        && !image.id.trim_start_matches("sha256:").starts_with(&name);
    if !users.is_empty() && !untag_only {
        return Err(EngineError::Conflict(format!(
            "conflict: unable to remove image {name}: it is being used by container {}; remove the container first",
            &users[0][..12]
        )));
    }
    let e = engine.clone();
    let items = tokio::task::spawn_blocking(move || e.images.remove(&name, force))
        .await
        .map_err(EngineError::internal)??;
    for item in &items {
        if let Some(d) = &item.deleted {
            engine
                .events
                .publish("image", "delete", d, Default::default());
        } else if let Some(u) = &item.untagged {
            engine
                .events
                .publish("image", "untag", u, Default::default());
        }
    }
    Ok(Json(items).into_response())
}

/// Copies a request body into a staging file under the engine's tmp dir.
pub(crate) async fn stage_body(
    engine: &Engine,
    body: Body,
) -> Result<tempfile_path::StagedFile, EngineError> {
    let staged = tempfile_path::StagedFile::new(&engine.paths.tmp())?;
    let mut file = tokio::fs::File::create(&staged.path).await?;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| EngineError::Invalid(format!("upload interrupted: {e}")))?;
        file.write_all(&chunk).await?;
    }
    file.flush().await?;
    Ok(staged)
}

pub(crate) mod tempfile_path {
    use std::path::{Path, PathBuf};

    /// A staging file removed on drop.
    pub struct StagedFile {
        pub path: PathBuf,
    }

    impl StagedFile {
        pub fn new(dir: &Path) -> std::io::Result<Self> {
            std::fs::create_dir_all(dir)?;
            let path = dir.join(format!("upload-{}", crate::names::new_id()));
            Ok(Self { path })
        }
    }

    impl Drop for StagedFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[derive(Deserialize)]
struct ImportQuery {
    tag: Option<String>,
    repo: Option<String>,
}

async fn import_image(
    State(engine): State<AppState>,
    Query(q): Query<ImportQuery>,
    body: Body,
) -> ApiResult {
    import_body(engine, q.tag.or(q.repo), body).await
}

/// Imports a root filesystem tar body tagged `tag` (`POST /images/import`, and
/// `POST /images/create?fromSrc=-`).
pub(crate) async fn import_body(engine: AppState, tag: Option<String>, body: Body) -> ApiResult {
    let tag = tag
        .filter(|t| !t.is_empty())
        .ok_or_else(|| EngineError::Invalid("image import needs a tag: --tag NAME[:TAG]".into()))?;
    let staged = stage_body(&engine, body).await?;
    let e = engine.clone();
    let image = tokio::task::spawn_blocking(move || {
        let f = std::fs::File::open(&staged.path)?;
        e.images.import_rootfs(f, &tag).map_err(EngineError::from)
    })
    .await
    .map_err(EngineError::internal)??;
    engine
        .events
        .publish("image", "import", &image.id, Default::default());
    Ok(Json(berth_engine_client::ImageLoaded {
        id: image.id.clone(),
        repo_tags: image.repo_tags.clone(),
    })
    .into_response())
}

async fn load_images(State(engine): State<AppState>, body: Body) -> ApiResult {
    let staged = stage_body(&engine, body).await?;
    let e = engine.clone();
    let images = tokio::task::spawn_blocking(move || {
        let f = std::fs::File::open(&staged.path)?;
        e.images.load(f).map_err(EngineError::from)
    })
    .await
    .map_err(EngineError::internal)??;
    for i in &images {
        engine
            .events
            .publish("image", "load", &i.id, Default::default());
    }
    Ok(Json(ImagesLoaded {
        images: images
            .iter()
            .map(|i| berth_engine_client::ImageLoaded {
                id: i.id.clone(),
                repo_tags: i.repo_tags.clone(),
            })
            .collect(),
    })
    .into_response())
}

async fn save_images(
    State(engine): State<AppState>,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> ApiResult {
    let names: Vec<String> = raw
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| *k == "names")
        .map(|(_, v)| percent_decode(v))
        .collect();
    if names.is_empty() {
        return Err(EngineError::Invalid(
            "image save needs at least one image name".into(),
        ));
    }
    for n in &names {
        engine.images.get(n)?;
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let e = engine.clone();
    tokio::task::spawn_blocking(move || {
        let writer = ChannelWriter { tx };
        if let Err(err) = e.images.save(&names, writer) {
            tracing::warn!("image save failed: {err}");
        }
    });
    Ok(stream_body(rx, "application/x-tar"))
}

pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(b) => {
                    out.push(b);
                    i += 3;
                    continue;
                }
                Err(_) => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A blocking writer feeding an async response body.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Bytes>,
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tx
            .blocking_send(Bytes::copy_from_slice(buf))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[derive(Deserialize)]
struct PruneQuery {
    all: Option<String>,
    volumes: Option<String>,
}

async fn prune_images(State(engine): State<AppState>, Query(q): Query<PruneQuery>) -> ApiResult {
    Ok(Json(engine.prune_images(flag(&q.all)).await?).into_response())
}

// ---------------------------------------------------------------------------------------------
// volumes, system, events
// ---------------------------------------------------------------------------------------------

async fn list_volumes(State(engine): State<AppState>) -> ApiResult {
    Ok(Json(VolumeList {
        volumes: engine.volumes.list(),
    })
    .into_response())
}

async fn create_volume(State(engine): State<AppState>, body: Bytes) -> ApiResult {
    let req: VolumeCreate = if body.is_empty() {
        VolumeCreate::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| EngineError::Invalid(format!("invalid volume config: {e}")))?
    };
    let name = if req.name.is_empty() {
        crate::names::new_id()
    } else {
        req.name
    };
    let v = engine.volumes.create(&name, req.labels)?;
    engine
        .events
        .publish("volume", "create", &name, Default::default());
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

async fn inspect_volume(State(engine): State<AppState>, Path(name): Path<String>) -> ApiResult {
    Ok(Json(engine.volumes.get(&name)?).into_response())
}

async fn remove_volume(
    State(engine): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<RemoveQuery>,
) -> ApiResult {
    let _ = flag(&q.force);
    engine.volumes.get(&name)?;
    let users = engine.volume_in_use_by(&name);
    if !users.is_empty() {
        return Err(EngineError::Conflict(format!(
            "remove {name}: volume is in use by container {}; remove the container first",
            &users[0][..12]
        )));
    }
    engine.volumes.remove(&name)?;
    engine
        .events
        .publish("volume", "destroy", &name, Default::default());
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn prune_volumes(State(engine): State<AppState>) -> ApiResult {
    Ok(Json(engine.prune_volumes()?).into_response())
}

async fn list_networks(State(engine): State<AppState>) -> ApiResult {
    Ok(Json(engine.list_networks()).into_response())
}

async fn create_network(State(engine): State<AppState>, body: Bytes) -> ApiResult {
    let req: berth_engine_client::NetworkCreate = parse_body(&body, "network create request")?;
    Ok((StatusCode::CREATED, Json(engine.create_network(req).await?)).into_response())
}

async fn inspect_network(State(engine): State<AppState>, Path(id): Path<String>) -> ApiResult {
    Ok(Json(engine.inspect_network(&id)?).into_response())
}

async fn remove_network(State(engine): State<AppState>, Path(id): Path<String>) -> ApiResult {
    engine.remove_network(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn connect_network(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let req: berth_engine_client::NetworkConnect = parse_body(&body, "network connect request")?;
    engine.connect_network(&id, req).await?;
    Ok(StatusCode::OK.into_response())
}

async fn disconnect_network(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let req: berth_engine_client::NetworkDisconnect =
        parse_body(&body, "network disconnect request")?;
    engine.disconnect_network(&id, req).await?;
    Ok(StatusCode::OK.into_response())
}

async fn prune_networks(State(engine): State<AppState>) -> ApiResult {
    Ok(Json(engine.prune_networks().await?).into_response())
}

async fn disk_usage(State(engine): State<AppState>) -> ApiResult {
    let e = engine.clone();
    let df = tokio::task::spawn_blocking(move || e.disk_usage())
        .await
        .map_err(EngineError::internal)??;
    Ok(Json(df).into_response())
}

async fn prune_system(State(engine): State<AppState>, Query(q): Query<PruneQuery>) -> ApiResult {
    let mut report = engine.prune_containers().await?;
    if flag(&q.volumes) {
        let v = engine.prune_volumes()?;
        report.volumes_deleted = v.volumes_deleted;
        report.space_reclaimed += v.space_reclaimed;
    }
    let i = engine.prune_images(flag(&q.all)).await?;
    report.images_deleted = i.images_deleted;
    report.space_reclaimed += i.space_reclaimed;
    Ok(Json(report).into_response())
}

#[derive(Deserialize)]
struct EventsQuery {
    since: Option<String>,
    until: Option<String>,
    filters: Option<String>,
}

async fn events(State(engine): State<AppState>, Query(q): Query<EventsQuery>) -> ApiResult {
    let filters = parse_filters(&q.filters)?;
    let parse_time = |v: &Option<String>| -> Result<Option<i64>, EngineError> {
        match v.as_deref() {
            None | Some("") => Ok(None),
            Some(s) => s
                .split('.')
                .next()
                .and_then(|x| x.parse::<i64>().ok())
                .map(Some)
                .ok_or_else(|| {
                    EngineError::Invalid(format!("invalid time {s:?}: use unix seconds"))
                }),
        }
    };
    let since = parse_time(&q.since)?;
    let until = parse_time(&q.until)?;
    let mut live = engine.events.subscribe();
    let history = since
        .map(|s| engine.events.history_since(s))
        .unwrap_or_default();
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let keep = move |e: &berth_engine_client::Event| -> bool {
        filters.iter().all(|(k, vals)| {
            vals.is_empty()
                || match k.as_str() {
                    "type" => vals.contains(&e.kind),
                    "event" | "action" => vals.iter().any(|v| e.action.starts_with(v.as_str())),
                    "container" | "id" => vals.iter().any(|v| {
                        e.actor.id.starts_with(v.as_str())
                            || e.actor.attributes.get("name") == Some(v)
                    }),
                    _ => true,
                }
        })
    };
    tokio::spawn(async move {
        let send = |e: &berth_engine_client::Event| {
            let mut line = serde_json::to_vec(e).unwrap_or_default();
            line.push(b'\n');
            Bytes::from(line)
        };
        for e in history.iter().filter(|e| keep(e)) {
            if until.map(|u| e.time > u).unwrap_or(false) {
                return;
            }
            if tx.send(send(e)).await.is_err() {
                return;
            }
        }
        loop {
            let deadline = until.map(|u| {
                let now = chrono::Utc::now().timestamp();
                std::time::Duration::from_secs((u - now).max(0) as u64)
            });
            let next = match deadline {
                Some(d) => match tokio::time::timeout(d, live.recv()).await {
                    Ok(r) => r,
                    Err(_) => return,
                },
                None => live.recv().await,
            };
            match next {
                Ok(e) if keep(&e) => {
                    if tx.send(send(&e)).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return,
            }
        }
    });
    Ok(stream_body(rx, "application/json"))
}

/// `POST /build` (Docker's classic builder API): the body is the context tar; the answer is
/// a stream of JSON lines (`stream`, `aux` with the image id, or `error` + `errorDetail`).
async fn build_image(
    State(engine): State<AppState>,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
    body: Body,
) -> ApiResult {
    use crate::build::{BuildOptions, Progress};
    let mut opts = BuildOptions::default();
    for kv in raw.unwrap_or_default().split('&') {
        let Some((k, v)) = kv.split_once('=') else {
            continue;
        };
        let v = percent_decode(&v.replace('+', "%20"));
        match k {
            "t" if !v.is_empty() => opts.tags.push(v),
            "dockerfile" => opts.dockerfile = v,
            "target" => opts.target = Some(v),
            "nocache" => opts.no_cache = matches!(v.as_str(), "1" | "true" | "True"),
            "networkmode" => opts.network = v,
            "buildargs" if !v.is_empty() => {
                opts.build_args = serde_json::from_str(&v)
                    .map_err(|e| EngineError::Invalid(format!("invalid buildargs {v:?}: {e}")))?
            }
            _ => {}
        }
    }
    for t in &opts.tags {
        berth_image::reference::normalize_tag(t).map_err(EngineError::from)?;
    }
    match opts.network.as_str() {
        "" | "default" | "none" | "host" | "bridge" => {}
        other => {
            return Err(EngineError::Invalid(format!(
                "unsupported build network {other:?}: use none, host or bridge"
            )))
        }
    }
    let staged = stage_body(&engine, body).await?;
    let ctx_dir = engine
        .paths
        .tmp()
        .join(format!("context-{}", crate::names::new_id()));
    let (src, dst) = (staged.path.clone(), ctx_dir.clone());
    let unpacked = tokio::task::spawn_blocking(move || -> Result<(), EngineError> {
        std::fs::create_dir_all(&dst)?;
        let f = std::fs::File::open(&src)?;
        let r = berth_image::unpack::decompressed(std::io::BufReader::new(f), "build context")?;
        let mut ar = tar::Archive::new(r);
        ar.set_preserve_permissions(true);
        ar.unpack(&dst)
            .map_err(|e| EngineError::Invalid(format!("reading the build context: {e}")))
    })
    .await
    .map_err(EngineError::internal)?;
    drop(staged);
    if let Err(e) = unpacked {
        let _ = std::fs::remove_dir_all(&ctx_dir);
        return Err(e);
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Progress>(256);
    let (btx, brx) = tokio::sync::mpsc::channel::<Bytes>(256);
    let line = |v: serde_json::Value| Bytes::from(format!("{v}\r\n"));
    let fwd_tx = btx.clone();
    let forward = tokio::spawn(async move {
        while let Some(p) = rx.recv().await {
            let v = match p {
                Progress::Stream(s) => serde_json::json!({ "stream": s }),
                Progress::Aux(id) => serde_json::json!({ "aux": { "ID": id } }),
            };
            let _ = fwd_tx.send(line(v)).await;
        }
    });
    tokio::spawn(async move {
        let result = crate::build::build(engine.clone(), ctx_dir.clone(), opts, tx).await;
        let _ = forward.await;
        match result {
            Ok(id) => engine
                .events
                .publish("image", "build", &id, Default::default()),
            Err(e) => {
                let msg = e.to_string();
                let _ = btx
                    .send(line(serde_json::json!({
                        "errorDetail": { "message": msg },
                        "error": msg,
                    })))
                    .await;
            }
        }
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(&ctx_dir)).await;
    });
    Ok(stream_body(brx, "application/json"))
}
