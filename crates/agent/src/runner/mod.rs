//! The task runner: turns [`TaskAssignment`]s into engine containers and keeps each task at its
//! desired status. One tokio task (an actor, [`task`]) per ECS task; one engine event
//! subscription for the whole runner, dispatched to the actors by container id (or by the
//! `com.amazonaws.ecs.task-arn` label).
//!
//! - [`spec`]: names, labels, network modes, volumes, definition -> `ContainerCreate` (pure);
//! - [`deps`]: `dependsOn` validation and stop order (pure);
//! - [`state`]: lifecycle statuses, the task view and its report;
//! - [`task`]: the per-task actor (adopt, create, start by dependencies, watch, stop, clean up).
//!
//! Dropping the [`Runner`] ends its actors but leaves the containers running: a new runner on
//! the same engine adopts them (nothing is started twice).

pub mod deps;
pub mod engine_auth;
pub mod images;
pub mod secrets;
pub mod spec;
pub mod state;
mod task;

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use berth_api::shapes::agent::TaskAssignment;
use berth_engine_client::client::Filters;
use berth_engine_client::{EngineClient, Event};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::metadata::Metadata;
use crate::reporter::Reporter;
use crate::AgentError;
pub use state::{ContainerStatus, ContainerView, TaskStatus, TaskView};

/// Every task the runner knows, by task ARN (shared with the metadata endpoint).
pub type Views = Arc<RwLock<HashMap<String, TaskView>>>;

/// Runner settings.
#[derive(Clone, Debug)]
pub struct RunnerConfig {
    /// How long a stopped task's containers stay before they are removed.
    pub task_cleanup_wait: Duration,
    /// The engine network awsvpc tasks' pause containers join (created if missing).
    pub task_network: String,
    /// Its subnet when the agent creates it (the engine picks one when None).
    pub task_network_subnet: Option<String>,
    /// The cluster this runner serves: [`Runner::reconcile`] only stops unknown containers
    /// labelled with it (None: any task container of the engine).
    pub cluster: Option<String>,
    /// When task images are pulled (`ECS_IMAGE_PULL_BEHAVIOR`).
    pub image_pull: images::ImagePullBehavior,
    /// Registry logins given to the agent (`ECS_ENGINE_AUTH_TYPE`/`ECS_ENGINE_AUTH_DATA`),
    /// tried before Docker's config file.
    pub engine_auth: Option<std::sync::Arc<engine_auth::EngineAuth>>,
    /// Where task secrets (`secrets`, `repositoryCredentials`) are read; the agent sets its
    /// control plane client. None: tasks with secrets fail to start.
    pub secrets: Option<std::sync::Arc<dyn secrets::SecretSource>>,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            task_cleanup_wait: Duration::from_secs(600),
            task_network: "berth-task".into(),
            task_network_subnet: None,
            cluster: None,
            image_pull: Default::default(),
            engine_auth: None,
            secrets: None,
        }
    }
}

pub(crate) enum Msg {
    /// The server's latest version of the task (desired status).
    Desired(Box<TaskAssignment>),
    /// An engine event about one of the task's containers.
    Engine(Event),
    /// The event stream was re-established: events may have been missed.
    Resync,
    /// The server no longer lists the task: stop it if it runs, clean up, forget it.
    Forget,
}

struct Handle {
    tx: mpsc::UnboundedSender<Msg>,
    join: JoinHandle<()>,
}

#[derive(Default)]
pub(crate) struct Infra {
    bridge_gateway: Option<Ipv4Addr>,
    /// (gateway, subnet) of the task network.
    task_network: Option<(Ipv4Addr, String)>,
    pause_image: bool,
}

pub(crate) struct Shared {
    pub(crate) engine: EngineClient,
    pub(crate) config: RunnerConfig,
    pub(crate) reporter: Reporter,
    pub(crate) metadata: Option<Arc<Metadata>>,
    pub(crate) views: Views,
    tasks: Mutex<HashMap<String, Handle>>,
    by_container: Mutex<HashMap<String, String>>,
    /// Task ARNs with containers in the engine when the runner started (adoption candidates).
    preexisting: Mutex<HashSet<String>>,
    pub(crate) infra: tokio::sync::Mutex<Infra>,
    pub(crate) pulls: images::Pulls,
}

impl Shared {
    pub(crate) fn track(&self, container_id: &str, arn: &str) {
        if let Ok(mut m) = self.by_container.lock() {
            m.insert(container_id.to_string(), arn.to_string());
        }
    }

    pub(crate) fn untrack(&self, container_id: &str) {
        if let Ok(mut m) = self.by_container.lock() {
            m.remove(container_id);
        }
    }

    pub(crate) fn preexisting(&self, arn: &str) -> bool {
        self.preexisting
            .lock()
            .map(|s| s.contains(arn))
            .unwrap_or(true)
    }

    /// The default bridge network's gateway (where bridge containers reach the agent).
    pub(crate) async fn bridge_gateway(&self) -> Result<Ipv4Addr, AgentError> {
        let mut infra = self.infra.lock().await;
        if let Some(gw) = infra.bridge_gateway {
            return Ok(gw);
        }
        let net = self.engine.inspect_network("bridge").await?;
        let gw = gateway_of(&net)?;
        infra.bridge_gateway = Some(gw);
        Ok(gw)
    }

    /// The task network (created if missing): its gateway and subnet.
    pub(crate) async fn task_network(&self) -> Result<(Ipv4Addr, String), AgentError> {
        let mut infra = self.infra.lock().await;
        if let Some(t) = &infra.task_network {
            return Ok(t.clone());
        }
        let name = &self.config.task_network;
        let net = match self.engine.inspect_network(name).await {
            Ok(n) => n,
            Err(e) if e.is_not_found() => {
                let mut req = berth_engine_client::NetworkCreate {
                    name: name.clone(),
                    driver: "bridge".into(),
                    ..Default::default()
                };
                if let Some(s) = &self.config.task_network_subnet {
                    req.ipam.config.push(berth_engine_client::IpamConfig {
                        subnet: s.clone(),
                        gateway: String::new(),
                    });
                }
                req.labels
                    .insert("com.berth.agent".into(), "task-network".into());
                self.engine.create_network(&req).await?;
                self.engine.inspect_network(name).await?
            }
            Err(e) => return Err(e.into()),
        };
        let gw = gateway_of(&net)?;
        let subnet = net
            .ipam
            .config
            .first()
            .map(|c| c.subnet.clone())
            .unwrap_or_default();
        infra.task_network = Some((gw, subnet.clone()));
        Ok((gw, subnet))
    }

    pub(crate) async fn ensure_pause_image(&self) -> Result<(), AgentError> {
        let mut infra = self.infra.lock().await;
        if !infra.pause_image {
            crate::pause::ensure_image(&self.engine).await?;
            infra.pause_image = true;
        }
        Ok(())
    }
}

fn gateway_of(net: &berth_engine_client::NetworkInspect) -> Result<Ipv4Addr, AgentError> {
    net.ipam
        .config
        .iter()
        .find_map(|c| c.gateway.parse().ok())
        .ok_or_else(|| AgentError::Engine(format!("network {} has no IPv4 gateway", net.name)))
}

/// Runs tasks through one engine. See the module docs.
pub struct Runner {
    sh: Arc<Shared>,
    events: JoinHandle<()>,
}

impl Runner {
    /// Subscribes to the engine's events (before anything is started, so no exit is missed)
    /// and notes which tasks already have containers (to adopt them).
    pub async fn new(
        engine: EngineClient,
        config: RunnerConfig,
        reporter: Reporter,
        metadata: Option<Arc<Metadata>>,
    ) -> Result<Runner, AgentError> {
        let views = metadata.as_ref().map(|m| m.views()).unwrap_or_default();
        let mut filters = Filters::new();
        filters.insert("type".into(), vec!["container".into()]);
        let stream = engine.events(None, None, &filters).await?;
        let mut label = Filters::new();
        label.insert("label".into(), vec![spec::LABEL_TASK_ARN.into()]);
        let existing = engine.list_containers(true, &label).await?;
        let preexisting = existing
            .iter()
            .filter_map(|c| c.labels.get(spec::LABEL_TASK_ARN).cloned())
            .collect();
        let sh = Arc::new(Shared {
            engine,
            config,
            reporter,
            metadata,
            views,
            tasks: Mutex::new(HashMap::new()),
            by_container: Mutex::new(HashMap::new()),
            preexisting: Mutex::new(preexisting),
            infra: tokio::sync::Mutex::new(Infra::default()),
            pulls: Default::default(),
        });
        let events = tokio::spawn(dispatch_events(Arc::downgrade(&sh), stream));
        Ok(Runner { sh, events })
    }

    /// The task views (shared with the metadata endpoint).
    pub fn views(&self) -> Views {
        self.sh.views.clone()
    }

    /// The current view of a task.
    pub fn view(&self, task_arn: &str) -> Option<TaskView> {
        self.sh.views.read().ok()?.get(task_arn).cloned()
    }

    /// ARNs of the tasks the runner has actors or tombstones for.
    pub fn task_arns(&self) -> Vec<String> {
        self.sh
            .tasks
            .lock()
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// A task placed on this instance, or a new desired status for one.
    pub fn apply(&self, assignment: TaskAssignment) {
        let arn = assignment.task.task_arn.clone();
        let Ok(mut tasks) = self.sh.tasks.lock() else {
            return;
        };
        if let Some(h) = tasks.get(&arn) {
            // An actor that finished (cleaned up) ignores it: a task never starts twice.
            let _ = h.tx.send(Msg::Desired(Box::new(assignment)));
            return;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let join = tokio::spawn(task::run(self.sh.clone(), assignment, rx));
        tasks.insert(arn, Handle { tx, join });
    }

    /// The server's full list of this instance's tasks: start what is new, pass desired
    /// statuses on, stop and forget tasks it no longer lists, and stop engine containers of
    /// tasks nobody knows (orphans of an earlier run).
    pub async fn reconcile(&self, tasks: Vec<TaskAssignment>) {
        let listed: HashSet<String> = tasks.iter().map(|t| t.task.task_arn.clone()).collect();
        for t in tasks {
            self.apply(t);
        }
        for arn in self.task_arns() {
            if !listed.contains(&arn) {
                self.removed(&arn);
            }
        }
        // Orphans: containers of tasks neither listed nor known.
        let mut label = Filters::new();
        label.insert("label".into(), vec![spec::LABEL_TASK_ARN.into()]);
        let Ok(existing) = self.sh.engine.list_containers(true, &label).await else {
            return;
        };
        let known: HashSet<String> = self.task_arns().into_iter().collect();
        let cluster = self.sh.config.cluster.clone();
        let orphans: Vec<_> = existing
            .into_iter()
            .filter(|c| cluster.is_none() || c.labels.get(spec::LABEL_CLUSTER) == cluster.as_ref())
            .filter(|c| {
                c.labels
                    .get(spec::LABEL_TASK_ARN)
                    .is_some_and(|a| !listed.contains(a) && !known.contains(a))
            })
            .collect();
        if orphans.is_empty() {
            return;
        }
        let engine = self.sh.engine.clone();
        let wait = self.sh.config.task_cleanup_wait;
        tokio::spawn(async move {
            for c in &orphans {
                if c.state == "running" {
                    tracing::info!(id = %c.id, "stopping a container of a task the server does not list");
                    let _ = engine.stop_container(&c.id, None).await;
                }
            }
            tokio::time::sleep(wait).await;
            for c in &orphans {
                let _ = engine.remove_container(&c.id, true, false).await;
            }
        });
    }

    /// The server says the task is STOPPED (or gone): stop it if needed, clean up, forget.
    pub fn removed(&self, task_arn: &str) {
        let h = self
            .sh
            .tasks
            .lock()
            .ok()
            .and_then(|mut t| t.remove(task_arn));
        if let Some(h) = h {
            if h.tx.send(Msg::Forget).is_err() {
                // The actor has finished: its task is cleaned up already.
                if let Ok(mut v) = self.sh.views.write() {
                    v.remove(task_arn);
                }
            }
        }
        self.sh.reporter.forget(task_arn);
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        self.events.abort();
        if let Ok(tasks) = self.sh.tasks.lock() {
            for h in tasks.values() {
                h.join.abort();
            }
        }
    }
}

/// Routes engine events to the task actors; re-subscribes (and asks every actor to resync)
/// when the stream breaks.
async fn dispatch_events(
    sh: std::sync::Weak<Shared>,
    mut stream: berth_engine_client::client::JsonStream<Event>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        while let Some(item) = stream.next().await {
            let Ok(ev) = item else { break };
            let Some(sh) = sh.upgrade() else { return };
            route(&sh, ev);
        }
        // The stream ended (engine restart?): subscribe again, then resync everyone.
        loop {
            let Some(shared) = sh.upgrade() else { return };
            let mut filters = Filters::new();
            filters.insert("type".into(), vec!["container".into()]);
            match shared.engine.events(None, None, &filters).await {
                Ok(s) => {
                    stream = s;
                    backoff = Duration::from_millis(100);
                    if let Ok(tasks) = shared.tasks.lock() {
                        for h in tasks.values() {
                            let _ = h.tx.send(Msg::Resync);
                        }
                    }
                    break;
                }
                Err(e) => {
                    tracing::warn!("engine events unavailable, retrying in {backoff:?}: {e}");
                    drop(shared);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

fn route(sh: &Shared, ev: Event) {
    let arn = sh
        .by_container
        .lock()
        .ok()
        .and_then(|m| m.get(&ev.actor.id).cloned())
        .or_else(|| ev.actor.attributes.get(spec::LABEL_TASK_ARN).cloned());
    let Some(arn) = arn else { return };
    if let Ok(tasks) = sh.tasks.lock() {
        if let Some(h) = tasks.get(&arn) {
            let _ = h.tx.send(Msg::Engine(ev));
        }
    }
}
