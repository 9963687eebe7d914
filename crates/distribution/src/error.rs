//! The crate's one error type.

use std::io;

/// What went wrong talking to a registry. Messages are lowercase and say what to do.
#[derive(Debug, thiserror::Error)]
pub enum DistributionError {
    /// The registry has no such manifest (tag or digest) in the repository.
    #[error("manifest unknown: {0}")]
    ManifestUnknown(String),
    /// The registry refused the credentials (or none were given).
    #[error("unauthorized: {message} (try berth login {server})")]
    Unauthorized { server: String, message: String },
    /// The registry could not be reached.
    #[error("cannot connect to registry {registry}: {cause}")]
    Connect { registry: String, cause: String },
    /// A transfer failed after connecting (connection reset, timeout...).
    #[error("talking to registry {registry} failed: {cause}")]
    Transport { registry: String, cause: String },
    /// Downloaded content does not hash to the digest it was asked for.
    #[error("digest mismatch for {what}: expected {expected} got {got}; the registry served corrupt data")]
    DigestMismatch {
        what: String,
        expected: String,
        got: String,
    },
    /// Any other error answer of the registry.
    #[error("registry {registry} refused {what}: {status} {message}")]
    Registry {
        registry: String,
        what: String,
        status: u16,
        message: String,
    },
    /// Something the registry sent that Berth cannot use (schema 1, no image for this
    /// platform, bad JSON).
    #[error("{0}")]
    Unsupported(String),
    /// A bad reference, credentials header or option.
    #[error("{0}")]
    Invalid(String),
    /// The image store failed (a bad reference, an unknown image, a failed commit).
    #[error(transparent)]
    Image(#[from] berth_image::ImageError),
    /// Local I/O failed, with what was being done.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

impl DistributionError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    /// True when the registry refused the credentials.
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, Self::Unauthorized { .. })
    }

    /// True when the reference does not exist on the registry.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::ManifestUnknown(_))
            || matches!(self, Self::Image(berth_image::ImageError::NotFound(_)))
    }
}
