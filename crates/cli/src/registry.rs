//! `berth registry`: runs the OCI distribution registry (crate `berth-registry`).

use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;

/// `berth registry` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct RegistryArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:5000")]
    pub listen: String,
    /// Require this user (USER:PASSWORD; repeatable). Without it access is anonymous.
    #[arg(long = "auth", value_name = "USER:PASSWORD")]
    pub auth: Vec<String>,
    /// Require the users of this htpasswd file (bcrypt entries, as `htpasswd -B` writes).
    #[arg(long, value_name = "FILE")]
    pub htpasswd: Option<std::path::PathBuf>,
    /// Issue bearer tokens from /token (Docker's token flow) instead of basic auth on /v2/.
    #[arg(long)]
    pub token_auth: bool,
}

/// Serves until SIGTERM or SIGINT.
pub async fn serve(args: RegistryArgs, root: &Path) -> anyhow::Result<i32> {
    let mut users = Vec::new();
    for a in &args.auth {
        let (u, p) = a
            .split_once(':')
            .filter(|(u, _)| !u.is_empty())
            .with_context(|| format!("--auth {a:?}: want USER:PASSWORD"))?;
        users.push((u.to_string(), p.to_string()));
    }
    let htpasswd = match &args.htpasswd {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --htpasswd {}", path.display()))?;
            let entries = berth_registry::auth::parse_htpasswd(&text)
                .map_err(|e| anyhow::anyhow!("--htpasswd {}: {e}", path.display()))?;
            if entries.is_empty() {
                anyhow::bail!("--htpasswd {}: the file has no users", path.display());
            }
            entries
        }
        None => Vec::new(),
    };
    if args.token_auth && users.is_empty() && htpasswd.is_empty() {
        anyhow::bail!("--token-auth needs users: --auth USER:PASSWORD or --htpasswd FILE");
    }
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let config = berth_registry::Config {
        root: root.to_path_buf(),
        auth: berth_registry::AuthConfig {
            users,
            htpasswd,
            token: args.token_auth,
            token_ttl: 300,
        },
    };
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "berth registry listening on http://{addr}")?;
        out.flush()?;
    }
    berth_registry::run(listener, config, crate::server::shutdown_signal()).await?;
    Ok(0)
}
