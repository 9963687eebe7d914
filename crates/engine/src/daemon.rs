//! `berth engine`: opens the engine, serves its API on the unix socket, and exits on
//! SIGINT/SIGTERM leaving containers running (their monitors live on; the next engine process
//! finds them again).

use std::path::PathBuf;

use tokio::signal::unix::{signal, SignalKind};

use crate::engine::Engine;
use crate::DaemonOptions;

/// The socket path of a `unix://` host address (or a bare absolute path).
pub fn socket_path(host: &str) -> anyhow::Result<PathBuf> {
    if let Some(p) = host.strip_prefix("unix://") {
        return Ok(PathBuf::from(p));
    }
    if host.starts_with('/') {
        return Ok(PathBuf::from(host));
    }
    anyhow::bail!("unsupported host address {host:?}: use unix:///path/to/engine.sock")
}

/// An engine opened and bound to its socket, ready to serve (see [`bind`]).
pub struct BoundEngine {
    listener: tokio::net::UnixListener,
    socket: PathBuf,
    engine: std::sync::Arc<Engine>,
}

/// Opens the engine (live restore included) and binds its socket, refusing to steal the socket
/// of a live engine. Once this returns, clients can connect (requests wait for
/// [`BoundEngine::serve`]).
pub async fn bind(opts: &DaemonOptions) -> anyhow::Result<BoundEngine> {
    let socket = socket_path(&opts.host)?;
    if let Some(parent) = socket.parent() {
        std::fs::create_dir_all(parent)?;
    }
    // Refuse to steal the socket of a live engine; remove a stale one.
    if socket.exists() {
        if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
            anyhow::bail!(
                "another engine is already listening on {}; stop it or use -H to pick another socket",
                socket.display()
            );
        }
        std::fs::remove_file(&socket)?;
    }
    let mut net = berth_network::NetworkOptions::new(&opts.root);
    if let Some(p) = opts.network_prefix.as_deref().filter(|p| !p.is_empty()) {
        if p.len() > 6 || !p.chars().all(|c| c.is_ascii_alphanumeric()) {
            anyhow::bail!("invalid network prefix {p:?}: use 1-6 letters or digits");
        }
        net.prefix = p.to_string();
    }
    if let Some(s) = opts
        .default_bridge_subnet
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        net.default_subnet = s.parse()?;
    }
    let engine = Engine::open_with(&opts.root, net, opts.registries.clone()).await?;
    let listener = tokio::net::UnixListener::bind(&socket)?;
    tracing::info!(socket = %socket.display(), root = %opts.root.display(), "berth engine listening");
    Ok(BoundEngine {
        listener,
        socket,
        engine,
    })
}

impl BoundEngine {
    /// The socket's path.
    pub fn socket(&self) -> &std::path::Path {
        &self.socket
    }

    /// Serves the engine API until `shutdown` completes, then removes the socket. Containers
    /// keep running (their monitors live on).
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        // Docker clients prefix every path with an API version (`/v1.41/containers/json`):
        // accept and drop it, so the shared paths route the same.
        let engine = self.engine.clone();
        let app = tower::ServiceExt::<axum::extract::Request>::map_request(
            crate::api::router(self.engine),
            strip_api_version,
        );
        let served = axum::serve(self.listener, axum::ServiceExt::into_make_service(app))
            .with_graceful_shutdown(shutdown)
            .await;
        let _ = std::fs::remove_file(&self.socket);
        // Veth pairs of removed containers are deleted in the background: let them finish.
        let _ = tokio::task::spawn_blocking(move || engine.networks.flush()).await;
        served?;
        Ok(())
    }
}

/// `berth engine`: binds, prints where, serves until SIGINT/SIGTERM.
pub async fn run(opts: DaemonOptions) -> anyhow::Result<()> {
    let bound = bind(&opts).await?;
    eprintln!(
        "berth engine listening on unix://{} (root {})",
        bound.socket().display(),
        opts.root.display()
    );
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    };
    bound.serve(shutdown).await
}

/// Rewrites `/v1.NN/rest` to `/rest`.
fn strip_api_version(mut req: axum::extract::Request) -> axum::extract::Request {
    let path = req.uri().path();
    let Some(rest) = path.strip_prefix("/v") else {
        return req;
    };
    let Some((version, tail)) = rest.split_once('/') else {
        return req;
    };
    if version.is_empty() || !version.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return req;
    }
    let new = match req.uri().query() {
        Some(q) => format!("/{tail}?{q}"),
        None => format!("/{tail}"),
    };
    if let Ok(uri) = new.parse() {
        *req.uri_mut() = uri;
    }
    req
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_prefix_is_dropped() {
        let req = |p: &str| {
            axum::extract::Request::builder()
                .uri(p)
                .body(axum::body::Body::empty())
                .unwrap()
        };
        assert_eq!(
            strip_api_version(req("/v1.41/containers/json?all=1")).uri(),
            "/containers/json?all=1"
        );
        assert_eq!(
            strip_api_version(req("/containers/json")).uri(),
            "/containers/json"
        );
        assert_eq!(
            strip_api_version(req("/volumes/vname")).uri(),
            "/volumes/vname"
        );
    }
}
