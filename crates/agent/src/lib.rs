//! The Berth node agent (`berth agent`), the ECS container agent's counterpart: one per host,
//! it registers the host with the control plane, receives the tasks placed on it over the
//! agent channel (docs/agent-protocol.md) and runs them through the engine.
//!
//! Layout:
//! - [`agent`]: [`agent::run`] — registration (ARN kept in `<state dir>/state.json`), the
//!   agent channel (reconnects with backoff and after 30 s of silence), reconciling each
//!   snapshot, task and removal events;
//! - [`runner`]: tasks -> engine containers (names, labels, network modes, volumes,
//!   dependsOn, essential, stopTimeout, health), adoption after a restart, cleanup;
//! - [`reporter`]: coalescing, retrying `SubmitTaskStateChange` reports per task;
//! - [`metadata`]: the task metadata endpoint v4 (`ECS_CONTAINER_METADATA_URI_V4`);
//! - [`pause`]: the hand-assembled pause program of awsvpc tasks and its engine image;
//! - [`resources`]: what the host offers (CPU, memory, ports, attributes).

pub mod agent;
pub mod metadata;
pub mod pause;
pub mod reporter;
pub mod resources;
pub mod runner;

pub use agent::{run, AgentConfig};
pub use reporter::{ChannelSink, ReportSink, Reporter, SinkError};
pub use runner::engine_auth::{EngineAuth, EngineAuthType};
pub use runner::images::ImagePullBehavior;
pub use runner::secrets::SecretSource;
pub use runner::{Runner, RunnerConfig};

/// What can go wrong in the agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The engine failed or answered unexpectedly.
    #[error("engine: {0}")]
    Engine(String),
    /// The control plane refused a call that cannot be retried.
    #[error("control plane: {0}")]
    Server(String),
    /// Local I/O (state directory, listeners).
    #[error("{0}")]
    Io(String),
    /// Bad configuration.
    #[error("{0}")]
    Config(String),
}

impl From<berth_engine_client::ClientError> for AgentError {
    fn from(e: berth_engine_client::ClientError) -> Self {
        AgentError::Engine(e.to_string())
    }
}

impl From<berth_ecs_client::EcsClientError> for AgentError {
    fn from(e: berth_ecs_client::EcsClientError) -> Self {
        AgentError::Server(e.to_string())
    }
}

impl From<std::io::Error> for AgentError {
    fn from(e: std::io::Error) -> Self {
        AgentError::Io(e.to_string())
    }
}
