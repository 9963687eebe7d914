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

pub async fn run(opts: DaemonOptions) -> anyhow::Result<()> {
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
    let engine = Engine::open(&opts.root).await?;
    let listener = tokio::net::UnixListener::bind(&socket)?;
    tracing::info!(socket = %socket.display(), root = %opts.root.display(), "berth engine listening");
    eprintln!(
        "berth engine listening on unix://{} (root {})",
        socket.display(),
        opts.root.display()
    );
    let app = crate::api::router(engine);
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    let _ = std::fs::remove_file(&socket);
    Ok(())
}
