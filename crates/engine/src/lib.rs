//! Berth engine: the daemon that plays Docker Engine's role on one host.
//!
//! Layout:
//! - [`daemon`] — `berth engine` — binds the unix socket and serves [`api`].
//! - [`distribution`] — pull, push and login over the API (`POST /images/create?fromImage=`,
//!   `POST /images/{name}/push`, `POST /auth`) through berth-distribution, as Docker's JSON
//!   progress streams.
//! - [`api`] — HTTP routes (docs/engine-api.md) -> engine calls; errors -> statuses.
//! - [`engine`] — the container table and lifecycle (create, start, stop, kill, remove, wait),
//!   exit handling with restart policies, live restore. [`prepare`] turns a request and its
//!   image into a record and a record into an OCI spec; [`rootfs`] mounts the overlay.
//! - [`monitor`] — the per-container monitor process (`berth __monitor`): runs the container
//!   through berth-runtime, holds stdio, writes [`logfile`]s, records the exit.
//! - [`exec_helper`] — the exec helper process (`berth __exec`); [`exec`] drives it.
//! - [`networking`] — bridge networks through berth-network: API-facing network calls and
//!   the attach/detach of containers at start and exit.
//! - [`memory`] — giving pages back when idle (the monitor; the agent's process).
//! - [`health`], [`logs`], [`listing`], [`system`], [`volumes`], [`events`]: one feature each.
//!
//! Process model: the daemon is async (tokio) and never forks containers itself; youki's
//! libcontainer runs only in the single-threaded monitor and exec helper processes.

pub mod api;
pub mod attach;
pub mod build;
pub mod daemon;
pub mod distribution;
pub(crate) mod dns;
pub mod engine;
pub mod error;
pub mod events;
pub mod exec;
pub mod exec_helper;
pub mod exec_session;
pub mod health;
pub mod listing;
pub mod logfile;
pub mod logs;
pub mod memory;
pub mod monitor;
pub mod monitor_io;
pub mod names;
pub mod networking;
pub mod paths;
pub(crate) mod ports;
pub mod prepare;
pub mod record;
pub mod rootfs;
pub mod system;
pub mod volumes;

use std::path::PathBuf;

/// Options of `berth engine`.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// `unix:///path/to/socket`.
    pub host: String,
    /// Data directory.
    pub root: PathBuf,
    /// Prefix of the links and the nftables table the engine creates (default `berth`).
    pub network_prefix: Option<String>,
    /// Subnet of the default `bridge` network (default 172.28.0.0/16).
    pub default_bridge_subnet: Option<String>,
    /// Insecure registries and Docker Hub mirrors.
    pub registries: berth_distribution::RegistryOptions,
}

pub use berth_distribution::RegistryOptions;

/// Runs the engine daemon until SIGINT/SIGTERM.
pub async fn run_daemon(opts: DaemonOptions) -> anyhow::Result<()> {
    daemon::run(opts).await
}
