//! Berth engine API: the wire types shared by the engine daemon, the `berth` CLI and (later) the
//! node agent, and an async client that speaks to the daemon over its unix socket.
//!
//! The API is HTTP/1.1 with JSON bodies, modelled on Docker Engine's API: PascalCase fields,
//! `/containers/...`, `/images/...`, `/volumes/...`, `/system/...`, `/events`. Errors are JSON
//! `{"message": "..."}` with a 4xx/5xx status. Log and exec output use Docker's multiplexed
//! stream framing (see [`frame`]).
//!
//! Layout: [`types`] holds the request/response shapes, [`frame`] the stdout/stderr framing,
//! [`client`] the HTTP client.

pub mod client;
pub mod frame;
pub mod types;

pub use client::{ClientError, EngineClient};
pub use types::*;

/// Default engine socket address, as accepted by `-H/--host` and `BERTH_HOST`.
pub const DEFAULT_HOST: &str = "unix:///run/berth/engine.sock";
/// Default data directory, as accepted by `--root` and `BERTH_ROOT`.
pub const DEFAULT_ROOT: &str = "/var/lib/berth";
