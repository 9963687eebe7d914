//! Progress events of a pull or push, shaped like Docker's JSON progress messages: a status
//! line, optionally about one layer (`id`, its short digest) with bytes done out of a total.

use std::sync::Arc;

/// One progress event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Progress {
    /// The layer (12 hex characters of its digest) or the tag the line is about.
    pub id: Option<String>,
    /// `Pulling fs layer`, `Downloading`, `Pushed`, `Digest: sha256:...`, ...
    pub status: String,
    /// Bytes done, for `Downloading`/`Pushing`.
    pub current: Option<u64>,
    /// Bytes in all, for `Downloading`/`Pushing`.
    pub total: Option<u64>,
}

impl Progress {
    /// A line about the whole operation.
    pub fn status(status: impl Into<String>) -> Self {
        Self {
            status: status.into(),
            ..Default::default()
        }
    }

    /// A line about one layer (or tag).
    pub fn layer(id: impl Into<String>, status: impl Into<String>) -> Self {
        Self {
            id: Some(id.into()),
            status: status.into(),
            ..Default::default()
        }
    }

    /// A byte count line about one layer.
    pub fn bytes(id: impl Into<String>, status: &str, current: u64, total: u64) -> Self {
        Self {
            id: Some(id.into()),
            status: status.to_string(),
            current: Some(current),
            total: Some(total),
        }
    }
}

/// Where progress goes (the engine turns it into JSON lines).
pub type ProgressSink = Arc<dyn Fn(Progress) + Send + Sync>;

/// A sink that drops everything.
pub fn discard() -> ProgressSink {
    Arc::new(|_| {})
}

/// The 12 hex characters Docker shows for a layer digest.
pub fn short_digest(digest: &str) -> String {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    hex.chars().take(12).collect()
}
