//! Berth's registry: an OCI Distribution Spec v2 server (Docker Registry HTTP API v2).
//!
//! [`run`] serves a bound listener until a shutdown future completes; [`router`] gives the axum
//! app for embedding. Storage ([`storage`]) uses the engine's content store layout for blobs
//! (`<root>/content/blobs/sha256/<hex>`, digest-verified, temp + fsync + rename) and keeps
//! repositories, tags and uploads under `<root>/registry/`.
//!
//! Modules: [`routes`] (path dispatch and handlers: base, blobs, uploads, manifests, tags,
//! catalog, token), [`storage`], [`auth`] (basic auth or bearer tokens), [`error`] (the spec's
//! error codes and JSON), [`range`] (`Range`/`Content-Range` parsing), [`base64`].

pub mod auth;
pub mod base64;
pub mod error;
pub mod range;
pub mod routes;
pub mod storage;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

pub use auth::AuthConfig;
pub use error::RegistryError;

/// What a registry serves.
#[derive(Debug, Clone)]
pub struct Config {
    /// Data root (the engine's layout: `content/`, plus `registry/`).
    pub root: PathBuf,
    pub auth: AuthConfig,
}

/// The axum app for `config`.
pub fn router(config: Config) -> Result<axum::Router, RegistryError> {
    let storage = storage::Storage::open(&config.root)?;
    let app = Arc::new(routes::App {
        storage,
        auth: auth::Auth::new(config.auth),
    });
    Ok(routes::router(app))
}

/// Serves the registry on `listener` until `shutdown` completes.
pub async fn run(
    listener: tokio::net::TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RegistryError> {
    let app = router(config)?;
    // Without TCP_NODELAY a response sent as headers, then a small body (a blob streamed from
    // its file) waits for the client's delayed ACK of the headers: ~40 ms per such request.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
