//! The actor of one ECS task: adopt what the engine already runs for it, create the missing
//! containers in parallel, start them as their dependencies allow, follow their exits and
//! health through engine events, stop the task (reverse dependency order, each container's
//! stopTimeout) when an essential container exits or the server wants it stopped, report each
//! change, and remove the containers after the cleanup wait.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use berth_api::shapes::agent::TaskAssignment;
use berth_api::shapes::taskdefs::ContainerDefinition;
use berth_api::shapes::tasks::{NetworkBinding, SubmitTaskStateChangeRequest};
use berth_engine_client::client::Filters;
use berth_engine_client::{ContainerCreate, ContainerInspect, Event};
use chrono::Utc;
use futures_util::future::join_all;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::deps::{self, Condition};
use super::engine_auth::EngineAuth;
use super::spec::{self, NetMode, VolumeSource};
use super::state::{epoch, ContainerStatus, ContainerView, Eni, TaskStatus, TaskView};
use super::{images, secrets};
use super::{Msg, Shared};

const STOP_CODE_FAILED: &str = "TaskFailedToStart";
const STOP_CODE_ESSENTIAL: &str = "EssentialContainerExited";
const ESSENTIAL_EXITED: &str = "Essential container in task exited";

struct Run {
    sh: Arc<Shared>,
    view: TaskView,
    defs: Vec<ContainerDefinition>,
    deps: Vec<Vec<(usize, Condition)>>,
    volumes: BTreeMap<String, VolumeSource>,
    /// When each container began waiting for its dependencies.
    waiting_since: Vec<Option<Instant>>,
    /// Why the task must stop (set once).
    stop_cause: Option<(Option<&'static str>, String)>,
    stopping: bool,
    cleanup_at: Option<Instant>,
    forgotten: bool,
    last_report: Option<serde_json::Value>,
    /// When the actor began (timing logs).
    born: Instant,
    /// When to re-read the containers anyway (the engine drops events for slow subscribers).
    next_resync: Instant,
}

/// How often a live task's containers are re-read as a safety net for missed events.
const RESYNC_EVERY: Duration = Duration::from_secs(30);

pub(super) async fn run(
    sh: Arc<Shared>,
    assignment: TaskAssignment,
    mut rx: mpsc::UnboundedReceiver<Msg>,
) {
    let mut r = Run::new(sh, assignment);
    r.adopt().await;
    if !r.view.desired_stopped && r.stop_cause.is_none() {
        r.create().await;
    }
    let mut closed = false;
    loop {
        // Messages that queued up meanwhile (a StopTask during creation) come first.
        while let Ok(m) = rx.try_recv() {
            r.handle(m).await;
        }
        if r.view.status != TaskStatus::Stopped && r.next_resync <= Instant::now() {
            r.resync().await;
            r.next_resync = Instant::now() + RESYNC_EVERY;
        }
        r.step().await;
        if r.view.status == TaskStatus::Stopped
            && r.cleanup_at.is_some_and(|t| t <= Instant::now())
            && !r.forgotten
            && !r.sh.reporter.stopped_acknowledged(r.view.arn())
        {
            // Keep the containers until the server knows the task stopped: an agent restarted
            // meanwhile must find them (and report them) rather than start the task again.
            r.cleanup_at = Some(Instant::now() + Duration::from_secs(5));
        }
        if r.view.status == TaskStatus::Stopped && r.cleanup_at.is_some_and(|t| t <= Instant::now())
        {
            r.cleanup().await;
            if r.forgotten {
                r.drop_view();
                return;
            }
            // The view stays (a tombstone) until the server forgets the task.
            r.cleanup_at = None;
        }
        let deadline = r
            .next_deadline()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            msg = rx.recv(), if !closed => match msg {
                // The runner forgot the task (its handle is gone): no more messages, but
                // the stop and the cleanup still run to the end.
                None => {
                    closed = true;
                    r.forgotten = true;
                    r.view.desired_stopped = true;
                }
                Some(m) => {
                    r.handle(m).await;
                    // Take every queued message before acting.
                    while let Ok(m) = rx.try_recv() {
                        r.handle(m).await;
                    }
                }
            },
            _ = tokio::time::sleep_until(deadline) => {}
        }
        if r.forgotten && r.view.status == TaskStatus::Stopped && r.cleanup_at.is_none() {
            r.drop_view();
            return;
        }
    }
}

fn random_token() -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..16)
        .map(|_| format!("{:02x}", rng.gen::<u8>()))
        .collect()
}

impl Run {
    fn new(sh: Arc<Shared>, assignment: TaskAssignment) -> Run {
        let defs = assignment.task_definition.container_definitions.clone();
        let net = spec::network_mode(&assignment.task_definition).unwrap_or(NetMode::Bridge);
        let desired_stopped = assignment.task.desired_status == "STOPPED";
        let arn = assignment.task.task_arn.clone();
        let family = assignment.task_definition.family.clone();
        let revision = assignment.task_definition.revision;
        let containers = defs
            .iter()
            .map(|d| {
                let name = d.name.clone().unwrap_or_default();
                let ov = spec::container_override(&assignment, &name);
                ContainerView {
                    engine_name: spec::engine_name(&family, revision, &name, &arn),
                    essential: spec::is_essential(d),
                    image: d.image.clone().unwrap_or_default(),
                    image_id: None,
                    runtime_id: None,
                    status: ContainerStatus::Pending,
                    exit_code: None,
                    reason: None,
                    network_bindings: Vec::new(),
                    health: d.health_check.as_ref().map(|_| "UNKNOWN".to_string()),
                    created_at: None,
                    started_at: None,
                    finished_at: None,
                    token: random_token(),
                    labels: BTreeMap::new(),
                    cpu: ov.and_then(|o| o.cpu).or(d.cpu),
                    memory: ov.and_then(|o| o.memory).or(d.memory),
                    name,
                }
            })
            .collect::<Vec<_>>();
        let n = containers.len();
        Run {
            sh,
            view: TaskView {
                assignment: Arc::new(assignment),
                status: TaskStatus::Pending,
                desired_stopped,
                containers,
                stop_code: None,
                stopped_reason: None,
                pull_started_at: None,
                pull_stopped_at: None,
                execution_stopped_at: None,
                net,
                eni: None,
                pause_id: None,
            },
            defs,
            deps: vec![Vec::new(); n],
            volumes: BTreeMap::new(),
            waiting_since: vec![None; n],
            stop_cause: None,
            stopping: false,
            cleanup_at: None,
            forgotten: false,
            last_report: None,
            born: Instant::now(),
            next_resync: Instant::now() + RESYNC_EVERY,
        }
    }

    fn arn(&self) -> String {
        self.view.arn().to_string()
    }

    /// Publishes the view (metadata) and, when it changed, a report.
    fn publish(&mut self) {
        if let Ok(mut v) = self.sh.views.write() {
            v.insert(self.arn(), self.view.clone());
        }
        let report: SubmitTaskStateChangeRequest = self.view.report();
        let value = serde_json::to_value(&report).ok();
        if value.is_some() && value == self.last_report {
            return;
        }
        self.last_report = value;
        self.sh.reporter.publish(report);
    }

    fn drop_view(&self) {
        if let Ok(mut v) = self.sh.views.write() {
            v.remove(self.view.arn());
        }
    }

    fn fail(&mut self, code: Option<&'static str>, reason: String) {
        if self.stop_cause.is_none() {
            tracing::info!(task = %self.arn(), "stopping: {reason}");
            self.stop_cause = Some((code, reason));
        }
    }

    // -----------------------------------------------------------------------------------------
    // Adoption
    // -----------------------------------------------------------------------------------------

    /// Finds the task's containers already in the engine (an earlier agent's) and takes them
    /// over as they are.
    async fn adopt(&mut self) {
        if !self.sh.preexisting(self.view.arn()) {
            return;
        }
        let mut f = Filters::new();
        f.insert(
            "label".into(),
            vec![format!("{}={}", spec::LABEL_TASK_ARN, self.arn())],
        );
        let Ok(found) = self.sh.engine.list_containers(true, &f).await else {
            return;
        };
        let inspected = join_all(
            found
                .iter()
                .map(|c| self.sh.engine.inspect_container(&c.id)),
        )
        .await;
        for ins in inspected.into_iter().flatten() {
            let name = ins
                .config
                .labels
                .get(spec::LABEL_CONTAINER_NAME)
                .cloned()
                .unwrap_or_default();
            self.sh.track(&ins.id, &self.arn());
            if name == spec::PAUSE_CONTAINER {
                self.view.pause_id = Some(ins.id.clone());
                self.view.eni = eni_of(&ins, &self.sh.config.task_network);
                continue;
            }
            let Some(i) = self.view.containers.iter().position(|c| c.name == name) else {
                continue;
            };
            tracing::info!(task = %self.arn(), container = %name, id = %ins.id, "adopting a running task's container");
            let c = &mut self.view.containers[i];
            c.runtime_id = Some(ins.id.clone());
            c.image_id = Some(ins.image.clone()).filter(|s| !s.is_empty());
            if let Some(t) = ins.config.labels.get(spec::LABEL_METADATA_TOKEN) {
                c.token = t.clone();
            }
            c.labels = ins.config.labels.clone();
            apply_inspect(c, &ins);
            if self.view.net == NetMode::Bridge {
                c.network_bindings = bindings_of(&ins);
            }
        }
        // Dependencies are needed to start the rest and to stop in order.
        if let Ok(d) = deps::dependencies(&self.defs) {
            self.deps = d;
        }
        let now = Instant::now();
        for (i, c) in self.view.containers.iter().enumerate() {
            if c.status == ContainerStatus::Created {
                self.waiting_since[i] = Some(now);
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Creation
    // -----------------------------------------------------------------------------------------

    /// Validates the definition, checks images, sets up the network and volumes, and creates
    /// every container not created yet, in parallel.
    async fn create(&mut self) {
        let arn = self.arn();
        let a = self.view.assignment.clone();
        let missing: Vec<usize> = (0..self.view.containers.len())
            .filter(|&i| self.view.containers[i].runtime_id.is_none())
            .collect();
        if missing.is_empty() {
            return;
        }
        self.publish();
        let prep = spec::check_task_definition(&a.task_definition)
            .and_then(|_| spec::network_mode(&a.task_definition))
            .and_then(|_| deps::dependencies(&self.defs))
            .and_then(|d| {
                self.deps = d;
                spec::task_volumes(&a.task_definition, &arn)
            });
        match prep {
            Ok(v) => self.volumes = v,
            Err(e) => return self.fail(Some(STOP_CODE_FAILED), e),
        }
        let net = self.view.net;

        // Metadata endpoint address for this network mode.
        let endpoint = match self.metadata_endpoint(net).await {
            Ok(e) => e,
            Err(e) => {
                return self.fail(
                    Some(STOP_CODE_FAILED),
                    format!("cannot serve the task metadata endpoint: {e}"),
                )
            }
        };

        // Secrets: environment values and image logins, read before anything is created.
        let source = self.sh.config.secrets.clone();
        let mut secret_env: HashMap<usize, Vec<(String, String)>> = HashMap::new();
        let mut task_logins: HashMap<usize, (String, String)> = HashMap::new();
        for &i in &missing {
            let def = &self.defs[i];
            let read = async {
                let env = secrets::environment(source.as_deref(), def).await?;
                let login = secrets::registry_login(source.as_deref(), def).await?;
                Ok::<_, String>((env, login))
            };
            match read.await {
                Ok((env, login)) => {
                    secret_env.insert(i, env);
                    if let Some(login) = login {
                        task_logins.insert(i, login);
                    }
                }
                Err(e) => return self.fail(Some(STOP_CODE_FAILED), e),
            }
        }

        // Container specs (pure; errors name the field).
        let mut specs: Vec<(usize, ContainerCreate)> = Vec::new();
        for &i in &missing {
            let c = &self.view.containers[i];
            let mut extra_env = secret_env.remove(&i).unwrap_or_default();
            let mut extra_labels = BTreeMap::new();
            if let Some(addr) = endpoint {
                extra_env.push((
                    "ECS_CONTAINER_METADATA_URI_V4".to_string(),
                    format!("http://{addr}/v4/{}", c.token),
                ));
                extra_env.push((
                    "ECS_CONTAINER_METADATA_URI".to_string(),
                    format!("http://{addr}/v3/{}", c.token),
                ));
                extra_labels.insert(spec::LABEL_METADATA_TOKEN.to_string(), c.token.clone());
            }
            let ctx = spec::SpecContext {
                assignment: &a,
                net,
                volumes: &self.volumes,
                engine_network: match net {
                    NetMode::Awsvpc => "container:pending".into(),
                    other => other.as_str().into(),
                },
                extra_env,
                extra_labels,
            };
            match spec::container_create(&self.defs[i], &ctx) {
                Ok(s) => specs.push((i, s)),
                Err(e) => return self.fail(Some(STOP_CODE_FAILED), e),
            }
        }

        // Images: cached or pulled, as the runner's pull behavior says.
        self.view.pull_started_at = Some(epoch(Utc::now()));
        let mut images: Vec<String> = specs.iter().map(|(_, s)| s.image.clone()).collect();
        images.sort();
        images.dedup();
        let (engine, behavior) = (&self.sh.engine, self.sh.config.image_pull);
        let logins = self.sh.config.engine_auth.as_deref();
        let mut image_logins: HashMap<&str, String> = HashMap::new();
        for (i, s) in &specs {
            if let Some((user, password)) = task_logins.get(i) {
                if let Some(h) = EngineAuth::header_for_login(&s.image, user, password) {
                    image_logins.insert(&s.image, h);
                }
            }
        }
        let found = join_all(images.iter().map(|i| {
            let task_login = image_logins.get(i.as_str()).map(String::as_str);
            images::ensure(engine, behavior, logins, task_login, &self.sh.pulls, i)
        }))
        .await;
        self.view.pull_stopped_at = Some(epoch(Utc::now()));
        tracing::debug!(task = %arn, elapsed = ?self.born.elapsed(), "images ready");
        let mut ids = HashMap::new();
        for (img, res) in images.iter().zip(found) {
            match res {
                Ok(id) => {
                    ids.insert(img.clone(), id);
                }
                Err(reason) => {
                    for (i, s) in &specs {
                        if &s.image == img {
                            self.view.containers[*i].reason = Some(reason.clone());
                        }
                    }
                    return self.fail(Some(STOP_CODE_FAILED), reason);
                }
            }
        }
        for (i, s) in &specs {
            self.view.containers[*i].image_id = ids.get(&s.image).cloned();
        }

        // Network: the pause container of an awsvpc task.
        if net == NetMode::Awsvpc {
            match self.ensure_pause().await {
                Ok(pause_id) => {
                    for (_, s) in specs.iter_mut() {
                        s.host_config.network_mode = format!("container:{pause_id}");
                    }
                }
                Err(e) => {
                    return self.fail(
                        Some(STOP_CODE_FAILED),
                        format!("cannot set up the task's network namespace: {e}"),
                    )
                }
            }
        }
        // Task-scoped volumes, made before the containers that share them.
        for v in self.volumes.values() {
            if let VolumeSource::TaskScoped(name) = v {
                let mut labels = BTreeMap::new();
                labels.insert(spec::LABEL_TASK_ARN.to_string(), arn.clone());
                let req = berth_engine_client::VolumeCreate {
                    name: name.clone(),
                    labels,
                };
                if let Err(e) = self.sh.engine.create_volume(&req).await {
                    return self.fail(
                        Some(STOP_CODE_FAILED),
                        format!("cannot create task volume {name}: {e}"),
                    );
                }
            }
        }

        let engine = self.sh.engine.clone();
        let results = join_all(specs.iter().map(|(i, s)| {
            let name = self.view.containers[*i].engine_name.clone();
            let engine = engine.clone();
            async move {
                match engine.create_container(s, Some(&name)).await {
                    Ok(c) => Ok(c.id),
                    // Created by an earlier run (409): take that one.
                    Err(e) if e.status() == Some(409) => engine
                        .inspect_container(&name)
                        .await
                        .map(|i| i.id)
                        .map_err(|_| e),
                    Err(e) => Err(e),
                }
            }
        }))
        .await;
        let now = Instant::now();
        let mut failure = None;
        for ((i, s), res) in specs.iter().zip(results) {
            let c = &mut self.view.containers[*i];
            match res {
                Ok(id) => {
                    self.sh.track(&id, &arn);
                    c.runtime_id = Some(id);
                    c.status = ContainerStatus::Created;
                    c.created_at = Some(Utc::now());
                    c.labels = s.labels.clone();
                    c.network_bindings = initial_bindings(net, s);
                    self.waiting_since[*i] = Some(now);
                }
                Err(e) => {
                    let reason = format!("CannotCreateContainerError: {e}");
                    c.reason = Some(reason.clone());
                    failure.get_or_insert(reason);
                }
            }
        }
        if let Some(reason) = failure {
            return self.fail(Some(STOP_CODE_FAILED), reason);
        }
        tracing::debug!(task = %arn, elapsed = ?self.born.elapsed(), "containers created");
        self.view.status = TaskStatus::Activating;
        self.publish();
    }

    /// Where this task's containers reach the metadata endpoint (None: no endpoint).
    async fn metadata_endpoint(
        &self,
        net: NetMode,
    ) -> Result<Option<std::net::SocketAddr>, crate::AgentError> {
        let Some(md) = &self.sh.metadata else {
            return Ok(None);
        };
        let ip = match net {
            NetMode::None => return Ok(None),
            NetMode::Host => std::net::Ipv4Addr::LOCALHOST,
            NetMode::Bridge => self.sh.bridge_gateway().await?,
            NetMode::Awsvpc => self.sh.task_network().await?.0,
        };
        Ok(Some(md.endpoint(ip).await?))
    }

    /// Creates and starts the task's pause container (unless adopted); returns its id.
    async fn ensure_pause(&mut self) -> Result<String, crate::AgentError> {
        if let Some(id) = &self.view.pause_id {
            return Ok(id.clone());
        }
        let (_, subnet) = self.sh.task_network().await?;
        self.sh.ensure_pause_image().await?;
        let a = self.view.assignment.clone();
        let name = spec::engine_name(
            &a.task_definition.family,
            a.task_definition.revision,
            spec::PAUSE_CONTAINER,
            &a.task.task_arn,
        );
        let req = ContainerCreate {
            image: crate::pause::PAUSE_IMAGE.into(),
            cmd: Some(vec!["/pause".into()]),
            labels: spec::agent_labels(&a, spec::PAUSE_CONTAINER),
            stop_timeout: Some(5),
            host_config: berth_engine_client::HostConfig {
                network_mode: self.sh.config.task_network.clone(),
                cpu_shares: spec::MIN_CPU_SHARES,
                ..Default::default()
            },
            ..Default::default()
        };
        let id = match self.sh.engine.create_container(&req, Some(&name)).await {
            Ok(c) => c.id,
            Err(e) if e.status() == Some(409) => self.sh.engine.inspect_container(&name).await?.id,
            Err(e) => return Err(e.into()),
        };
        self.sh.track(&id, &a.task.task_arn);
        self.view.pause_id = Some(id.clone());
        self.sh.engine.start_container(&id).await?;
        let ins = self.sh.engine.inspect_container(&id).await?;
        let mut eni = eni_of(&ins, &self.sh.config.task_network).unwrap_or_default();
        eni.subnet = subnet;
        self.view.eni = Some(eni);
        Ok(id)
    }

    // -----------------------------------------------------------------------------------------
    // The state machine
    // -----------------------------------------------------------------------------------------

    /// Acts on the current state: start what may start, stop when needed, move the lifecycle.
    async fn step(&mut self) {
        if self.view.status == TaskStatus::Stopped {
            return;
        }
        if !self.stopping {
            self.check_exits();
            if self.stop_cause.is_none() && !self.view.desired_stopped {
                self.start_ready().await;
                self.check_exits();
            }
            if self.stop_cause.is_some() || self.view.desired_stopped {
                self.stop_all().await;
            }
        }
        let all_stopped = self
            .view
            .containers
            .iter()
            .all(|c| c.status == ContainerStatus::Stopped);
        if all_stopped {
            self.finish().await;
            return;
        }
        let essentials_running = self
            .view
            .containers
            .iter()
            .filter(|c| c.essential)
            .all(|c| c.status == ContainerStatus::Running);
        if !self.stopping && essentials_running && self.view.status < TaskStatus::Running {
            self.view.status = TaskStatus::Running;
            tracing::debug!(task = %self.view.arn(), elapsed = ?self.born.elapsed(), "running");
        }
        self.publish();
    }

    /// An exited essential container (or pause container) stops the task.
    fn check_exits(&mut self) {
        if self.stop_cause.is_some() {
            return;
        }
        if let Some(c) = self
            .view
            .containers
            .iter()
            .find(|c| c.essential && c.status == ContainerStatus::Stopped)
        {
            let code = if c.started_at.is_some() {
                STOP_CODE_ESSENTIAL
            } else {
                STOP_CODE_FAILED
            };
            let reason = if code == STOP_CODE_ESSENTIAL {
                ESSENTIAL_EXITED.to_string()
            } else {
                c.reason
                    .clone()
                    .unwrap_or_else(|| format!("essential container {} did not start", c.name))
            };
            self.fail(Some(code), reason);
        }
    }

    /// Starts, in parallel, every created container whose dependencies are met; a container
    /// whose dependencies can no longer be met stops without running.
    async fn start_ready(&mut self) {
        loop {
            let mut ready = Vec::new();
            for i in 0..self.view.containers.len() {
                if self.view.containers[i].status != ContainerStatus::Created {
                    continue;
                }
                match self.dependency_state(i) {
                    DepState::Ready => ready.push(i),
                    DepState::Wait => {}
                    DepState::Never(reason) => {
                        let c = &mut self.view.containers[i];
                        c.status = ContainerStatus::Stopped;
                        c.reason = Some(format!("DependencyConditionNotMet: {reason}"));
                        if c.essential {
                            let r = format!("container {}: {reason}", c.name);
                            self.fail(Some(STOP_CODE_FAILED), r);
                            return;
                        }
                    }
                }
            }
            if ready.is_empty() {
                return;
            }
            let engine = self.sh.engine.clone();
            let results = join_all(ready.iter().map(|&i| {
                let id = self.view.containers[i]
                    .runtime_id
                    .clone()
                    .unwrap_or_default();
                let engine = engine.clone();
                async move { engine.start_container(&id).await }
            }))
            .await;
            let mut need_ports = Vec::new();
            for (&i, res) in ready.iter().zip(results) {
                let c = &mut self.view.containers[i];
                match res {
                    Ok(_) => {
                        // A "die" event may have been handled already (a very short command).
                        if c.status == ContainerStatus::Created {
                            c.status = ContainerStatus::Running;
                        }
                        c.started_at.get_or_insert_with(Utc::now);
                        self.waiting_since[i] = None;
                        if c.network_bindings.iter().any(|b| b.host_port == Some(0)) {
                            need_ports.push(i);
                        }
                    }
                    Err(e) => {
                        c.status = ContainerStatus::Stopped;
                        c.reason = Some(format!("CannotStartContainerError: {e}"));
                    }
                }
            }
            // Engine-chosen host ports: read the actual bindings.
            for i in need_ports {
                if let Some(id) = self.view.containers[i].runtime_id.clone() {
                    if let Ok(ins) = self.sh.engine.inspect_container(&id).await {
                        let b = bindings_of(&ins);
                        if !b.is_empty() {
                            self.view.containers[i].network_bindings = b;
                        }
                    }
                }
            }
            // Starting may satisfy START conditions of others: go round again.
        }
    }

    fn dependency_state(&self, i: usize) -> DepState {
        let mut state = DepState::Ready;
        for &(d, cond) in &self.deps[i] {
            let dep = &self.view.containers[d];
            let stopped = dep.status == ContainerStatus::Stopped;
            let s = match cond {
                Condition::Start => {
                    if dep.started_at.is_some() {
                        DepState::Ready
                    } else if stopped {
                        DepState::Never(format!("{} never started", dep.name))
                    } else {
                        DepState::Wait
                    }
                }
                Condition::Complete => {
                    if stopped && dep.started_at.is_some() {
                        DepState::Ready
                    } else if stopped {
                        DepState::Never(format!("{} never started", dep.name))
                    } else {
                        DepState::Wait
                    }
                }
                Condition::Success => match (stopped, dep.exit_code) {
                    (true, Some(0)) => DepState::Ready,
                    (true, code) => DepState::Never(format!(
                        "{} exited with code {} (SUCCESS needs 0)",
                        dep.name,
                        code.map(|c| c.to_string())
                            .unwrap_or_else(|| "unknown".into())
                    )),
                    _ => DepState::Wait,
                },
                Condition::Healthy => {
                    if dep.health.as_deref() == Some("HEALTHY") {
                        DepState::Ready
                    } else if stopped {
                        DepState::Never(format!("{} stopped before it was healthy", dep.name))
                    } else {
                        DepState::Wait
                    }
                }
            };
            match s {
                DepState::Never(_) => return s,
                DepState::Wait => state = DepState::Wait,
                DepState::Ready => {}
            }
        }
        if matches!(state, DepState::Wait) {
            if let (Some(t), Some(since)) = (self.start_timeout(i), self.waiting_since[i]) {
                if since.elapsed() >= t {
                    return DepState::Never(format!(
                        "dependencies not met within startTimeout ({}s)",
                        t.as_secs()
                    ));
                }
            }
        }
        state
    }

    fn start_timeout(&self, i: usize) -> Option<Duration> {
        self.defs[i]
            .start_timeout
            .filter(|t| *t > 0)
            .map(|t| Duration::from_secs(t as u64))
    }

    fn next_deadline(&self) -> Option<Instant> {
        let mut next = self.cleanup_at;
        if self.view.status != TaskStatus::Stopped {
            next = Some(next.map_or(self.next_resync, |n| n.min(self.next_resync)));
        }
        for i in 0..self.view.containers.len() {
            if self.view.containers[i].status != ContainerStatus::Created {
                continue;
            }
            if let (Some(t), Some(since)) = (self.start_timeout(i), self.waiting_since[i]) {
                let d = since + t;
                next = Some(next.map_or(d, |n| n.min(d)));
            }
        }
        next
    }

    /// Stops every container, dependents first, each with its stopTimeout.
    async fn stop_all(&mut self) {
        self.stopping = true;
        if let Some((code, reason)) = self.stop_cause.clone() {
            self.view.stop_code = code.map(str::to_string);
            self.view.stopped_reason = Some(reason);
        }
        // ECS's order: DEACTIVATING (nothing to detach here), then STOPPING.
        if self.view.status < TaskStatus::Deactivating {
            self.view.status = TaskStatus::Deactivating;
            self.publish();
        }
        self.view.status = TaskStatus::Stopping;
        self.publish();
        let order = if self.deps.len() == self.view.containers.len() {
            deps::stop_order(&self.deps)
        } else {
            vec![(0..self.view.containers.len()).collect()]
        };
        let engine = self.sh.engine.clone();
        for level in order {
            let futs = level.iter().filter_map(|&i| {
                let c = &self.view.containers[i];
                if c.status != ContainerStatus::Running {
                    return None;
                }
                let id = c.runtime_id.clone()?;
                let timeout = self.defs[i]
                    .stop_timeout
                    .filter(|t| *t >= 0)
                    .unwrap_or(spec::DEFAULT_STOP_TIMEOUT as i64);
                let engine = engine.clone();
                Some(async move {
                    if let Err(e) = engine.stop_container(&id, Some(timeout)).await {
                        if e.status() != Some(304) && !e.is_not_found() {
                            tracing::warn!(id, "stopping a task container failed: {e}");
                        }
                    }
                })
            });
            join_all(futs).await;
        }
        // Read the exit codes.
        let ids: Vec<(usize, String)> = self
            .view
            .containers
            .iter()
            .enumerate()
            .filter(|(_, c)| c.status != ContainerStatus::Stopped)
            .filter_map(|(i, c)| c.runtime_id.clone().map(|id| (i, id)))
            .collect();
        let inspected = join_all(ids.iter().map(|(_, id)| engine.inspect_container(id))).await;
        for ((i, _), ins) in ids.iter().zip(inspected) {
            let c = &mut self.view.containers[*i];
            match ins {
                Ok(ins) => apply_inspect(c, &ins),
                Err(_) => c.status = ContainerStatus::Stopped,
            }
        }
        for c in &mut self.view.containers {
            if matches!(
                c.status,
                ContainerStatus::Pending | ContainerStatus::Created
            ) {
                c.status = ContainerStatus::Stopped;
            }
        }
    }

    /// Every container has stopped: release the network and report STOPPED.
    async fn finish(&mut self) {
        if !self.stopping {
            // Everything exited on its own (no essential container among them).
            if self.stop_cause.is_none() {
                self.stop_cause = Some((
                    Some(STOP_CODE_ESSENTIAL),
                    "All containers in task exited".to_string(),
                ));
            }
            self.stopping = true;
        }
        if let Some((code, reason)) = self.stop_cause.clone() {
            self.view.stop_code = code.map(str::to_string);
            self.view.stopped_reason = Some(reason);
        }
        if let Some(pause) = self.view.pause_id.clone() {
            self.view.status = TaskStatus::Deprovisioning;
            self.publish();
            let _ = self.sh.engine.stop_container(&pause, Some(2)).await;
        }
        self.view.status = TaskStatus::Stopped;
        self.view.execution_stopped_at = Some(epoch(Utc::now()));
        self.cleanup_at = Some(Instant::now() + self.sh.config.task_cleanup_wait);
        self.publish();
    }

    /// Removes the task's containers and task-scoped volumes.
    async fn cleanup(&mut self) {
        let engine = &self.sh.engine;
        let mut ids: Vec<String> = self
            .view
            .containers
            .iter()
            .filter_map(|c| c.runtime_id.clone())
            .collect();
        ids.extend(self.view.pause_id.clone());
        for id in &ids {
            if let Err(e) = engine.remove_container(id, true, false).await {
                if !e.is_not_found() {
                    tracing::warn!(id, "removing a stopped task's container failed: {e}");
                }
            }
            self.sh.untrack(id);
        }
        for v in self.volumes.values() {
            if let VolumeSource::TaskScoped(name) = v {
                let _ = engine.remove_volume(name, true).await;
            }
        }
        tracing::debug!(task = %self.arn(), "cleaned up");
    }

    // -----------------------------------------------------------------------------------------
    // Messages
    // -----------------------------------------------------------------------------------------

    async fn handle(&mut self, m: Msg) {
        match m {
            Msg::Desired(a) => {
                if a.task.desired_status == "STOPPED" {
                    self.view.desired_stopped = true;
                }
                let mut merged = (*a).clone();
                // Keep the definition the task started with.
                merged.task_definition = self.view.assignment.task_definition.clone();
                self.view.assignment = Arc::new(merged);
            }
            Msg::Engine(ev) => self.on_event(ev),
            Msg::Resync => self.resync().await,
            Msg::Forget => {
                // Stop it if it still runs; clean up at the usual time, then end.
                self.forgotten = true;
                self.view.desired_stopped = true;
            }
        }
    }

    fn on_event(&mut self, ev: Event) {
        let id = ev.actor.id.as_str();
        if self.view.pause_id.as_deref() == Some(id) {
            if ev.action == "die" && self.view.status < TaskStatus::Deprovisioning {
                self.fail(
                    Some(STOP_CODE_ESSENTIAL),
                    "the task's network namespace holder (pause container) exited".into(),
                );
            }
            return;
        }
        let Some(c) = self
            .view
            .containers
            .iter_mut()
            .find(|c| c.runtime_id.as_deref() == Some(id))
        else {
            return;
        };
        match ev.action.as_str() {
            "start" if c.status != ContainerStatus::Stopped => {
                c.status = ContainerStatus::Running;
                c.started_at.get_or_insert_with(Utc::now);
            }
            "die" => {
                c.status = ContainerStatus::Stopped;
                c.started_at.get_or_insert_with(Utc::now);
                c.exit_code = ev
                    .actor
                    .attributes
                    .get("exitCode")
                    .and_then(|x| x.parse().ok());
                c.finished_at = Some(Utc::now());
            }
            "oom" => {
                c.reason = Some("OutOfMemoryError: Container killed due to memory usage".into());
            }
            "destroy" if c.status != ContainerStatus::Stopped => {
                c.status = ContainerStatus::Stopped;
                c.reason
                    .get_or_insert_with(|| "the container was removed".into());
            }
            a if a.starts_with("health_status") && c.health.is_some() => {
                let s = a.rsplit(' ').next().unwrap_or_default();
                c.health = Some(
                    match s {
                        "healthy" => "HEALTHY",
                        "unhealthy" => "UNHEALTHY",
                        _ => "UNKNOWN",
                    }
                    .into(),
                );
            }
            _ => {}
        }
    }

    /// Re-reads every container (events may have been missed).
    async fn resync(&mut self) {
        let ids: Vec<(usize, String)> = self
            .view
            .containers
            .iter()
            .enumerate()
            .filter(|(_, c)| c.status != ContainerStatus::Stopped)
            .filter_map(|(i, c)| c.runtime_id.clone().map(|id| (i, id)))
            .collect();
        for (i, id) in ids {
            match self.sh.engine.inspect_container(&id).await {
                Ok(ins) => apply_inspect(&mut self.view.containers[i], &ins),
                Err(e) if e.is_not_found() => {
                    let c = &mut self.view.containers[i];
                    c.status = ContainerStatus::Stopped;
                    c.reason
                        .get_or_insert_with(|| "the container was removed".into());
                }
                Err(_) => {}
            }
        }
        if let Some(p) = self.view.pause_id.clone() {
            if let Ok(ins) = self.sh.engine.inspect_container(&p).await {
                if !ins.state.running && self.view.status < TaskStatus::Deprovisioning {
                    self.fail(
                        Some(STOP_CODE_ESSENTIAL),
                        "the task's network namespace holder (pause container) exited".into(),
                    );
                }
            }
        }
    }
}

enum DepState {
    Ready,
    Wait,
    Never(String),
}

/// Takes status, exit code, times and health from an inspect.
fn apply_inspect(c: &mut ContainerView, ins: &ContainerInspect) {
    let parse = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.with_timezone(&Utc))
            .filter(|t| t.timestamp() > 0)
    };
    c.created_at = c.created_at.or_else(|| parse(&ins.created));
    let st = &ins.state;
    if st.running {
        c.status = ContainerStatus::Running;
        c.started_at = c
            .started_at
            .or_else(|| parse(&st.started_at))
            .or(Some(Utc::now()));
    } else if st.status == "created" {
        c.status = ContainerStatus::Created;
    } else {
        c.status = ContainerStatus::Stopped;
        c.exit_code = Some(st.exit_code);
        c.started_at = c.started_at.or_else(|| parse(&st.started_at));
        c.finished_at = c.finished_at.or_else(|| parse(&st.finished_at));
        if st.oom_killed {
            c.reason = Some("OutOfMemoryError: Container killed due to memory usage".into());
        }
    }
    if c.health.is_some() {
        if let Some(h) = &st.health {
            c.health = Some(
                match h.status.as_str() {
                    "healthy" => "HEALTHY",
                    "unhealthy" => "UNHEALTHY",
                    _ => "UNKNOWN",
                }
                .into(),
            );
        }
    }
}

/// The bindings known before start: the reserved host ports (0 = the engine picks; read after
/// start). Host mode: the container's ports are the host's.
fn initial_bindings(net: NetMode, s: &ContainerCreate) -> Vec<NetworkBinding> {
    match net {
        NetMode::Bridge => s
            .host_config
            .port_bindings
            .iter()
            .flat_map(|(key, bs)| {
                let (port, proto) = split_port(key);
                bs.iter().map(move |b| NetworkBinding {
                    bind_ip: Some("0.0.0.0".into()),
                    container_port: Some(port),
                    host_port: Some(b.host_port.parse().unwrap_or(0)),
                    protocol: Some(proto.clone()),
                    ..Default::default()
                })
            })
            .collect(),
        NetMode::Host => s
            .exposed_ports
            .keys()
            .map(|key| {
                let (port, proto) = split_port(key);
                NetworkBinding {
                    bind_ip: Some("0.0.0.0".into()),
                    container_port: Some(port),
                    host_port: Some(port),
                    protocol: Some(proto),
                    ..Default::default()
                }
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn split_port(key: &str) -> (i64, String) {
    let (p, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    (p.parse().unwrap_or(0), proto.to_string())
}

/// The actual bindings of a running bridge container.
fn bindings_of(ins: &ContainerInspect) -> Vec<NetworkBinding> {
    ins.network_settings
        .ports
        .iter()
        .flat_map(|(key, bs)| {
            let (port, proto) = split_port(key);
            bs.iter().map(move |b| NetworkBinding {
                bind_ip: Some(if b.host_ip.is_empty() || b.host_ip == "::" {
                    "0.0.0.0".into()
                } else {
                    b.host_ip.clone()
                }),
                container_port: Some(port),
                host_port: Some(b.host_port.parse().unwrap_or(0)),
                protocol: Some(proto.clone()),
                ..Default::default()
            })
        })
        .collect()
}

/// The ENI-like view of a pause container's endpoint on the task network.
fn eni_of(ins: &ContainerInspect, network: &str) -> Option<Eni> {
    let ep = ins
        .network_settings
        .networks
        .get(network)
        .or_else(|| ins.network_settings.networks.values().next())?;
    Some(Eni {
        attachment_id: ins.id.get(..32).unwrap_or(&ins.id).to_string(),
        ip: ep.ip_address.clone(),
        prefix_len: ep.ip_prefix_len,
        mac: ep.mac_address.clone(),
        gateway: ep.gateway.clone(),
        subnet: String::new(),
    })
}
