//! Pull, push and login over the engine API, Docker-compatible:
//!
//! - `POST /images/create?fromImage=NAME&tag=TAG` pulls (`fromSrc=-` still imports the body),
//! - `POST /images/{name}/push?tag=TAG` pushes,
//! - `POST /auth` checks credentials against a registry.
//!
//! Registry credentials come in the `X-Registry-Auth` header (base64url JSON). Pull and push
//! answer with Docker's JSON progress lines; a failure before the first line (an unknown
//! manifest, bad credentials, an unreachable registry) is an ordinary error answer with its
//! status (404, 401, 500), a later one is an `errorDetail` line.

use std::future::Future;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use berth_distribution::{Credentials, Progress, ProgressSink};
use berth_engine_client::{AuthResponse, ErrorDetail, JsonMessage, ProgressDetail};
use bytes::Bytes;

use crate::api::{percent_decode, stream_body};
use crate::engine::Engine;
use crate::error::EngineError;

type ApiResult = Result<Response, EngineError>;

enum Event {
    Line(Bytes),
    Failed(EngineError),
}

fn line(msg: &JsonMessage) -> Bytes {
    Bytes::from(format!(
        "{}\r\n",
        serde_json::to_string(msg).unwrap_or_default()
    ))
}

fn message(p: Progress) -> JsonMessage {
    JsonMessage {
        status: p.status,
        id: p.id.unwrap_or_default(),
        progress_detail: p.current.map(|current| ProgressDetail {
            current: Some(current),
            total: p.total.filter(|t| *t > 0),
        }),
        ..Default::default()
    }
}

fn error_line(e: &EngineError) -> Bytes {
    let msg = e.to_string();
    line(&JsonMessage {
        error_detail: Some(ErrorDetail {
            message: msg.clone(),
        }),
        error: msg,
        ..Default::default()
    })
}

/// The credentials of `X-Registry-Auth` (anonymous without it).
fn credentials(headers: &HeaderMap) -> Result<Credentials, EngineError> {
    match headers.get("X-Registry-Auth") {
        None => Ok(Credentials::default()),
        Some(v) => {
            let v = v
                .to_str()
                .map_err(|_| EngineError::Invalid("X-Registry-Auth is not ASCII".into()))?;
            Ok(Credentials::from_header(v)?)
        }
    }
}

/// Runs `op` with a progress sink and answers with its progress as JSON lines.
async fn progress_stream<F, Fut>(op: F) -> ApiResult
where
    F: FnOnce(ProgressSink) -> Fut,
    Fut: Future<Output = Result<(), EngineError>> + Send + 'static,
{
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
    let sink_tx = tx.clone();
    let sink: ProgressSink = Arc::new(move |p| {
        let _ = sink_tx.send(Event::Line(line(&message(p))));
    });
    let fut = op(sink);
    tokio::spawn(async move {
        if let Err(e) = fut.await {
            let _ = tx.send(Event::Failed(e));
        }
    });
    let first = match rx.recv().await {
        None => Bytes::new(),
        Some(Event::Failed(e)) => return Err(e),
        Some(Event::Line(b)) => b,
    };
    let (btx, brx) = tokio::sync::mpsc::channel::<Bytes>(256);
    tokio::spawn(async move {
        if !first.is_empty() && btx.send(first).await.is_err() {
            return;
        }
        while let Some(ev) = rx.recv().await {
            let b = match ev {
                Event::Line(b) => b,
                Event::Failed(e) => error_line(&e),
            };
            if btx.send(b).await.is_err() {
                break;
            }
        }
    });
    Ok(stream_body(brx, "application/json"))
}

fn query_pairs(raw: Option<String>) -> Vec<(String, String)> {
    raw.unwrap_or_default()
        .split('&')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (!k.is_empty()).then(|| (k.to_string(), percent_decode(&v.replace('+', "%20"))))
        })
        .collect()
}

/// `NAME` plus Docker's separate `tag` parameter (a tag or a digest).
fn with_tag(name: &str, tag: Option<&str>) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    match tag {
        Some(t) if !name.contains('@') && !last.contains(':') => {
            if t.starts_with("sha256:") {
                format!("{name}@{t}")
            } else {
                format!("{name}:{t}")
            }
        }
        _ => name.to_string(),
    }
}

/// `POST /images/create`: pull (`fromImage`) or import (`fromSrc=-`).
pub async fn create_image(
    State(engine): State<Arc<Engine>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: axum::body::Body,
) -> ApiResult {
    let q = query_pairs(raw);
    let get = |k: &str| {
        q.iter()
            .find(|(key, v)| key == k && !v.is_empty())
            .map(|(_, v)| v.clone())
    };
    if let Some(src) = get("fromSrc") {
        if src != "-" {
            return Err(EngineError::Invalid(format!(
                "importing from {src:?} is not supported: send the tarball as the body with fromSrc=-"
            )));
        }
        let tag = match (get("repo"), get("tag")) {
            (Some(r), Some(t)) => Some(with_tag(&r, Some(&t))),
            (r, t) => t.or(r),
        };
        return crate::api::import_body(engine, tag, body).await;
    }
    let Some(name) = get("fromImage") else {
        return Err(EngineError::Invalid(
            "image create needs fromImage (pull) or fromSrc (import)".into(),
        ));
    };
    if let Some(p) = get("platform") {
        let want = format!("linux/{}", berth_image::config::host_architecture());
        if p != want && p != "linux" {
            return Err(EngineError::Invalid(format!(
                "platform {p:?} is not supported: berth pulls {want} images only"
            )));
        }
    }
    let reference = with_tag(&name, get("tag").as_deref());
    let creds = credentials(&headers)?;
    progress_stream(move |sink| async move {
        let outcome = berth_distribution::pull::pull(
            &engine.registries,
            &engine.images,
            &reference,
            creds,
            sink,
        )
        .await?;
        engine
            .events
            .publish("image", "pull", &outcome.reference, Default::default());
        Ok(())
    })
    .await
}

/// `POST /images/{name}/push?tag=TAG`.
pub(crate) async fn push_image(
    engine: Arc<Engine>,
    name: &str,
    tag: Option<String>,
    headers: HeaderMap,
) -> ApiResult {
    let tag = tag.filter(|t| !t.is_empty());
    let last = name.rsplit('/').next().unwrap_or(name);
    // No tag, and none in the name: every tag of the repository (`docker push --all-tags`).
    let references = if tag.is_none() && !name.contains('@') && !last.contains(':') {
        all_tags_of(&engine, name).await?
    } else {
        vec![with_tag(name, tag.as_deref())]
    };
    let creds = credentials(&headers)?;
    progress_stream(move |sink| async move {
        for reference in references {
            berth_distribution::push::push(
                &engine.registries,
                &engine.images,
                &reference,
                creds.clone(),
                sink.clone(),
            )
            .await?;
            engine
                .events
                .publish("image", "push", &reference, Default::default());
        }
        Ok(())
    })
    .await
}

/// Every `name:tag` the store holds for the repository `name`, sorted; an error naming
/// `name` when there is none.
async fn all_tags_of(engine: &Arc<Engine>, name: &str) -> Result<Vec<String>, EngineError> {
    let repository = berth_image::reference::Reference::parse(name)
        .map_err(|e| EngineError::Invalid(e.to_string()))?
        .familiar_name();
    let images = engine.images.clone();
    let listed = tokio::task::spawn_blocking(move || images.list())
        .await
        .map_err(|e| EngineError::Internal(format!("listing images: {e}")))??;
    let mut tags: Vec<String> = listed
        .into_iter()
        .flat_map(|i| i.repo_tags)
        .filter(|t| {
            t.rsplit_once(':')
                .is_some_and(|(repo, _)| repo == repository)
        })
        .collect();
    tags.sort();
    tags.dedup();
    if tags.is_empty() {
        return Err(EngineError::NotFound(format!(
            "An image does not exist locally with the tag: {repository}"
        )));
    }
    Ok(tags)
}

/// `POST /auth`: `{"Status":"Login Succeeded"}` or 401 with the registry's message.
pub async fn auth(State(engine): State<Arc<Engine>>, body: Bytes) -> ApiResult {
    let creds: Credentials = serde_json::from_slice(&body)
        .map_err(|e| EngineError::Invalid(format!("invalid auth request: {e}")))?;
    berth_distribution::login::login(&engine.registries, &creds.serveraddress, &creds).await?;
    Ok(Json(AuthResponse {
        status: "Login Succeeded".into(),
        identity_token: String::new(),
    })
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_join_like_docker() {
        assert_eq!(with_tag("busybox", Some("1")), "busybox:1");
        assert_eq!(
            with_tag("localhost:5000/a", Some("v")),
            "localhost:5000/a:v"
        );
        assert_eq!(
            with_tag("localhost:5000/a:x", Some("v")),
            "localhost:5000/a:x"
        );
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(with_tag("a", Some(&d)), format!("a@{d}"));
        assert_eq!(with_tag("a", None), "a");
    }
}
