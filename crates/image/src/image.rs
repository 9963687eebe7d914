//! [`Image`]: one stored image as the engine sees it, and its engine API views.

use berth_engine_client::{ImageConfig, ImageInspect, ImageSummary, RootFs};

/// Go's zero time, shown when an image config has no `created`.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// A stored image.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    /// `sha256:<config digest hex>`.
    pub id: String,
    /// Familiar `name:tag`s, sorted.
    pub repo_tags: Vec<String>,
    /// `name@<manifest digest>` for each tagged repository.
    pub repo_digests: Vec<String>,
    pub manifest_digest: String,
    pub config: ImageConfig,
    /// RFC 3339 (from the config; [`ZERO_TIME`] when absent).
    pub created: String,
    pub architecture: String,
    pub os: String,
    /// Uncompressed layer digests, bottom first.
    pub diff_ids: Vec<String>,
    /// Bytes of unpacked layer data.
    pub size: i64,
}

impl Image {
    /// `created` as unix seconds (0 when absent or before 1970).
    pub fn created_unix(&self) -> i64 {
        chrono::DateTime::parse_from_rfc3339(&self.created)
            .map(|t| t.timestamp().max(0))
            .unwrap_or(0)
    }

    /// The `GET /images/json` row.
    pub fn summary(&self) -> ImageSummary {
        ImageSummary {
            id: self.id.clone(),
            repo_tags: self.repo_tags.clone(),
            repo_digests: self.repo_digests.clone(),
            created: self.created_unix(),
            size: self.size,
            labels: self.config.labels.clone(),
            containers: 0,
        }
    }

    /// The `GET /images/{name}/json` answer.
    pub fn inspect(&self) -> ImageInspect {
        ImageInspect {
            id: self.id.clone(),
            repo_tags: self.repo_tags.clone(),
            repo_digests: self.repo_digests.clone(),
            created: self.created.clone(),
            architecture: self.architecture.clone(),
            os: self.os.clone(),
            size: self.size,
            config: self.config.clone(),
            root_fs: RootFs {
                kind: "layers".to_string(),
                layers: self.diff_ids.clone(),
            },
        }
    }

    /// The first 12 hex characters of the id, as Docker shows it.
    pub fn short_id(&self) -> &str {
        short_id(&self.id)
    }
}

/// The first 12 hex characters of an image id.
pub fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix(crate::digest::SHA256).unwrap_or(id);
    hex.get(..12).unwrap_or(hex)
}
