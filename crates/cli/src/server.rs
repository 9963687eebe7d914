//! `berth server`: the ECS-compatible control plane (berth-server) on a TCP listener.
//!
//! Prints, flushed, before serving: `berth server listening on http://HOST:PORT`, then either
//! the credentials line (auth on) or `authentication disabled (--no-auth)`. Logs go to
//! stderr. SIGTERM/SIGINT shut it down gracefully (exit 0).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use berth_server::{Auth, ServerConfig};

/// Arguments of `berth server`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "BERTH_LISTEN", default_value = "127.0.0.1:9400")]
    pub listen: String,
    /// Directory of the server's store and credentials (default: <root>/server).
    #[arg(long, env = "BERTH_STORE")]
    pub store: Option<PathBuf>,
    /// The AWS account id in ARNs.
    #[arg(long, env = "BERTH_ACCOUNT_ID", default_value = "123456789012")]
    pub account_id: String,
    /// Accept unsigned requests (local use only).
    #[arg(long)]
    pub no_auth: bool,
    /// Region used when a request carries no SigV4 credential scope.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
}

/// A server ready to run: its store opened, its credentials set up, its listener bound.
pub struct PreparedServer {
    pub listener: tokio::net::TcpListener,
    pub config: ServerConfig,
    pub addr: std::net::SocketAddr,
    /// The credentials file (auth on), `None` with `--no-auth`.
    pub credentials: Option<PathBuf>,
}

impl PreparedServer {
    /// `credentials: PATH (export ...)` or `authentication disabled (--no-auth)`.
    pub fn auth_line(&self) -> String {
        match &self.credentials {
            Some(p) => {
                let p = p.display();
                format!("credentials: {p} (export AWS_SHARED_CREDENTIALS_FILE={p})")
            }
            None => "authentication disabled (--no-auth)".to_owned(),
        }
    }
}

/// The embedded store's options: the defaults, except that `BERTH_STORE_WAL=off` turns the
/// write-ahead log off (every group commit is then a durable redb commit; for comparison) and
/// `BERTH_STORE_CACHE_MIB` sets redb's cache size.
fn store_options() -> berth_store::RedbOptions {
    let mut options = berth_store::RedbOptions::default();
    if std::env::var("BERTH_STORE_WAL").is_ok_and(|v| v == "off" || v == "0") {
        options.wal = false;
    }
    if let Some(mib) = std::env::var("BERTH_STORE_CACHE_MIB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        options.cache_size = mib << 20;
    }
    options
}

/// Opens the store (default `<root>/server`), sets up credentials and binds the listener.
pub async fn prepare(args: ServerArgs, root: &Path) -> anyhow::Result<PreparedServer> {
    if args.account_id.len() != 12 || !args.account_id.bytes().all(|b| b.is_ascii_digit()) {
        anyhow::bail!("invalid account id `{}`: use 12 digits", args.account_id);
    }
    let dir = args.store.clone().unwrap_or_else(|| root.join("server"));
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the store directory {}", dir.display()))?;
    let store: Arc<dyn berth_store::Store> = Arc::new(
        berth_store::RedbStore::open_with(&dir, store_options())
            .with_context(|| format!("cannot open the store in {}", dir.display()))?,
    );
    let (auth, credentials) = if args.no_auth {
        (Auth::Disabled, None)
    } else {
        let (creds, created) = berth_auth::CredentialStore::load_or_create(&dir)
            .with_context(|| format!("cannot set up credentials in {}", dir.display()))?;
        let path = creds.path().to_path_buf();
        if created {
            tracing::info!("created a new access key pair in {}", path.display());
        }
        (Auth::Enabled(Arc::new(creds)), Some(path))
    };
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener
        .local_addr()
        .context("cannot read the bound address")?;
    let config = ServerConfig {
        store,
        account_id: args.account_id,
        default_region: args.region,
        auth,
    };
    Ok(PreparedServer {
        listener,
        config,
        addr,
        credentials,
    })
}

/// Runs the server until SIGTERM or SIGINT.
pub async fn serve(args: ServerArgs, root: &Path) -> anyhow::Result<i32> {
    let prepared = prepare(args, root).await?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "berth server listening on http://{}", prepared.addr)?;
        writeln!(out, "{}", prepared.auth_line())?;
        out.flush()?;
    }
    berth_server::run(prepared.listener, prepared.config, shutdown_signal()).await?;
    Ok(0)
}

pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot watch SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down");
}
