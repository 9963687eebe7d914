//! [`EcsClient`]: signed AWS JSON 1.1 calls (ECS, and the Secrets Manager and SSM APIs the
//! control plane also serves) and the agent channel over plain HTTP/1.1.

use std::pin::Pin;
use std::time::{Duration, SystemTime};

use berth_api::shapes::AgentEvent;
use bytes::{Buf, Bytes, BytesMut};
use futures_util::{stream, Stream};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Credentials, EcsClientError};

/// The `X-Amz-Target` prefix of ECS operations.
const TARGET_PREFIX: &str = "AmazonEC2ContainerServiceV20141113.";
const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// How long one call may take before it counts as a transport failure.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The agent channel: one event per line the server sends, until the connection ends.
pub type AgentEventStream =
    Pin<Box<dyn Stream<Item = Result<AgentEvent, EcsClientError>> + Send + 'static>>;

/// A client of one control plane endpoint. Cheap to clone (connections are pooled).
#[derive(Clone)]
pub struct EcsClient {
    endpoint: String,
    region: String,
    credentials: Option<Credentials>,
    http: Client<HttpConnector, Full<Bytes>>,
}

impl std::fmt::Debug for EcsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EcsClient")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("signed", &self.credentials.is_some())
            .finish()
    }
}

/// Percent-encodes everything but SigV4's unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl EcsClient {
    /// A client for `http://HOST:PORT` signing with `credentials` (unsigned when `None`, for a
    /// server started with `--no-auth`).
    pub fn new(
        endpoint: &str,
        region: &str,
        credentials: Option<Credentials>,
    ) -> Result<Self, EcsClientError> {
        let endpoint = endpoint.trim_end_matches('/');
        let uri: http::Uri = endpoint
            .parse()
            .map_err(|e| EcsClientError::Config(format!("invalid server URL `{endpoint}`: {e}")))?;
        if uri.scheme_str() != Some("http") || uri.host().is_none() {
            return Err(EcsClientError::Config(format!(
                "invalid server URL `{endpoint}`: use http://HOST:PORT"
            )));
        }
        if region.is_empty() {
            return Err(EcsClientError::Config(
                "the region must not be empty".into(),
            ));
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(EcsClient {
            endpoint: endpoint.to_owned(),
            region: region.to_owned(),
            credentials,
            http,
        })
    }

    /// The server URL this client talks to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Signs `req` (whose body is `body`) in place, if the client has credentials.
    fn sign(
        &self,
        req: &mut hyper::Request<Full<Bytes>>,
        body: &[u8],
        service: &str,
    ) -> Result<(), EcsClientError> {
        use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
        use aws_sigv4::sign::v4;
        let Some(c) = &self.credentials else {
            return Ok(());
        };
        let identity = aws_credential_types::Credentials::new(
            &c.access_key_id,
            &c.secret_access_key,
            c.session_token.clone(),
            None,
            "berth",
        )
        .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(service)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| EcsClientError::Config(format!("cannot sign the request: {e}")))?
            .into();
        let uri = req.uri().to_string();
        let headers: Vec<(String, String)> = req
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let signable = SignableRequest::new(
            req.method().as_str(),
            &uri,
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(body),
        )
        .map_err(|e| EcsClientError::Config(format!("cannot sign the request: {e}")))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| EcsClientError::Config(format!("cannot sign the request: {e}")))?
            .into_parts();
        instructions.apply_to_request_http1x(req);
        Ok(())
    }

    async fn send(
        &self,
        mut req: hyper::Request<Full<Bytes>>,
        body: &[u8],
        service: &str,
    ) -> Result<hyper::Response<Incoming>, EcsClientError> {
        self.sign(&mut req, body, service)?;
        match tokio::time::timeout(CALL_TIMEOUT, self.http.request(req)).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(EcsClientError::Transport(format!("{}: {e}", self.endpoint))),
            Err(_) => Err(EcsClientError::Transport(format!(
                "{}: no answer within {CALL_TIMEOUT:?}",
                self.endpoint
            ))),
        }
    }

    /// Calls the ECS operation `operation` (e.g. `RegisterContainerInstance`).
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        operation: &str,
        request: &Req,
    ) -> Result<Resp, EcsClientError> {
        self.call_target("ecs", &format!("{TARGET_PREFIX}{operation}"), request)
            .await
    }

    /// Calls the Secrets Manager operation `operation` (e.g. `GetSecretValue`) the control
    /// plane serves on the same endpoint.
    pub async fn call_secrets_manager<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        operation: &str,
        request: &Req,
    ) -> Result<Resp, EcsClientError> {
        self.call_target(
            "secretsmanager",
            &format!("secretsmanager.{operation}"),
            request,
        )
        .await
    }

    /// Calls the SSM operation `operation` (e.g. `GetParameters`) the control plane serves
    /// on the same endpoint.
    pub async fn call_ssm<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        operation: &str,
        request: &Req,
    ) -> Result<Resp, EcsClientError> {
        self.call_target("ssm", &format!("AmazonSSM.{operation}"), request)
            .await
    }

    /// One AWS JSON 1.1 call of `target`, signed for `service`.
    async fn call_target<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        service: &str,
        target: &str,
        request: &Req,
    ) -> Result<Resp, EcsClientError> {
        let operation = target.rsplit('.').next().unwrap_or(target);
        let body = serde_json::to_vec(request)
            .map_err(|e| EcsClientError::Config(format!("cannot encode {operation}: {e}")))?;
        let req = hyper::Request::post(format!("{}/", self.endpoint))
            .header("content-type", CONTENT_TYPE)
            .header("x-amz-target", target)
            .body(Full::new(Bytes::from(body.clone())))
            .map_err(|e| EcsClientError::Config(format!("cannot build {operation}: {e}")))?;
        let resp = self.send(req, &body, service).await?;
        let status = resp.status().as_u16();
        let bytes = tokio::time::timeout(CALL_TIMEOUT, resp.into_body().collect())
            .await
            .map_err(|_| EcsClientError::Transport(format!("{operation}: the answer stalled")))?
            .map_err(|e| EcsClientError::Transport(format!("{operation}: {e}")))?
            .to_bytes();
        if status != 200 {
            return Err(api_error(status, &bytes));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| EcsClientError::Decode(format!("{operation}: {e}")))
    }

    /// Opens the agent channel of `container_instance` (ARN or id) in `cluster` (name or ARN).
    /// The stream ends when the connection does; the caller reconnects.
    pub async fn watch(
        &self,
        cluster: &str,
        container_instance: &str,
    ) -> Result<AgentEventStream, EcsClientError> {
        let uri = format!(
            "{}/v1/agent/watch?cluster={}&containerInstance={}",
            self.endpoint,
            encode(cluster),
            encode(container_instance)
        );
        let req = hyper::Request::get(uri)
            .body(Full::new(Bytes::new()))
            .map_err(|e| EcsClientError::Config(format!("cannot build the watch request: {e}")))?;
        let resp = self.send(req, b"", "ecs").await?;
        let status = resp.status().as_u16();
        if status != 200 {
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            return Err(api_error(status, &bytes));
        }
        Ok(Box::pin(lines(resp.into_body())))
    }
}

/// Decodes an ECS error body (`{"__type": "...Exception", "message": ...}`).
fn api_error(status: u16, body: &[u8]) -> EcsClientError {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let code = v
        .get("__type")
        .and_then(|t| t.as_str())
        .map(|t| t.rsplit('#').next().unwrap_or(t).to_owned())
        .unwrap_or_else(|| format!("HTTP {status}"));
    let message = v
        .get("message")
        .or_else(|| v.get("Message"))
        .and_then(|m| m.as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    EcsClientError::Api {
        status,
        code,
        message,
    }
}

/// Splits a streamed body into newline-delimited [`AgentEvent`]s.
fn lines(body: Incoming) -> impl Stream<Item = Result<AgentEvent, EcsClientError>> + Send {
    struct State {
        body: Incoming,
        buf: BytesMut,
        done: bool,
    }
    let state = State {
        body,
        buf: BytesMut::new(),
        done: false,
    };
    stream::unfold(state, |mut s| async move {
        loop {
            if let Some(pos) = s.buf.iter().position(|&b| b == b'\n') {
                let line = s.buf.split_to(pos + 1);
                let line = &line[..pos];
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let item = serde_json::from_slice::<AgentEvent>(line)
                    .map_err(|e| EcsClientError::Decode(format!("agent channel line: {e}")));
                return Some((item, s));
            }
            if s.done {
                return None;
            }
            match s.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(mut data) = frame.into_data() {
                        while data.has_remaining() {
                            let chunk = data.chunk();
                            s.buf.extend_from_slice(chunk);
                            let n = chunk.len();
                            data.advance(n);
                        }
                    }
                }
                Some(Err(e)) => {
                    s.done = true;
                    s.buf.clear();
                    return Some((
                        Err(EcsClientError::Transport(format!("agent channel: {e}"))),
                        s,
                    ));
                }
                None => {
                    s.done = true;
                    if !s.buf.is_empty() {
                        s.buf.extend_from_slice(b"\n");
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_arns_for_the_query() {
        assert_eq!(
            encode("arn:aws:ecs:us-east-1:123456789012:cluster/demo"),
            "arn%3Aaws%3Aecs%3Aus-east-1%3A123456789012%3Acluster%2Fdemo"
        );
    }

    #[test]
    fn decodes_ecs_errors() {
        let e = api_error(
            400,
            br#"{"__type":"ClusterNotFoundException","message":"Cluster not found."}"#,
        );
        assert_eq!(e.code(), Some("ClusterNotFoundException"));
        assert!(!e.is_retryable());
        assert!(api_error(500, b"oops").is_retryable());
    }

    #[test]
    fn rejects_bad_endpoints() {
        for bad in ["localhost:9400", "https://x:1", "http://"] {
            assert!(EcsClient::new(bad, "us-east-1", None).is_err(), "{bad}");
        }
        assert!(EcsClient::new("http://127.0.0.1:9400/", "us-east-1", None).is_ok());
    }
}
