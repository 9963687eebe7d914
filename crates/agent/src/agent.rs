//! The agent's outer loop: register the host, open the agent channel, reconcile on every
//! snapshot, apply task and removal events, and reconnect (with backoff, and after 30 s
//! without a line). Running tasks are left alone through a server outage; state reports are
//! retried by the [`Reporter`] until the server is back.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use berth_api::shapes::agent::AgentEvent;
use berth_api::shapes::instances::{
    ContainerInstanceResponse, RegisterContainerInstanceRequest, VersionInfo,
};
use berth_api::shapes::tasks::SubmitTaskStateChangeRequest;
use berth_ecs_client::{Credentials, EcsClient, EcsClientError};
use berth_engine_client::EngineClient;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::metadata::Metadata;
use crate::reporter::{ReportSink, Reporter, SinkError};
use crate::runner::{Runner, RunnerConfig};
use crate::{resources, AgentError};

/// How long the channel may stay silent before the agent reconnects.
pub const CHANNEL_SILENCE: Duration = Duration::from_secs(30);

/// Settings of [`run`].
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The control plane, `http://HOST:PORT`.
    pub server: String,
    pub cluster: String,
    pub region: String,
    /// None: unsigned requests (a server started with `--no-auth`).
    pub credentials: Option<Credentials>,
    /// Where the agent keeps `state.json` (its instance ARN) and `metadata.json`.
    pub state_dir: PathBuf,
    /// The user's `--attributes`.
    pub attributes: Vec<(String, Option<String>)>,
    pub runner: RunnerConfig,
}

/// What the agent persists.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct State {
    cluster: String,
    container_instance_arn: Option<String>,
}

fn load_state(dir: &std::path::Path) -> State {
    std::fs::read(dir.join("state.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn save_state(dir: &std::path::Path, s: &State) -> Result<(), AgentError> {
    let tmp = dir.join("state.json.tmp");
    std::fs::write(
        &tmp,
        serde_json::to_vec_pretty(s).map_err(|e| AgentError::Io(e.to_string()))?,
    )?;
    std::fs::rename(&tmp, dir.join("state.json"))?;
    Ok(())
}

/// Task secrets are read with the agent's own credentials from the control plane's Secrets
/// Manager API.
impl crate::runner::secrets::SecretSource for EcsClient {
    fn secret_string<'a>(
        &'a self,
        secret_id: &'a str,
        version_stage: Option<&'a str>,
        version_id: Option<&'a str>,
    ) -> futures_util::future::BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            let mut req = serde_json::json!({ "SecretId": secret_id });
            if let Some(s) = version_stage {
                req["VersionStage"] = s.into();
            }
            if let Some(v) = version_id {
                req["VersionId"] = v.into();
            }
            let resp: serde_json::Value = self
                .call_secrets_manager("GetSecretValue", &req)
                .await
                .map_err(|e| e.to_string())?;
            resp.get("SecretString")
                .and_then(serde_json::Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| format!("secret {secret_id} has no string value"))
        })
    }

    fn parameter<'a>(
        &'a self,
        name: &'a str,
    ) -> futures_util::future::BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            let req = serde_json::json!({ "Names": [name], "WithDecryption": true });
            let resp: serde_json::Value = self
                .call_ssm("GetParameters", &req)
                .await
                .map_err(|e| e.to_string())?;
            resp["Parameters"][0]["Value"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("SSM parameter {name} not found"))
        })
    }
}

/// Reports go to `SubmitTaskStateChange`.
struct EcsSink {
    client: EcsClient,
}

#[async_trait::async_trait]
impl ReportSink for EcsSink {
    async fn submit(&self, report: &SubmitTaskStateChangeRequest) -> Result<(), SinkError> {
        match self
            .client
            .call::<_, serde_json::Value>("SubmitTaskStateChange", report)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_retryable() => Err(SinkError::Retryable(e.to_string())),
            Err(e) => Err(SinkError::Rejected(e.to_string())),
        }
    }
}

async fn register(
    client: &EcsClient,
    engine: &EngineClient,
    config: &AgentConfig,
    arn: Option<String>,
) -> Result<String, EcsClientError> {
    let docker_version = engine.version().await.ok().map(|v| v.version);
    let req = RegisterContainerInstanceRequest {
        cluster: Some(config.cluster.clone()),
        total_resources: Some(resources::total_resources(
            resources::host_cpus(),
            resources::host_memory_mib(),
        )),
        version_info: Some(VersionInfo {
            agent_version: Some(env!("CARGO_PKG_VERSION").to_string()),
            agent_hash: Some("berth".into()),
            docker_version,
        }),
        container_instance_arn: arn,
        attributes: Some(resources::attributes(&config.attributes)),
        ..Default::default()
    };
    let resp: ContainerInstanceResponse = client.call("RegisterContainerInstance", &req).await?;
    Ok(resp.container_instance.container_instance_arn)
}

/// Runs the agent until `shutdown` completes. Tasks keep running when it returns.
pub async fn run(
    config: AgentConfig,
    engine: EngineClient,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    tokio::pin!(shutdown);
    let client = EcsClient::new(&config.server, &config.region, config.credentials.clone())?;
    std::fs::create_dir_all(&config.state_dir)?;
    let mut state = load_state(&config.state_dir);
    if state.cluster != config.cluster {
        // Another cluster's identity is no use here.
        state.container_instance_arn = None;
        state.cluster = config.cluster.clone();
    }
    let metadata = Metadata::new(engine.clone(), Some(config.state_dir.join("metadata.json")));
    let reporter = Reporter::new(Arc::new(EcsSink {
        client: client.clone(),
    }));
    let mut runner_config = config.runner.clone();
    runner_config
        .cluster
        .get_or_insert_with(|| config.cluster.clone());
    runner_config
        .secrets
        .get_or_insert_with(|| Arc::new(client.clone()));
    let runner = Runner::new(
        engine.clone(),
        runner_config,
        reporter,
        Some(metadata.clone()),
    )
    .await?;

    let mut backoff = Backoff::new();
    let mut arn: Option<String> = None;
    loop {
        // (Re-)register when needed.
        let instance = match &arn {
            Some(a) => a.clone(),
            None => {
                let r = tokio::select! {
                    _ = &mut shutdown => return Ok(()),
                    r = register(&client, &engine, &config, state.container_instance_arn.clone()) => r,
                };
                match r {
                    Ok(a) => {
                        tracing::info!(instance = %a, cluster = %config.cluster, "registered");
                        state.container_instance_arn = Some(a.clone());
                        save_state(&config.state_dir, &state)?;
                        arn = Some(a.clone());
                        a
                    }
                    Err(e) if e.code() == Some("ClusterNotFoundException") => {
                        // As the ECS agent: the `default` cluster is created on demand; any
                        // other may be created later, so keep trying.
                        if config.cluster == "default" {
                            let _ = client
                                .call::<_, serde_json::Value>(
                                    "CreateCluster",
                                    &serde_json::json!({"clusterName": "default"}),
                                )
                                .await;
                        } else {
                            tracing::warn!(
                                "cluster {} does not exist (yet); create it with `aws ecs create-cluster`",
                                config.cluster
                            );
                        }
                        if wait(&mut shutdown, backoff.next()).await {
                            return Ok(());
                        }
                        continue;
                    }
                    Err(e) if e.is_retryable() => {
                        tracing::warn!("cannot register yet: {e}");
                        if wait(&mut shutdown, backoff.next()).await {
                            return Ok(());
                        }
                        continue;
                    }
                    Err(e) if state.container_instance_arn.is_some() => {
                        tracing::warn!("registering again with the saved instance ARN failed ({e}); registering as a new instance");
                        state.container_instance_arn = None;
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };

        let opened = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            r = client.watch(&config.cluster, &instance) => r,
        };
        let mut stream = match opened {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("cannot open the agent channel: {e}");
                if matches!(e, EcsClientError::Api { .. }) && !e.is_retryable() {
                    // Unknown or deregistered instance: register again.
                    arn = None;
                }
                if wait(&mut shutdown, backoff.next()).await {
                    return Ok(());
                }
                continue;
            }
        };
        tracing::info!("agent channel open");
        loop {
            let next = tokio::select! {
                _ = &mut shutdown => return Ok(()),
                n = tokio::time::timeout(CHANNEL_SILENCE, stream.next()) => n,
            };
            match next {
                Err(_) => {
                    tracing::warn!("agent channel silent for {CHANNEL_SILENCE:?}; reconnecting");
                    break;
                }
                Ok(None) => {
                    tracing::info!("agent channel closed; reconnecting");
                    break;
                }
                Ok(Some(Err(e))) => {
                    tracing::warn!("agent channel failed: {e}; reconnecting");
                    break;
                }
                Ok(Some(Ok(ev))) => {
                    backoff.reset();
                    match ev {
                        AgentEvent::Snapshot { tasks, .. } => runner.reconcile(tasks).await,
                        AgentEvent::Task { assignment, .. } => runner.apply(*assignment),
                        AgentEvent::Removed { task_arn, .. } => runner.removed(&task_arn),
                        AgentEvent::Heartbeat { .. } => {}
                    }
                }
            }
        }
        if wait(&mut shutdown, backoff.next()).await {
            return Ok(());
        }
    }
}

/// Sleeps `d`; true if shutdown came first.
async fn wait(shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>, d: Duration) -> bool {
    tokio::select! {
        _ = shutdown.as_mut() => true,
        _ = tokio::time::sleep(d) => false,
    }
}

/// 100 ms doubling to 10 s.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Self {
        Backoff(Duration::from_millis(100))
    }
    fn next(&mut self) -> Duration {
        let d = self.0;
        self.0 = (self.0 * 2).min(Duration::from_secs(10));
        d
    }
    fn reset(&mut self) {
        self.0 = Duration::from_millis(100);
    }
}
