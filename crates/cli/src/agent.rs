//! `berth agent`: the node agent. Connects to the engine at `--host` (starting one in this
//! process when none answers there), then hands over to [`berth_agent::run`] until SIGINT or
//! SIGTERM. Tasks keep running when the agent exits; the next agent adopts them.
//!
//! Memory: the process uses at most two malloc arenas and gives back the pages a burst of work
//! touched once it is idle again ([`berth_engine::memory::shed_when_idle`]); see
//! docs/benchmarks.md, "Node agent".

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use berth_engine_client::EngineClient;
use tokio::signal::unix::{signal, SignalKind};

/// `berth agent`.
#[derive(Debug, Clone, clap::Args)]
pub struct AgentArgs {
    /// The control plane's URL (`http://HOST:PORT`).
    #[arg(long, env = "BERTH_SERVER")]
    pub server: String,
    /// The cluster to join.
    #[arg(long, default_value = "default")]
    pub cluster: String,
    /// Instance attributes, `name=value,...` (e.g. `ecs.availability-zone=az1`).
    #[arg(long, default_value = "")]
    pub attributes: String,
    /// Region of the requests' SigV4 scope.
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    pub region: String,
    /// AWS shared-credentials file (the one `berth server` prints); else AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY; else unsigned requests.
    #[arg(long)]
    pub credentials_file: Option<PathBuf>,
    /// Profile of the credentials file.
    #[arg(long, env = "AWS_PROFILE", default_value = "default")]
    pub profile: String,
    /// How long a stopped task's containers are kept before removal (e.g. 10m, 30s).
    #[arg(long, default_value = "10m")]
    pub task_cleanup_wait: String,
    /// Subnet of the awsvpc task network when the agent creates it (the engine picks one
    /// otherwise).
    #[arg(long)]
    pub task_network_subnet: Option<String>,
    /// Link/nftables prefix of an engine started in process.
    #[arg(long, env = "BERTH_NETWORK_PREFIX")]
    pub network_prefix: Option<String>,
    /// Default bridge subnet of an engine started in process.
    #[arg(long, env = "BERTH_DEFAULT_BRIDGE_SUBNET")]
    pub default_bridge_subnet: Option<String>,
    /// When task images are pulled: prefer-cached (only a missing image), default (always,
    /// falling back to a cached image), always, once.
    #[arg(long, env = "ECS_IMAGE_PULL_BEHAVIOR", default_value = "prefer-cached")]
    pub image_pull_behavior: berth_agent::ImagePullBehavior,
    #[command(flatten)]
    pub engine_auth: EngineAuthArgs,
}

/// Registry logins for task images, as the ECS agent takes them.
#[derive(Debug, Clone, clap::Args)]
pub struct EngineAuthArgs {
    /// Format of --engine-auth-data: docker ({"REGISTRY": {"username", "password"}}) or
    /// dockercfg ({"REGISTRY": {"auth": base64 of user:password}}).
    #[arg(long, env = "ECS_ENGINE_AUTH_TYPE")]
    pub engine_auth_type: Option<berth_agent::EngineAuthType>,
    /// Registry logins used to pull task images (JSON, see --engine-auth-type).
    #[arg(long, env = "ECS_ENGINE_AUTH_DATA", hide_env_values = true)]
    pub engine_auth_data: Option<String>,
}

impl EngineAuthArgs {
    /// The parsed logins; both settings or neither.
    pub fn resolve(&self) -> anyhow::Result<Option<std::sync::Arc<berth_agent::EngineAuth>>> {
        match (self.engine_auth_type, &self.engine_auth_data) {
            (None, None) => Ok(None),
            (Some(kind), Some(data)) => berth_agent::EngineAuth::parse(kind, data)
                .map(|a| Some(std::sync::Arc::new(a)))
                .map_err(|e| anyhow::anyhow!(e)),
            (Some(_), None) => anyhow::bail!(
                "--engine-auth-type (ECS_ENGINE_AUTH_TYPE) is set but --engine-auth-data (ECS_ENGINE_AUTH_DATA) is not"
            ),
            (None, Some(_)) => anyhow::bail!(
                "--engine-auth-data (ECS_ENGINE_AUTH_DATA) is set but --engine-auth-type (ECS_ENGINE_AUTH_TYPE) is not: docker or dockercfg"
            ),
        }
    }
}

fn credentials(a: &AgentArgs) -> anyhow::Result<Option<berth_ecs_client::Credentials>> {
    if let Some(f) = &a.credentials_file {
        return Ok(Some(
            berth_ecs_client::Credentials::from_shared_file(f, &a.profile)
                .with_context(|| format!("reading credentials from {}", f.display()))?,
        ));
    }
    Ok(berth_ecs_client::Credentials::from_env())
}

/// Caps glibc's malloc at two arenas (the main one and one shared by the other threads)
/// instead of one per thread: an idle agent keeps less free heap spread across arenas. Call
/// before any thread starts.
pub fn limit_malloc_arenas() {
    // SAFETY: mallopt only changes malloc's tuning; called from `main` before the runtime's
    // threads exist, so no allocation runs concurrently.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Runs the agent until SIGINT/SIGTERM.
pub async fn run(a: AgentArgs, host: &str, root: &Path) -> anyhow::Result<i32> {
    let engine_auth = a.engine_auth.resolve()?;
    let cleanup_ns = crate::parse::parse_duration(&a.task_cleanup_wait)?;
    let attributes =
        berth_agent::resources::parse_attributes(&a.attributes).map_err(|e| anyhow::anyhow!(e))?;
    let creds = credentials(&a)?;

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    // Idle, the agent needs a few pages; each burst of work (an image import, a task start)
    // touches megabytes of code and heap: give them back when it is over.
    tokio::spawn(berth_engine::memory::shed_when_idle());
    let engine = EngineClient::new(host)?;
    let mut in_process = None;
    if engine.ping().await.is_err() {
        eprintln!("no engine answers at {host}; starting one in this process");
        let bound = berth_engine::daemon::bind(&berth_engine::DaemonOptions {
            host: host.to_string(),
            root: root.to_path_buf(),
            network_prefix: a.network_prefix.clone(),
            default_bridge_subnet: a.default_bridge_subnet.clone(),
            registries: berth_engine::RegistryOptions::from_env(),
        })
        .await?;
        in_process = Some(tokio::spawn(bound.serve(stopped(stop_rx.clone()))));
    }

    let config = berth_agent::AgentConfig {
        server: a.server.clone(),
        cluster: a.cluster.clone(),
        region: a.region.clone(),
        credentials: creds,
        state_dir: root.join("agent"),
        attributes,
        runner: berth_agent::RunnerConfig {
            task_cleanup_wait: Duration::from_nanos(cleanup_ns),
            task_network_subnet: a.task_network_subnet.clone(),
            image_pull: a.image_pull_behavior,
            engine_auth,
            ..Default::default()
        },
    };
    eprintln!(
        "berth agent: cluster {} at {}, engine {host}",
        a.cluster, a.server
    );
    berth_agent::run(config, engine, stopped(stop_rx.clone())).await?;
    if let Some(h) = in_process {
        h.await??;
    }
    Ok(0)
}
