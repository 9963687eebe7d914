//! A small client of the ECS API for Berth's own components (the node agent): AWS JSON 1.1
//! calls signed with SigV4 (`aws-sigv4`), ECS errors decoded into [`EcsClientError::Api`], and
//! the agent channel (`GET /v1/agent/watch`, docs/agent-protocol.md) as a stream of
//! [`berth_api::shapes::AgentEvent`].
//!
//! - [`credentials`]: where the key pair comes from (environment, shared-credentials file);
//! - [`client`]: [`EcsClient`] (`call`, `watch`).

pub mod client;
pub mod credentials;

pub use client::{AgentEventStream, EcsClient};
pub use credentials::Credentials;

/// What can go wrong talking to the control plane.
#[derive(Debug, thiserror::Error)]
pub enum EcsClientError {
    /// The server answered with an ECS error.
    #[error("{code}: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// The server could not be reached or the connection broke.
    #[error("cannot reach the control plane: {0}")]
    Transport(String),
    /// The server's answer could not be decoded.
    #[error("unexpected answer from the control plane: {0}")]
    Decode(String),
    /// Bad client configuration (endpoint, credentials).
    #[error("{0}")]
    Config(String),
}

impl EcsClientError {
    /// The ECS error code (`ClusterNotFoundException`, ...) of an API error.
    pub fn code(&self) -> Option<&str> {
        match self {
            EcsClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether retrying later may help (transport failures and server errors).
    pub fn is_retryable(&self) -> bool {
        match self {
            EcsClientError::Transport(_) => true,
            EcsClientError::Api { status, .. } => *status >= 500,
            _ => false,
        }
    }
}
