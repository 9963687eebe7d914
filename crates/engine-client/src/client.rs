//! Async HTTP client for the engine API over the engine's unix socket.
//!
//! Every request opens its own HTTP/1.1 connection (`hyper::client::conn::http1`) over a
//! [`tokio::net::UnixStream`]; the connection task lives as long as the response body, so
//! streaming answers (logs, exec output, events, stats, image export) are read incrementally and
//! uploads (image import/load) are streamed from an [`AsyncRead`] or any byte stream without
//! holding the archive in memory.
//!
//! Path segments (container ids and names, image references such as `reg:5000/a/b:tag`) and query
//! values are percent-encoded. Failures are a [`ClientError`]: connection failures name the
//! socket and suggest starting the engine, API errors carry the HTTP status and the engine's
//! `message`, decode errors say which answer could not be read.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;

use bytes::{Bytes, BytesMut};
use futures_util::stream::{self, Stream, StreamExt};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::UnixStream;

use crate::frame::{Decoder, StreamKind};
use crate::types::*;

/// Failure talking to the engine.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The engine address is not one this client can use.
    #[error("invalid engine address {address:?}: {reason}")]
    InvalidHost { address: String, reason: String },
    /// The socket could not be reached.
    #[error("cannot connect to the berth engine at {host}: {cause}; is `berth engine` running?")]
    Connect { host: String, cause: String },
    /// The engine answered with a 4xx/5xx status.
    #[error("{message}")]
    Api { status: u16, message: String },
    /// The engine's answer could not be decoded.
    #[error("cannot decode the engine's answer to {what}: {cause}")]
    Decode { what: String, cause: String },
    /// The HTTP exchange failed after connecting (connection reset, malformed response...).
    #[error("talking to the berth engine at {host} failed: {cause}")]
    Transport { host: String, cause: String },
    /// Reading an upload body failed.
    #[error("reading the upload failed: {0}")]
    Upload(String),
}

impl ClientError {
    /// HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True for a 404 answer (no such container/image/volume/exec).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}

type Result<T> = std::result::Result<T, ClientError>;

/// A request body: empty, a buffer, or a stream of chunks.
pub type RequestBody = BoxBody<Bytes, io::Error>;

/// A stream of raw bytes (e.g. an image archive from `GET /images/get`).
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>;

/// A stream of demultiplexed output frames (logs, exec output).
pub type FrameStream = Pin<Box<dyn Stream<Item = Result<(StreamKind, Bytes)>> + Send>>;

/// A stream of newline-delimited JSON values.
pub type JsonStream<T> = Pin<Box<dyn Stream<Item = Result<T>> + Send>>;

/// Options of `GET /containers/{id}/logs`.
#[derive(Debug, Clone)]
pub struct LogsOptions {
    pub follow: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub timestamps: bool,
    /// `None` = all lines.
    pub tail: Option<u64>,
    /// Unix seconds.
    pub since: Option<i64>,
}

impl Default for LogsOptions {
    fn default() -> Self {
        Self {
            follow: false,
            stdout: true,
            stderr: true,
            timestamps: false,
            tail: None,
            since: None,
        }
    }
}

/// Docker-style filters: `{"status":["running"],"label":["k=v"]}`.
pub type Filters = BTreeMap<String, Vec<String>>;

/// Client for one engine socket. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EngineClient {
    host: String,
    socket: PathBuf,
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Builds `?k=v&k2=v2` (values percent-encoded), or "" when empty.
fn query(pairs: &[(&str, String)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", percent_encode(v)))
        .collect();
    format!("?{}", parts.join("&"))
}

fn filters_pair(filters: &Filters) -> Option<(&'static str, String)> {
    if filters.is_empty() {
        None
    } else {
        Some((
            "filters",
            serde_json::to_string(filters).unwrap_or_else(|_| "{}".into()),
        ))
    }
}

fn empty_body() -> RequestBody {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed()
}

fn json_body<T: Serialize>(value: &T) -> Result<RequestBody> {
    let bytes = serde_json::to_vec(value).map_err(|e| ClientError::Decode {
        what: "the request".into(),
        cause: e.to_string(),
    })?;
    Ok(Full::new(Bytes::from(bytes))
        .map_err(|never| match never {})
        .boxed())
}

/// Wraps a stream of chunks as a request body.
pub fn stream_body<S>(s: S) -> RequestBody
where
    S: Stream<Item = io::Result<Bytes>> + Send + Sync + 'static,
{
    BodyExt::boxed(StreamBody::new(s.map(|r| r.map(Frame::data))))
}

/// Turns an [`AsyncRead`] into a stream of chunks (64 KiB reads).
pub fn reader_stream<R>(reader: R) -> impl Stream<Item = io::Result<Bytes>> + Send + Sync + 'static
where
    R: AsyncRead + Unpin + Send + Sync + 'static,
{
    stream::unfold(Some(reader), |state| async move {
        let mut reader = state?;
        let mut buf = BytesMut::with_capacity(64 * 1024);
        match reader.read_buf(&mut buf).await {
            Ok(0) => None,
            Ok(_) => Some((Ok(buf.freeze()), Some(reader))),
            Err(e) => Some((Err(e), None)),
        }
    })
}

/// Turns a channel of chunks into a stream (for producers running on a blocking thread, such as
/// a tar writer).
pub fn channel_stream(
    rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
) -> impl Stream<Item = io::Result<Bytes>> + Send + Sync + 'static {
    stream::unfold(rx, |mut rx| async move {
        let item = rx.recv().await?;
        Some((item, rx))
    })
}

impl EngineClient {
    /// A client for `unix:///path` (or a bare absolute socket path).
    pub fn new(host: &str) -> Result<EngineClient> {
        let socket = if let Some(path) = host.strip_prefix("unix://") {
            path
        } else if host.starts_with('/') {
            host
        } else if host.starts_with("tcp://") || host.starts_with("http://") {
            return Err(ClientError::InvalidHost {
                address: host.into(),
                reason: "only unix sockets are supported; use unix:///path/to/engine.sock".into(),
            });
        } else {
            return Err(ClientError::InvalidHost {
                address: host.into(),
                reason: "expected unix:///path/to/engine.sock".into(),
            });
        };
        if !socket.starts_with('/') {
            return Err(ClientError::InvalidHost {
                address: host.into(),
                reason: "the socket path must be absolute (unix:///path/to/engine.sock)".into(),
            });
        }
        let host = if host.starts_with("unix://") {
            host.to_string()
        } else {
            format!("unix://{host}")
        };
        Ok(EngineClient {
            host,
            socket: PathBuf::from(socket),
        })
    }

    /// The engine address (`unix:///...`).
    pub fn host(&self) -> &str {
        &self.host
    }

    fn transport(&self, e: impl std::fmt::Display) -> ClientError {
        ClientError::Transport {
            host: self.host.clone(),
            cause: e.to_string(),
        }
    }

    /// Sends one request on a fresh connection and returns the response (any status).
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        body: RequestBody,
        content_type: Option<&str>,
    ) -> Result<Response<Incoming>> {
        self.send_with(method, path_and_query, body, content_type, false, &[])
            .await
    }

    /// [`Self::send`], optionally asking to take the connection over (`Upgrade: tcp`).
    async fn send_with(
        &self,
        method: Method,
        path_and_query: &str,
        body: RequestBody,
        content_type: Option<&str>,
        upgrade: bool,
        extra_headers: &[(&str, String)],
    ) -> Result<Response<Incoming>> {
        let stream = UnixStream::connect(&self.socket)
            .await
            .map_err(|e| ClientError::Connect {
                host: self.host.clone(),
                cause: e.to_string(),
            })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ClientError::Connect {
                host: self.host.clone(),
                cause: e.to_string(),
            })?;
        tokio::spawn(async move {
            // Errors surface through the response or its body.
            let _ = conn.with_upgrades().await;
        });
        let mut builder = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(hyper::header::HOST, "berth");
        if upgrade {
            builder = builder
                .header(hyper::header::CONNECTION, "Upgrade")
                .header(hyper::header::UPGRADE, "tcp");
        }
        if let Some(ct) = content_type {
            builder = builder.header(hyper::header::CONTENT_TYPE, ct);
        }
        for (k, v) in extra_headers {
            builder = builder.header(*k, v.as_str());
        }
        let req = builder.body(body).map_err(|e| self.transport(e))?;
        sender.send_request(req).await.map_err(|e| {
            // A failing upload body surfaces as a hyper error whose source is the io error.
            let mut src: Option<&dyn std::error::Error> = std::error::Error::source(&e);
            while let Some(s) = src {
                if let Some(io) = s.downcast_ref::<io::Error>() {
                    return ClientError::Upload(io.to_string());
                }
                src = s.source();
            }
            self.transport(e)
        })
    }

    /// Sends a request and turns a non-2xx status into [`ClientError::Api`].
    async fn request(
        &self,
        method: Method,
        path_and_query: &str,
        body: RequestBody,
        content_type: Option<&str>,
    ) -> Result<Response<Incoming>> {
        let resp = self
            .send(method, path_and_query, body, content_type)
            .await?;
        Self::check_status(resp).await
    }

    /// Attaches to a container's stdio (`POST /containers/{id}/attach`, connection taken
    /// over). The stream carries the container's output — raw bytes for a terminal, frames
    /// (see [`crate::frame`]) otherwise — and takes its input when `stdin` is set. It ends
    /// when the container's output ends.
    pub async fn attach(
        &self,
        id: &str,
        stdin: bool,
        stdout: bool,
        stderr: bool,
    ) -> Result<TokioIo<hyper::upgrade::Upgraded>> {
        let bit = |b: bool| if b { 1 } else { 0 };
        let path = format!(
            "/containers/{}/attach?stream=1&stdin={}&stdout={}&stderr={}",
            percent_encode(id),
            bit(stdin),
            bit(stdout),
            bit(stderr)
        );
        self.upgrade(&path, empty_body(), None).await
    }

    /// Starts an exec attached (`POST /exec/{id}/start`, connection taken over): the stream
    /// carries its output (raw for a terminal, frames otherwise) and takes its input; it ends
    /// when the process has exited and its exit code is recorded.
    pub async fn exec_attach(
        &self,
        id: &str,
        tty: bool,
    ) -> Result<TokioIo<hyper::upgrade::Upgraded>> {
        let path = format!("/exec/{}/start", percent_encode(id));
        let body = json_body(&ExecStart { detach: false, tty })?;
        self.upgrade(&path, body, Some("application/json")).await
    }

    /// Sets the terminal size of an `exec -t`.
    pub async fn exec_resize(&self, id: &str, height: u16, width: u16) -> Result<()> {
        let path = format!("/exec/{}/resize?h={height}&w={width}", percent_encode(id));
        self.request(Method::POST, &path, empty_body(), None)
            .await?;
        Ok(())
    }

    /// POSTs to `path` asking to take the connection over; returns the raw stream.
    async fn upgrade(
        &self,
        path: &str,
        body: RequestBody,
        content_type: Option<&str>,
    ) -> Result<TokioIo<hyper::upgrade::Upgraded>> {
        let resp = self
            .send_with(Method::POST, path, body, content_type, true, &[])
            .await?;
        let resp = Self::check_status(resp).await?;
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            return Err(self.transport(format!(
                "the engine did not take over the connection ({})",
                resp.status()
            )));
        }
        let upgraded = hyper::upgrade::on(resp)
            .await
            .map_err(|e| self.transport(e))?;
        Ok(TokioIo::new(upgraded))
    }

    /// Sets the terminal size of a `-t` container.
    pub async fn resize_container(&self, id: &str, height: u16, width: u16) -> Result<()> {
        let path = format!(
            "/containers/{}/resize?h={height}&w={width}",
            percent_encode(id)
        );
        self.request(Method::POST, &path, empty_body(), None)
            .await?;
        Ok(())
    }

    /// Turns a 4xx/5xx response into [`ClientError::Api`] with the engine's message.
    async fn check_status(resp: Response<Incoming>) -> Result<Response<Incoming>> {
        let status = resp.status();
        if status.is_client_error() || status.is_server_error() {
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            let message = match serde_json::from_slice::<ErrorResponse>(&bytes) {
                Ok(e) if !e.message.is_empty() => e.message,
                _ => {
                    let text = String::from_utf8_lossy(&bytes).trim().to_string();
                    if text.is_empty() {
                        format!(
                            "engine answered {} {}",
                            status.as_u16(),
                            status.canonical_reason().unwrap_or("")
                        )
                    } else {
                        text
                    }
                }
            };
            return Err(ClientError::Api {
                status: status.as_u16(),
                message,
            });
        }
        Ok(resp)
    }

    async fn body_bytes(&self, resp: Response<Incoming>) -> Result<Bytes> {
        resp.into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .map_err(|e| self.transport(e))
    }

    async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let resp = self.request(Method::GET, path, empty_body(), None).await?;
        self.decode(resp, path).await
    }

    async fn decode<T: DeserializeOwned>(&self, resp: Response<Incoming>, what: &str) -> Result<T> {
        let bytes = self.body_bytes(resp).await?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
            what: what.to_string(),
            cause: e.to_string(),
        })
    }

    async fn post_json<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        let resp = self
            .request(
                Method::POST,
                path,
                json_body(body)?,
                Some("application/json"),
            )
            .await?;
        self.decode(resp, path).await
    }

    async fn post_body<B: Serialize>(&self, path: &str, body: &B) -> Result<()> {
        let resp = self
            .request(
                Method::POST,
                path,
                json_body(body)?,
                Some("application/json"),
            )
            .await?;
        self.body_bytes(resp).await?;
        Ok(())
    }

    async fn post_empty(&self, path: &str) -> Result<StatusCode> {
        let resp = self.request(Method::POST, path, empty_body(), None).await?;
        let status = resp.status();
        self.body_bytes(resp).await?;
        Ok(status)
    }

    async fn post_decode<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let resp = self.request(Method::POST, path, empty_body(), None).await?;
        self.decode(resp, path).await
    }

    async fn delete(&self, path: &str) -> Result<Bytes> {
        let resp = self
            .request(Method::DELETE, path, empty_body(), None)
            .await?;
        self.body_bytes(resp).await
    }

    fn byte_stream(&self, resp: Response<Incoming>) -> ByteStream {
        let host = self.host.clone();
        let body = resp.into_body();
        Box::pin(stream::unfold(Some(body), move |state| {
            let host = host.clone();
            async move {
                let mut body = state?;
                loop {
                    match body.frame().await {
                        None => return None,
                        Some(Err(e)) => {
                            return Some((
                                Err(ClientError::Transport {
                                    host,
                                    cause: e.to_string(),
                                }),
                                None,
                            ))
                        }
                        Some(Ok(frame)) => {
                            if let Ok(data) = frame.into_data() {
                                if !data.is_empty() {
                                    return Some((Ok(data), Some(body)));
                                }
                            }
                        }
                    }
                }
            }
        }))
    }

    fn frame_stream(&self, resp: Response<Incoming>) -> FrameStream {
        let bytes = self.byte_stream(resp);
        Box::pin(stream::unfold(
            (bytes, Decoder::new(), false),
            |(mut bytes, mut dec, done)| async move {
                loop {
                    if let Some((kind, payload)) = dec.next_frame() {
                        return Some((Ok((kind, Bytes::from(payload))), (bytes, dec, done)));
                    }
                    if done {
                        return None;
                    }
                    match bytes.next().await {
                        None => return None,
                        Some(Err(e)) => return Some((Err(e), (bytes, dec, true))),
                        Some(Ok(chunk)) => dec.push(&chunk),
                    }
                }
            },
        ))
    }

    fn json_lines<T: DeserializeOwned + Send + 'static>(
        &self,
        resp: Response<Incoming>,
        what: &str,
    ) -> JsonStream<T> {
        let bytes = self.byte_stream(resp);
        let what = what.to_string();
        Box::pin(stream::unfold(
            (bytes, Vec::<u8>::new(), false, what),
            |(mut bytes, mut buf, mut done, what)| async move {
                loop {
                    if let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = buf.drain(..=pos).collect();
                        let line = &line[..line.len() - 1];
                        if line.iter().all(|b| b.is_ascii_whitespace()) {
                            continue;
                        }
                        let item = serde_json::from_slice(line).map_err(|e| ClientError::Decode {
                            what: what.clone(),
                            cause: e.to_string(),
                        });
                        return Some((item, (bytes, buf, done, what)));
                    }
                    if done {
                        if buf.iter().all(|b| b.is_ascii_whitespace()) {
                            return None;
                        }
                        let line = std::mem::take(&mut buf);
                        let item = serde_json::from_slice(&line).map_err(|e| ClientError::Decode {
                            what: what.clone(),
                            cause: e.to_string(),
                        });
                        return Some((item, (bytes, buf, done, what)));
                    }
                    match bytes.next().await {
                        None => done = true,
                        Some(Err(e)) => return Some((Err(e), (bytes, Vec::new(), true, what))),
                        Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
                    }
                }
            },
        ))
    }

    // -----------------------------------------------------------------------------------------
    // System
    // -----------------------------------------------------------------------------------------

    /// `GET /_ping`.
    pub async fn ping(&self) -> Result<()> {
        let resp = self
            .request(Method::GET, "/_ping", empty_body(), None)
            .await?;
        self.body_bytes(resp).await?;
        Ok(())
    }

    /// `GET /version`.
    pub async fn version(&self) -> Result<VersionInfo> {
        self.get_json("/version").await
    }

    /// `GET /system/df`.
    pub async fn disk_usage(&self) -> Result<DiskUsage> {
        self.get_json("/system/df").await
    }

    /// `POST /system/prune`.
    pub async fn system_prune(&self, all: bool, volumes: bool) -> Result<PruneReport> {
        let mut q = Vec::new();
        if all {
            q.push(("all", "1".to_string()));
        }
        if volumes {
            q.push(("volumes", "1".to_string()));
        }
        self.post_decode(&format!("/system/prune{}", query(&q)))
            .await
    }

    /// `GET /events`: a stream of events (ends at `until`, or never without it).
    pub async fn events(
        &self,
        since: Option<i64>,
        until: Option<i64>,
        filters: &Filters,
    ) -> Result<JsonStream<Event>> {
        let mut q = Vec::new();
        if let Some(s) = since {
            q.push(("since", s.to_string()));
        }
        if let Some(u) = until {
            q.push(("until", u.to_string()));
        }
        q.extend(filters_pair(filters));
        let path = format!("/events{}", query(&q));
        let resp = self.request(Method::GET, &path, empty_body(), None).await?;
        Ok(self.json_lines(resp, "/events"))
    }

    // -----------------------------------------------------------------------------------------
    // Containers
    // -----------------------------------------------------------------------------------------

    /// `POST /containers/create[?name=NAME]`.
    pub async fn create_container(
        &self,
        config: &ContainerCreate,
        name: Option<&str>,
    ) -> Result<ContainerCreated> {
        let q: Vec<(&str, String)> = name.map(|n| ("name", n.to_string())).into_iter().collect();
        self.post_json(&format!("/containers/create{}", query(&q)), config)
            .await
    }

    /// `GET /containers/json`.
    pub async fn list_containers(
        &self,
        all: bool,
        filters: &Filters,
    ) -> Result<Vec<ContainerSummary>> {
        let mut q = Vec::new();
        if all {
            q.push(("all", "1".to_string()));
        }
        q.extend(filters_pair(filters));
        self.get_json(&format!("/containers/json{}", query(&q)))
            .await
    }

    /// `GET /containers/{id}/json`.
    pub async fn inspect_container(&self, id: &str) -> Result<ContainerInspect> {
        self.get_json(&format!("/containers/{}/json", percent_encode(id)))
            .await
    }

    /// `GET /containers/{id}/json` as raw JSON (keeps fields this client does not model).
    pub async fn inspect_container_raw(&self, id: &str) -> Result<serde_json::Value> {
        self.get_json(&format!("/containers/{}/json", percent_encode(id)))
            .await
    }

    /// `POST /containers/{id}/start`. Returns false if it was already running (304).
    pub async fn start_container(&self, id: &str) -> Result<bool> {
        let status = self
            .post_empty(&format!("/containers/{}/start", percent_encode(id)))
            .await?;
        Ok(status != StatusCode::NOT_MODIFIED)
    }

    /// `POST /containers/{id}/stop[?t=SECONDS]`. Returns false if it was not running (304).
    pub async fn stop_container(&self, id: &str, timeout: Option<i64>) -> Result<bool> {
        let q: Vec<(&str, String)> = timeout.map(|t| ("t", t.to_string())).into_iter().collect();
        let status = self
            .post_empty(&format!(
                "/containers/{}/stop{}",
                percent_encode(id),
                query(&q)
            ))
            .await?;
        Ok(status != StatusCode::NOT_MODIFIED)
    }

    /// `POST /containers/{id}/restart[?t=SECONDS]`.
    pub async fn restart_container(&self, id: &str, timeout: Option<i64>) -> Result<()> {
        let q: Vec<(&str, String)> = timeout.map(|t| ("t", t.to_string())).into_iter().collect();
        self.post_empty(&format!(
            "/containers/{}/restart{}",
            percent_encode(id),
            query(&q)
        ))
        .await?;
        Ok(())
    }

    /// `POST /containers/{id}/kill[?signal=SIG]`.
    pub async fn kill_container(&self, id: &str, signal: Option<&str>) -> Result<()> {
        let q: Vec<(&str, String)> = signal
            .map(|s| ("signal", s.to_string()))
            .into_iter()
            .collect();
        self.post_empty(&format!(
            "/containers/{}/kill{}",
            percent_encode(id),
            query(&q)
        ))
        .await?;
        Ok(())
    }

    /// `POST /containers/{id}/wait?condition=...` (blocks until the condition is met).
    pub async fn wait_container(&self, id: &str, condition: Option<&str>) -> Result<WaitResponse> {
        let q: Vec<(&str, String)> = condition
            .map(|c| ("condition", c.to_string()))
            .into_iter()
            .collect();
        self.post_decode(&format!(
            "/containers/{}/wait{}",
            percent_encode(id),
            query(&q)
        ))
        .await
    }

    /// `DELETE /containers/{id}[?force=1&v=1]`.
    pub async fn remove_container(&self, id: &str, force: bool, volumes: bool) -> Result<()> {
        let mut q = Vec::new();
        if force {
            q.push(("force", "1".to_string()));
        }
        if volumes {
            q.push(("v", "1".to_string()));
        }
        self.delete(&format!("/containers/{}{}", percent_encode(id), query(&q)))
            .await?;
        Ok(())
    }

    /// `GET /containers/{id}/logs`: demultiplexed output frames.
    pub async fn logs(&self, id: &str, opts: &LogsOptions) -> Result<FrameStream> {
        let mut q = Vec::new();
        let flag = |b: bool| if b { "1" } else { "0" }.to_string();
        if opts.follow {
            q.push(("follow", "1".to_string()));
        }
        q.push(("stdout", flag(opts.stdout)));
        q.push(("stderr", flag(opts.stderr)));
        if opts.timestamps {
            q.push(("timestamps", "1".to_string()));
        }
        q.push((
            "tail",
            opts.tail
                .map(|t| t.to_string())
                .unwrap_or_else(|| "all".into()),
        ));
        if let Some(s) = opts.since {
            q.push(("since", s.to_string()));
        }
        let path = format!("/containers/{}/logs{}", percent_encode(id), query(&q));
        let resp = self.request(Method::GET, &path, empty_body(), None).await?;
        Ok(self.frame_stream(resp))
    }

    /// `GET /containers/{id}/stats?stream=0`: one sample.
    pub async fn stats_once(&self, id: &str) -> Result<ContainerStats> {
        self.get_json(&format!(
            "/containers/{}/stats?stream=0",
            percent_encode(id)
        ))
        .await
    }

    /// `GET /containers/{id}/stats?stream=1`: one sample per second.
    pub async fn stats_stream(&self, id: &str) -> Result<JsonStream<ContainerStats>> {
        let path = format!("/containers/{}/stats?stream=1", percent_encode(id));
        let resp = self.request(Method::GET, &path, empty_body(), None).await?;
        Ok(self.json_lines(resp, "stats"))
    }

    /// `GET /containers/{id}/top`.
    pub async fn top(&self, id: &str) -> Result<TopResponse> {
        self.get_json(&format!("/containers/{}/top", percent_encode(id)))
            .await
    }

    /// `POST /containers/prune`.
    pub async fn prune_containers(&self) -> Result<PruneReport> {
        self.post_decode("/containers/prune").await
    }

    // -----------------------------------------------------------------------------------------
    // Exec
    // -----------------------------------------------------------------------------------------

    /// `POST /containers/{id}/exec`: returns the exec id.
    pub async fn exec_create(&self, container: &str, exec: &ExecCreate) -> Result<String> {
        let r: IdResponse = self
            .post_json(
                &format!("/containers/{}/exec", percent_encode(container)),
                exec,
            )
            .await?;
        Ok(r.id)
    }

    /// `POST /exec/{id}/start`: output frames, ending with a system frame `{"ExitCode":N}`.
    pub async fn exec_start(&self, id: &str) -> Result<FrameStream> {
        let path = format!("/exec/{}/start", percent_encode(id));
        let resp = self
            .request(
                Method::POST,
                &path,
                json_body(&ExecStart::default())?,
                Some("application/json"),
            )
            .await?;
        Ok(self.frame_stream(resp))
    }

    /// `POST /exec/{id}/start` with `{"Detach":true}`: starts the process and returns once the
    /// engine has answered, without reading its output.
    pub async fn exec_start_detached(&self, id: &str) -> Result<()> {
        let path = format!("/exec/{}/start", percent_encode(id));
        let resp = self
            .request(
                Method::POST,
                &path,
                json_body(&ExecStart {
                    detach: true,
                    tty: false,
                })?,
                Some("application/json"),
            )
            .await?;
        drop(resp);
        Ok(())
    }

    /// `GET /exec/{id}/json`.
    pub async fn exec_inspect(&self, id: &str) -> Result<ExecInspect> {
        self.get_json(&format!("/exec/{}/json", percent_encode(id)))
            .await
    }

    // -----------------------------------------------------------------------------------------
    // Images
    // -----------------------------------------------------------------------------------------

    /// `GET /images/json`.
    pub async fn list_images(&self, all: bool) -> Result<Vec<ImageSummary>> {
        let path = if all {
            "/images/json?all=1"
        } else {
            "/images/json"
        };
        self.get_json(path).await
    }

    /// `GET /images/{name}/json`.
    pub async fn inspect_image(&self, name: &str) -> Result<ImageInspect> {
        self.get_json(&format!("/images/{}/json", percent_encode(name)))
            .await
    }

    /// `GET /images/{name}/json` as raw JSON.
    pub async fn inspect_image_raw(&self, name: &str) -> Result<serde_json::Value> {
        self.get_json(&format!("/images/{}/json", percent_encode(name)))
            .await
    }

    /// `DELETE /images/{name}[?force=1]`.
    pub async fn remove_image(&self, name: &str, force: bool) -> Result<Vec<ImageDeleteItem>> {
        let q = if force { "?force=1" } else { "" };
        let bytes = self
            .delete(&format!("/images/{}{q}", percent_encode(name)))
            .await?;
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            return Ok(Vec::new());
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
            what: "image removal".into(),
            cause: e.to_string(),
        })
    }

    /// `POST /images/{name}/tag?repo=REPO&tag=TAG`.
    pub async fn tag_image(&self, name: &str, repo: &str, tag: &str) -> Result<()> {
        let q = query(&[("repo", repo.to_string()), ("tag", tag.to_string())]);
        self.post_empty(&format!("/images/{}/tag{q}", percent_encode(name)))
            .await?;
        Ok(())
    }

    /// `POST /images/import?tag=NAME[:TAG]` with a rootfs tar (plain or gzip) as the body.
    pub async fn import_image(&self, tag: &str, body: RequestBody) -> Result<ImageLoaded> {
        let path = format!("/images/import{}", query(&[("tag", tag.to_string())]));
        let resp = self
            .request(Method::POST, &path, body, Some("application/x-tar"))
            .await?;
        self.decode(resp, "image import").await
    }

    /// `POST /images/create?fromImage=REFERENCE`: pulls from a registry; the answer is
    /// Docker's JSON progress lines. `registry_auth` is the `X-Registry-Auth` value.
    pub async fn pull_image(
        &self,
        reference: &str,
        registry_auth: Option<&str>,
    ) -> Result<JsonStream<JsonMessage>> {
        let path = format!(
            "/images/create{}",
            query(&[("fromImage", reference.to_string())])
        );
        let resp = self.registry_request(&path, registry_auth).await?;
        Ok(self.json_lines(resp, "image pull"))
    }

    /// `POST /images/{name}/push[?tag=TAG]`: pushes to a registry; Docker's JSON progress
    /// lines.
    pub async fn push_image(
        &self,
        name: &str,
        tag: Option<&str>,
        registry_auth: Option<&str>,
    ) -> Result<JsonStream<JsonMessage>> {
        let q: Vec<(&str, String)> = tag.map(|t| ("tag", t.to_string())).into_iter().collect();
        let path = format!("/images/{}/push{}", percent_encode(name), query(&q));
        let resp = self.registry_request(&path, registry_auth).await?;
        Ok(self.json_lines(resp, "image push"))
    }

    async fn registry_request(
        &self,
        path: &str,
        registry_auth: Option<&str>,
    ) -> Result<Response<Incoming>> {
        let headers: Vec<(&str, String)> = registry_auth
            .map(|a| ("X-Registry-Auth", a.to_string()))
            .into_iter()
            .collect();
        let resp = self
            .send_with(Method::POST, path, empty_body(), None, false, &headers)
            .await?;
        Self::check_status(resp).await
    }

    /// `POST /auth`: checks credentials against a registry.
    pub async fn auth(&self, req: &AuthRequest) -> Result<AuthResponse> {
        self.post_json("/auth", req).await
    }

    /// `POST /build` (Docker's classic builder API) with the context tar as the body: the
    /// answer is a stream of JSON lines (`stream`, `aux`, `error`).
    pub async fn build(&self, params: &[(&str, String)], body: RequestBody) -> Result<ByteStream> {
        let path = format!("/build{}", query(params));
        let resp = self
            .request(Method::POST, &path, body, Some("application/x-tar"))
            .await?;
        Ok(self.byte_stream(resp))
    }

    /// `POST /images/load` with a docker-archive or OCI layout tar as the body.
    pub async fn load_images(&self, body: RequestBody) -> Result<ImagesLoaded> {
        let resp = self
            .request(
                Method::POST,
                "/images/load",
                body,
                Some("application/x-tar"),
            )
            .await?;
        self.decode(resp, "image load").await
    }

    /// `GET /images/get?names=A&names=B`: the archive as a byte stream.
    pub async fn save_images(&self, names: &[String]) -> Result<ByteStream> {
        let q: Vec<(&str, String)> = names.iter().map(|n| ("names", n.clone())).collect();
        let path = format!("/images/get{}", query(&q));
        let resp = self.request(Method::GET, &path, empty_body(), None).await?;
        Ok(self.byte_stream(resp))
    }

    /// `POST /images/prune[?all=1]`.
    pub async fn prune_images(&self, all: bool) -> Result<PruneReport> {
        let path = if all {
            "/images/prune?all=1"
        } else {
            "/images/prune"
        };
        self.post_decode(path).await
    }

    // -----------------------------------------------------------------------------------------
    // Networks
    // -----------------------------------------------------------------------------------------

    /// `POST /networks/create`.
    pub async fn create_network(&self, req: &NetworkCreate) -> Result<NetworkCreated> {
        self.post_json("/networks/create", req).await
    }

    /// `GET /networks`.
    pub async fn list_networks(&self) -> Result<Vec<NetworkInspect>> {
        self.get_json("/networks").await
    }

    /// `GET /networks/{id}`.
    pub async fn inspect_network(&self, key: &str) -> Result<NetworkInspect> {
        self.get_json(&format!("/networks/{}", percent_encode(key)))
            .await
    }

    /// `GET /networks/{id}` as raw JSON.
    pub async fn inspect_network_raw(&self, key: &str) -> Result<serde_json::Value> {
        self.get_json(&format!("/networks/{}", percent_encode(key)))
            .await
    }

    /// `DELETE /networks/{id}`.
    pub async fn remove_network(&self, key: &str) -> Result<()> {
        self.delete(&format!("/networks/{}", percent_encode(key)))
            .await?;
        Ok(())
    }

    /// `POST /networks/{id}/connect`.
    pub async fn connect_network(&self, key: &str, req: &NetworkConnect) -> Result<()> {
        self.post_body(&format!("/networks/{}/connect", percent_encode(key)), req)
            .await
    }

    /// `POST /networks/{id}/disconnect`.
    pub async fn disconnect_network(&self, key: &str, req: &NetworkDisconnect) -> Result<()> {
        self.post_body(
            &format!("/networks/{}/disconnect", percent_encode(key)),
            req,
        )
        .await
    }

    /// `POST /networks/prune`.
    pub async fn prune_networks(&self) -> Result<NetworkPruneReport> {
        self.post_decode("/networks/prune").await
    }

    // -----------------------------------------------------------------------------------------
    // Volumes
    // -----------------------------------------------------------------------------------------

    /// `POST /volumes/create`.
    pub async fn create_volume(&self, req: &VolumeCreate) -> Result<Volume> {
        self.post_json("/volumes/create", req).await
    }

    /// `GET /volumes`.
    pub async fn list_volumes(&self) -> Result<VolumeList> {
        self.get_json("/volumes").await
    }

    /// `GET /volumes/{name}`.
    pub async fn inspect_volume(&self, name: &str) -> Result<Volume> {
        self.get_json(&format!("/volumes/{}", percent_encode(name)))
            .await
    }

    /// `GET /volumes/{name}` as raw JSON.
    pub async fn inspect_volume_raw(&self, name: &str) -> Result<serde_json::Value> {
        self.get_json(&format!("/volumes/{}", percent_encode(name)))
            .await
    }

    /// `DELETE /volumes/{name}[?force=1]`.
    pub async fn remove_volume(&self, name: &str, force: bool) -> Result<()> {
        let q = if force { "?force=1" } else { "" };
        self.delete(&format!("/volumes/{}{q}", percent_encode(name)))
            .await?;
        Ok(())
    }

    /// `POST /volumes/prune`.
    pub async fn prune_volumes(&self) -> Result<PruneReport> {
        self.post_decode("/volumes/prune").await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_image_references() {
        assert_eq!(
            percent_encode("reg:5000/a/b:tag"),
            "reg%3A5000%2Fa%2Fb%3Atag"
        );
        assert_eq!(percent_encode("abc-1_2.3~"), "abc-1_2.3~");
        assert_eq!(percent_encode("a b"), "a%20b");
    }

    #[test]
    fn builds_queries() {
        assert_eq!(query(&[]), "");
        assert_eq!(
            query(&[("tag", "x:1".into()), ("all", "1".into())]),
            "?tag=x%3A1&all=1"
        );
    }

    #[test]
    fn accepts_unix_hosts_only() {
        let c = EngineClient::new("unix:///run/x.sock").unwrap();
        assert_eq!(c.host(), "unix:///run/x.sock");
        let c = EngineClient::new("/run/x.sock").unwrap();
        assert_eq!(c.host(), "unix:///run/x.sock");
        let e = EngineClient::new("tcp://1.2.3.4:2375").unwrap_err();
        assert!(e.to_string().contains("only unix sockets"), "{e}");
        assert!(EngineClient::new("unix://relative.sock").is_err());
    }

    #[tokio::test]
    async fn connect_error_names_the_socket() {
        let c = EngineClient::new("unix:///nonexistent/berth.sock").unwrap();
        let e = c.ping().await.unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with(
                "cannot connect to the berth engine at unix:///nonexistent/berth.sock: "
            ),
            "{msg}"
        );
        assert!(msg.ends_with("is `berth engine` running?"), "{msg}");
    }

    /// A one-shot HTTP server on a unix socket: records the request head, sends `response`.
    async fn fake_engine(response: Vec<u8>) -> (EngineClient, tokio::task::JoinHandle<String>) {
        use tokio::io::AsyncWriteExt;
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "berth-client-test-{}-{}.sock",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ));
        let _ = std::fs::remove_file(&path);
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let client = EngineClient::new(path.to_str().unwrap()).unwrap();
        let task = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = conn.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                head.extend_from_slice(&buf[..n]);
            }
            conn.write_all(&response).await.unwrap();
            conn.shutdown().await.unwrap();
            let _ = std::fs::remove_file(&path);
            String::from_utf8_lossy(&head).into_owned()
        });
        (client, task)
    }

    #[tokio::test]
    async fn logs_are_demultiplexed_and_ids_encoded() {
        use crate::frame::encode;
        let mut body = encode(StreamKind::Stdout, b"hello\n");
        body.extend(encode(StreamKind::Stderr, b"oops\n"));
        let mut resp = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        resp.extend(body);
        let (client, server) = fake_engine(resp).await;
        let opts = LogsOptions {
            follow: true,
            tail: Some(5),
            ..LogsOptions::default()
        };
        let frames: Vec<_> = client
            .logs("web/1", &opts)
            .await
            .unwrap()
            .collect::<Vec<_>>()
            .await;
        let frames: Vec<_> = frames.into_iter().map(|f| f.unwrap()).collect();
        assert_eq!(
            frames,
            vec![
                (StreamKind::Stdout, Bytes::from_static(b"hello\n")),
                (StreamKind::Stderr, Bytes::from_static(b"oops\n"))
            ]
        );
        let head = server.await.unwrap();
        assert!(
            head.starts_with(
                "GET /containers/web%2F1/logs?follow=1&stdout=1&stderr=1&tail=5 HTTP/1.1\r\n"
            ),
            "{head}"
        );
    }

    #[tokio::test]
    async fn api_errors_carry_status_and_message() {
        let body = r#"{"message":"no such container: x"}"#;
        let resp = format!(
            "HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let (client, _server) = fake_engine(resp.into_bytes()).await;
        let e = client.inspect_container("x").await.unwrap_err();
        assert!(e.is_not_found());
        assert_eq!(e.to_string(), "no such container: x");
    }

    #[tokio::test]
    async fn undecodable_answers_are_decode_errors() {
        let resp = "HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nnot".to_string();
        let (client, _server) = fake_engine(resp.into_bytes()).await;
        let e = client.version().await.unwrap_err();
        assert!(matches!(e, ClientError::Decode { .. }), "{e}");
        assert!(
            e.to_string()
                .starts_with("cannot decode the engine's answer to /version"),
            "{e}"
        );
    }
}
