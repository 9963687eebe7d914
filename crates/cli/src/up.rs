//! `berth up`: the embedded default. The control plane (`berth server`), one node agent
//! (cluster `default`) and the engine in one process: the ECS API on `--listen` (default
//! 127.0.0.1:9400), the engine API on its usual socket (`-H`, default
//! unix:///run/berth/engine.sock), everything stored under `--root` (the server's store in
//! `<root>/server`). Exits on SIGINT/SIGTERM; containers keep running and the next `berth up`
//! adopts them.

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use berth_engine_client::EngineClient;
use serde_json::json;

use crate::server::{prepare, ServerArgs};

/// Arguments of `berth up`.
#[derive(Debug, Clone, clap::Args)]
pub struct UpArgs {
    /// Address of the ECS API (port 0 picks a free port).
    #[arg(long, env = "BERTH_LISTEN", default_value = "127.0.0.1:9400")]
    pub listen: String,
    /// Accept unsigned ECS requests (local use only).
    #[arg(long)]
    pub no_auth: bool,
    /// The AWS account id in ARNs.
    #[arg(long, env = "BERTH_ACCOUNT_ID", default_value = "123456789012")]
    pub account_id: String,
    /// Region of ARNs when a request carries no SigV4 scope, and of the agent's requests.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// The cluster the agent joins (created if missing).
    #[arg(long, default_value = "default")]
    pub cluster: String,
    /// Instance attributes of the agent, `name=value,...`.
    #[arg(long, default_value = "")]
    pub attributes: String,
    /// How long a stopped task's containers are kept before removal (e.g. 10m, 30s).
    #[arg(long, default_value = "10m")]
    pub task_cleanup_wait: String,
    /// Prefix (1-6 letters/digits) of the links and nftables table the engine creates.
    #[arg(long, env = "BERTH_NETWORK_PREFIX")]
    pub network_prefix: Option<String>,
    /// Subnet of the engine's default `bridge` network (default 172.28.0.0/16).
    #[arg(long, env = "BERTH_DEFAULT_BRIDGE_SUBNET")]
    pub default_bridge_subnet: Option<String>,
    /// When task images are pulled: prefer-cached (only a missing image), default (always,
    /// falling back to a cached image), always, once.
    #[arg(long, env = "ECS_IMAGE_PULL_BEHAVIOR", default_value = "prefer-cached")]
    pub image_pull_behavior: berth_agent::ImagePullBehavior,
    #[command(flatten)]
    pub engine_auth: crate::agent::EngineAuthArgs,
}

/// Runs server, agent and engine until SIGINT/SIGTERM.
pub async fn up(a: UpArgs, host: &str, root: &Path) -> anyhow::Result<i32> {
    let engine_auth = a.engine_auth.resolve()?;
    let cleanup_ns = crate::parse::parse_duration(&a.task_cleanup_wait)?;
    let attributes =
        berth_agent::resources::parse_attributes(&a.attributes).map_err(|e| anyhow::anyhow!(e))?;
    if !berth_api::validate::is_name(&a.cluster) {
        anyhow::bail!(
            "invalid cluster name `{}`: use 1-255 letters, digits, `-` and `_`",
            a.cluster
        );
    }
    // Engine first: it refuses to start when another engine holds the socket.
    let bound = berth_engine::daemon::bind(&berth_engine::DaemonOptions {
        host: host.to_string(),
        root: root.to_path_buf(),
        network_prefix: a.network_prefix.clone(),
        default_bridge_subnet: a.default_bridge_subnet.clone(),
        registries: berth_engine::RegistryOptions::from_env(),
    })
    .await?;
    let server = prepare(
        ServerArgs {
            listen: a.listen.clone(),
            store: None,
            account_id: a.account_id.clone(),
            no_auth: a.no_auth,
            region: a.region.clone(),
        },
        root,
    )
    .await?;
    let url = format!("http://{}", server.addr);
    let credentials = match &server.credentials {
        Some(path) => Some(
            berth_ecs_client::Credentials::from_shared_file(path, "default")
                .with_context(|| format!("reading the credentials in {}", path.display()))?,
        ),
        None => None,
    };
    let auth_line = server.auth_line();

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stop_tx = std::sync::Arc::new(stop_tx);
    let on_signal = stop_tx.clone();
    tokio::spawn(async move {
        crate::server::shutdown_signal().await;
        let _ = on_signal.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let engine_task = tokio::spawn(bound.serve(stopped(stop_rx.clone())));
    let server_task = tokio::spawn(berth_server::run(
        server.listener,
        server.config,
        stopped(stop_rx.clone()),
    ));

    let client = berth_ecs_client::EcsClient::new(&url, &a.region, credentials.clone())?;
    let created: Result<serde_json::Value, _> = client
        .call("CreateCluster", &json!({ "clusterName": a.cluster }))
        .await;
    if let Err(e) = created {
        let _ = stop_tx.send(true);
        let _ = server_task.await;
        let _ = engine_task.await;
        return Err(e).with_context(|| format!("creating the cluster `{}`", a.cluster));
    }
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "berth server listening on {url}")?;
        writeln!(out, "{auth_line}")?;
        writeln!(
            out,
            "berth engine listening on {host} (root {})",
            root.display()
        )?;
        writeln!(out, "berth agent: cluster {}", a.cluster)?;
        out.flush()?;
    }
    let config = berth_agent::AgentConfig {
        server: url,
        cluster: a.cluster.clone(),
        region: a.region.clone(),
        credentials,
        state_dir: root.join("agent"),
        attributes,
        runner: berth_agent::RunnerConfig {
            task_cleanup_wait: Duration::from_nanos(cleanup_ns),
            image_pull: a.image_pull_behavior,
            engine_auth,
            ..Default::default()
        },
    };
    let agent = berth_agent::run(config, EngineClient::new(host)?, stopped(stop_rx.clone())).await;
    // The agent ends at shutdown, or on a fatal error: take the others down with it.
    let _ = stop_tx.send(true);
    let served = server_task.await.context("the control plane panicked")?;
    let engine = engine_task.await.context("the engine panicked")?;
    agent?;
    served?;
    engine?;
    Ok(0)
}
