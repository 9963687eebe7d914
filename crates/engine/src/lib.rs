//! Berth engine (being written).

use std::path::PathBuf;

/// Options of `berth engine`.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// `unix:///path/to/socket`.
    pub host: String,
    /// Data directory.
    pub root: PathBuf,
}

/// Runs the engine daemon until SIGINT/SIGTERM.
pub async fn run_daemon(opts: DaemonOptions) -> anyhow::Result<()> {
    anyhow::bail!("engine not built yet: {opts:?}")
}
