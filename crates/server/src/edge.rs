//! The API edge: AWS JSON 1.1 over HTTP (ECS, and the `secretsmanager.` and `AmazonSSM.`
//! targets of the Secrets Manager and SSM Parameter Store APIs). Parses the target and body into a typed request,
//! authenticates, calls the core and renders the response or the ECS error. Also the agent
//! channel's HTTP side (`GET /v1/agent/watch`: authentication, query parameters, the streamed
//! response; the channel itself is `crate::channel`). No business logic lives here.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{request::Parts, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_api::{EcsError, Operation};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::core::{Core, Ctx};
use crate::Auth;

/// What every request handler shares.
pub struct App {
    pub core: Arc<Core>,
    pub auth: Auth,
    pub default_region: String,
    /// `http://HOST:PORT` of the listener.
    pub endpoint: String,
    /// Turns true when the server shuts down: open agent channels end.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// The largest request body accepted.
const MAX_BODY: usize = 10 << 20;

/// `POST /`: one ECS call.
pub async fn handle(State(app): State<Arc<App>>, request: Request) -> Response {
    let request_id = crate::ids::uuid();
    let (parts, body) = request.into_parts();
    let result = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(body) => call(&app, &parts, &body).await,
        Err(e) => Err(EcsError::Serialization(format!(
            "cannot read the request body (limit {MAX_BODY} bytes): {e}"
        ))),
    };
    match result {
        Ok(body) => {
            let mut response = (StatusCode::OK, body).into_response();
            let h = response.headers_mut();
            h.insert("content-type", HeaderValue::from_static(CONTENT_TYPE));
            set_request_id(&mut response, &request_id);
            response
        }
        Err(e) => error_response(&e, &request_id),
    }
}

fn set_request_id(response: &mut Response, request_id: &str) {
    if let Ok(v) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("x-amzn-RequestId", v);
    }
}

/// The ECS error response (`{"__type", "message"}`).
fn error_response(e: &EcsError, request_id: &str) -> Response {
    if let EcsError::Server(m) = e {
        tracing::error!(request_id, "request failed: {m}");
    } else {
        tracing::debug!(request_id, code = e.code(), "request rejected: {e}");
    }
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, e.body()).into_response();
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static(CONTENT_TYPE));
    set_request_id(&mut response, request_id);
    response
}

/// The query parameters of `GET /v1/agent/watch`.
#[derive(serde::Deserialize)]
struct WatchQuery {
    cluster: Option<String>,
    #[serde(rename = "containerInstance")]
    container_instance: Option<String>,
}

/// `GET /v1/agent/watch?cluster=..&containerInstance=..`: the agent channel, authenticated
/// like `POST /`; errors before the stream starts are ECS errors.
pub async fn agent_watch(State(app): State<Arc<App>>, request: Request) -> Response {
    let request_id = crate::ids::uuid();
    let (parts, body) = request.into_parts();
    let channel = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(body) => open_channel(&app, &parts, &body).await,
        Err(e) => Err(EcsError::Serialization(format!(
            "cannot read the request body (limit {MAX_BODY} bytes): {e}"
        ))),
    };
    match channel {
        Ok(channel) => {
            let lines = channel.lines(crate::channel::HEARTBEAT, app.shutdown.clone());
            let mut response = axum::body::Body::from_stream(lines).into_response();
            let h = response.headers_mut();
            h.insert(
                "content-type",
                HeaderValue::from_static("application/x-ndjson"),
            );
            h.insert("cache-control", HeaderValue::from_static("no-cache"));
            set_request_id(&mut response, &request_id);
            response
        }
        Err(e) => error_response(&e, &request_id),
    }
}

async fn open_channel(
    app: &App,
    parts: &Parts,
    body: &[u8],
) -> Result<crate::channel::Channel, EcsError> {
    authenticate(&app.auth, parts, body)?;
    let query = axum::extract::Query::<WatchQuery>::try_from_uri(&parts.uri)
        .map_err(|e| EcsError::invalid(format!("invalid query string: {e}")))?
        .0;
    let instance = query
        .container_instance
        .filter(|i| !i.is_empty())
        .ok_or_else(|| EcsError::invalid("missing required parameter `containerInstance`"))?;
    crate::channel::open(&app.core, query.cluster.as_deref(), &instance).await
}

/// Any other method or path.
pub async fn fallback() -> Response {
    let e = EcsError::UnknownOperation(
        "send POST / with an X-Amz-Target header (or GET /v1/agent/watch)".into(),
    );
    error_response(&e, &crate::ids::uuid())
}

/// Authenticates a request; returns the region of its credential scope (if any).
fn authenticate(auth: &Auth, parts: &Parts, body: &[u8]) -> Result<Option<String>, EcsError> {
    match auth {
        Auth::Disabled => Ok(berth_auth::scope_region(&parts.headers)),
        Auth::Enabled(store) => {
            match berth_auth::verify(parts, body, store, std::time::SystemTime::now()) {
                Ok(v) => Ok(Some(v.region)),
                Err(e) => Err(match e.aws_code() {
                    Some(code) => EcsError::Auth {
                        code,
                        status: e.http_status(),
                        message: e.to_string(),
                    },
                    None => EcsError::server(e),
                }),
            }
        }
    }
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, EcsError> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| {
        let m = e.to_string();
        if m.starts_with("missing field") {
            EcsError::invalid(m.replace("missing field", "missing required parameter"))
        } else {
            EcsError::Serialization(format!(
                "the request body is not valid for the operation: {m}"
            ))
        }
    })
}

fn render<T: Serialize>(value: T) -> Result<Vec<u8>, EcsError> {
    serde_json::to_vec(&value).map_err(EcsError::server)
}

async fn call(app: &App, parts: &Parts, body: &[u8]) -> Result<Vec<u8>, EcsError> {
    let headers: &HeaderMap = &parts.headers;
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let secrets_op = target.strip_prefix(crate::ops::SECRETS_TARGET_PREFIX);
    let ssm_op = target.strip_prefix(crate::ops::SSM_TARGET_PREFIX);
    let op =
        match secrets_op.or(ssm_op) {
            Some(_) => None,
            None => Some(Operation::from_target(target).ok_or_else(|| {
                EcsError::UnknownOperation(format!("unknown operation `{target}`"))
            })?),
        };
    let region =
        authenticate(&app.auth, parts, body)?.unwrap_or_else(|| app.default_region.clone());
    let endpoint = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .map(|h| format!("http://{h}"))
        .unwrap_or_else(|| app.endpoint.clone());
    let ctx = Ctx { region, endpoint };
    let c = &app.core;
    let Some(op) = op else {
        return render(match (secrets_op, ssm_op) {
            (Some(op), _) => c.secrets_manager(&ctx, op, body).await?,
            (None, op) => c.ssm(&ctx, op.unwrap_or_default(), body).await?,
        });
    };
    macro_rules! route {
        ($method:ident) => {
            render(c.$method(&ctx, parse(body)?).await?)
        };
    }
    match op {
        Operation::CreateCluster => route!(create_cluster),
        Operation::DescribeClusters => route!(describe_clusters),
        Operation::ListClusters => route!(list_clusters),
        Operation::UpdateCluster => route!(update_cluster),
        Operation::UpdateClusterSettings => route!(update_cluster_settings),
        Operation::DeleteCluster => route!(delete_cluster),
        Operation::RegisterTaskDefinition => route!(register_task_definition),
        Operation::DescribeTaskDefinition => route!(describe_task_definition),
        Operation::ListTaskDefinitions => route!(list_task_definitions),
        Operation::ListTaskDefinitionFamilies => route!(list_task_definition_families),
        Operation::DeregisterTaskDefinition => route!(deregister_task_definition),
        Operation::DeleteTaskDefinitions => route!(delete_task_definitions),
        Operation::RegisterContainerInstance => route!(register_container_instance),
        Operation::DeregisterContainerInstance => route!(deregister_container_instance),
        Operation::DescribeContainerInstances => route!(describe_container_instances),
        Operation::ListContainerInstances => route!(list_container_instances),
        Operation::UpdateContainerInstancesState => route!(update_container_instances_state),
        Operation::PutAttributes => route!(put_attributes),
        Operation::ListAttributes => route!(list_attributes),
        Operation::DeleteAttributes => route!(delete_attributes),
        Operation::RunTask => route!(run_task),
        Operation::StartTask => route!(start_task),
        Operation::StopTask => route!(stop_task),
        Operation::DescribeTasks => route!(describe_tasks),
        Operation::ListTasks => route!(list_tasks),
        Operation::TagResource => route!(tag_resource),
        Operation::UntagResource => route!(untag_resource),
        Operation::ListTagsForResource => route!(list_tags_for_resource),
        Operation::ListAccountSettings => route!(list_account_settings),
        Operation::PutAccountSetting => route!(put_account_setting),
        Operation::PutAccountSettingDefault => route!(put_account_setting_default),
        Operation::DeleteAccountSetting => route!(delete_account_setting),
        Operation::DiscoverPollEndpoint => route!(discover_poll_endpoint),
        Operation::SubmitTaskStateChange => route!(submit_task_state_change),
        Operation::SubmitContainerStateChange => route!(submit_container_state_change),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_from_scope_without_auth() {
        let req = axum::http::Request::post("/")
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKID/20240101/eu-west-3/ecs/aws4_request, SignedHeaders=host, Signature=abc",
            )
            .body(())
            .unwrap();
        let (parts, ()) = req.into_parts();
        let region = authenticate(&Auth::Disabled, &parts, b"{}").unwrap();
        assert_eq!(region.as_deref(), Some("eu-west-3"));
    }

    #[test]
    fn parse_errors() {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        struct R {
            cluster: String,
        }
        assert_eq!(
            parse::<R>(b"{").err().unwrap().code(),
            "SerializationException"
        );
        assert_eq!(
            parse::<R>(b"{}").err().unwrap().code(),
            "InvalidParameterException"
        );
        assert_eq!(
            parse::<R>(br#"{"cluster": 5}"#).err().unwrap().code(),
            "SerializationException"
        );
        assert!(parse::<R>(br#"{"cluster": "x"}"#).is_ok());
    }
}
