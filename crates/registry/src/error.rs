//! The distribution spec's error codes and their JSON body.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// One registry error: a spec code, its HTTP status and a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct RegistryError {
    pub code: &'static str,
    pub status: StatusCode,
    pub message: String,
    /// `WWW-Authenticate` challenge for UNAUTHORIZED.
    pub challenge: Option<String>,
    /// Extra headers (e.g. `Range` on a 416).
    pub range: Option<String>,
}

impl RegistryError {
    fn new(code: &'static str, status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            code,
            status,
            message: message.into(),
            challenge: None,
            range: None,
        }
    }
    pub fn blob_unknown(digest: &str) -> Self {
        Self::new(
            "BLOB_UNKNOWN",
            StatusCode::NOT_FOUND,
            format!("blob unknown to registry: {digest}"),
        )
    }
    pub fn upload_unknown() -> Self {
        Self::new(
            "BLOB_UPLOAD_UNKNOWN",
            StatusCode::NOT_FOUND,
            "blob upload unknown to registry",
        )
    }
    pub fn upload_invalid(msg: impl Into<String>) -> Self {
        Self::new("BLOB_UPLOAD_INVALID", StatusCode::BAD_REQUEST, msg)
    }
    pub fn digest_invalid(msg: impl Into<String>) -> Self {
        Self::new("DIGEST_INVALID", StatusCode::BAD_REQUEST, msg)
    }
    pub fn manifest_unknown(reference: &str) -> Self {
        Self::new(
            "MANIFEST_UNKNOWN",
            StatusCode::NOT_FOUND,
            format!("manifest unknown: {reference}"),
        )
    }
    pub fn manifest_invalid(msg: impl Into<String>) -> Self {
        Self::new("MANIFEST_INVALID", StatusCode::BAD_REQUEST, msg)
    }
    pub fn manifest_blob_unknown(digest: &str) -> Self {
        Self::new(
            "MANIFEST_BLOB_UNKNOWN",
            StatusCode::BAD_REQUEST,
            format!("manifest references a blob unknown to the repository: {digest}"),
        )
    }
    pub fn name_unknown(name: &str) -> Self {
        Self::new(
            "NAME_UNKNOWN",
            StatusCode::NOT_FOUND,
            format!("repository name not known to registry: {name}"),
        )
    }
    pub fn name_invalid(name: &str) -> Self {
        Self::new(
            "NAME_INVALID",
            StatusCode::BAD_REQUEST,
            format!("invalid repository name: {name:?}"),
        )
    }
    pub fn tag_invalid(tag: &str) -> Self {
        Self::new(
            "TAG_INVALID",
            StatusCode::BAD_REQUEST,
            format!("invalid tag: {tag:?}"),
        )
    }
    pub fn size_invalid(msg: impl Into<String>) -> Self {
        Self::new("SIZE_INVALID", StatusCode::BAD_REQUEST, msg)
    }
    pub fn range_invalid(msg: impl Into<String>, current: u64) -> Self {
        let mut e = Self::new(
            "BLOB_UPLOAD_INVALID",
            StatusCode::RANGE_NOT_SATISFIABLE,
            msg,
        );
        e.range = Some(range_header(current));
        e
    }
    pub fn pagination_invalid(msg: impl Into<String>) -> Self {
        Self::new("PAGINATION_NUMBER_INVALID", StatusCode::BAD_REQUEST, msg)
    }
    pub fn unsupported(msg: impl Into<String>) -> Self {
        Self::new("UNSUPPORTED", StatusCode::METHOD_NOT_ALLOWED, msg)
    }
    pub fn not_found() -> Self {
        Self::new("NOT_FOUND", StatusCode::NOT_FOUND, "no such endpoint")
    }
    pub fn unauthorized(challenge: String) -> Self {
        let mut e = Self::new(
            "UNAUTHORIZED",
            StatusCode::UNAUTHORIZED,
            "authentication required",
        );
        e.challenge = Some(challenge);
        e
    }
    pub fn internal(msg: impl Into<String>) -> Self {
        Self::new("UNKNOWN", StatusCode::INTERNAL_SERVER_ERROR, msg)
    }
}

/// `Range` header value for an upload holding `size` bytes (`0-0` when empty, as distribution).
pub fn range_header(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

impl From<berth_image::ImageError> for RegistryError {
    fn from(e: berth_image::ImageError) -> Self {
        RegistryError::internal(e.to_string())
    }
}

impl From<std::io::Error> for RegistryError {
    fn from(e: std::io::Error) -> Self {
        RegistryError::internal(e.to_string())
    }
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "errors": [{ "code": self.code, "message": self.message, "detail": null }]
        });
        let mut resp = (self.status, axum::Json(body)).into_response();
        let h = resp.headers_mut();
        h.insert(
            "Docker-Distribution-API-Version",
            HeaderValue::from_static("registry/2.0"),
        );
        if let Some(c) = self.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            h.insert("WWW-Authenticate", c);
        }
        if let Some(r) = self.range.and_then(|r| HeaderValue::from_str(&r).ok()) {
            h.insert("Range", r);
        }
        resp
    }
}
