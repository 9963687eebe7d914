//! The engine's error type; each variant maps to an HTTP status in the API layer.

/// What went wrong handling an engine request.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Unknown container, image, volume or exec (404).
    #[error("{0}")]
    NotFound(String),
    /// Bad request parameter (400).
    #[error("{0}")]
    Invalid(String),
    /// Conflicts with current state: name in use, container running, image in use (409).
    #[error("{0}")]
    Conflict(String),
    /// Nothing to do (304): already started/stopped.
    #[error("{0}")]
    NotModified(String),
    /// A registry refused the credentials (401).
    #[error("{0}")]
    Unauthorized(String),
    /// The runtime or the host failed (500).
    #[error("{0}")]
    Internal(String),
}

impl EngineError {
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<berth_image::ImageError> for EngineError {
    fn from(e: berth_image::ImageError) -> Self {
        use berth_image::ImageError as E;
        match e {
            E::NotFound(_) => Self::NotFound(e.to_string()),
            E::Conflict(_) => Self::Conflict(e.to_string()),
            E::Io { .. } | E::Corrupt(_) => Self::Internal(e.to_string()),
            _ => Self::Invalid(e.to_string()),
        }
    }
}

impl From<std::io::Error> for EngineError {
    fn from(e: std::io::Error) -> Self {
        Self::Internal(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, EngineError>;

impl From<berth_network::NetworkError> for EngineError {
    fn from(e: berth_network::NetworkError) -> Self {
        use berth_network::NetworkError as E;
        match e {
            E::NotFound(m) => Self::NotFound(m),
            E::Invalid(m) => Self::Invalid(m),
            E::Conflict(m) => Self::Conflict(m),
            E::System(m) => Self::Internal(m),
        }
    }
}

impl From<berth_distribution::DistributionError> for EngineError {
    fn from(e: berth_distribution::DistributionError) -> Self {
        use berth_distribution::DistributionError as E;
        match e {
            E::Image(i) => i.into(),
            E::ManifestUnknown(_) => Self::NotFound(e.to_string()),
            E::Unauthorized { .. } => Self::Unauthorized(e.to_string()),
            E::Invalid(_) => Self::Invalid(e.to_string()),
            _ => Self::Internal(e.to_string()),
        }
    }
}
