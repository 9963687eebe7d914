//! The network crate's error type.

/// What went wrong with a network operation.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// Unknown network (404).
    #[error("{0}")]
    NotFound(String),
    /// Bad parameter: malformed subnet, gateway outside the subnet, bad name (400).
    #[error("{0}")]
    Invalid(String),
    /// Conflicts with current state: name in use, network has endpoints, pool exhausted (409).
    #[error("{0}")]
    Conflict(String),
    /// A kernel or tool call failed (500).
    #[error("{0}")]
    System(String),
}

impl From<std::io::Error> for NetworkError {
    fn from(e: std::io::Error) -> Self {
        Self::System(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, NetworkError>;
