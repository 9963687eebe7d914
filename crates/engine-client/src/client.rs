//! Async HTTP client for the engine API over a unix socket (placeholder; being written).

/// Failure talking to the engine.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to the berth engine at {0}: {1}")]
    Connect(String, String),
}

/// Client handle.
pub struct EngineClient;
