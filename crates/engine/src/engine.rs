//! The engine core: the table of containers and their lifecycle (create, start, stop, kill,
//! remove, wait), exit handling with restart policies, and live restore of containers whose
//! monitors outlived an earlier engine process.

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_engine_client::{
    ContainerCreate, ContainerCreated, ContainerInspect, ContainerState, Health,
};
use berth_image::ImageStore;
use berth_runtime::container::Runtime;
use tokio::sync::watch;
use tokio::task::AbortHandle;

use crate::error::{EngineError, Result};
use crate::events::EventBus;
use crate::monitor::{self, MonitorConfig, MonitorState, Ready};
use crate::paths::{write_atomic_nosync, Paths};
use crate::prepare;
use crate::record::{ContainerRecord, ZERO_TIME};
use crate::rootfs;
use crate::volumes::Volumes;

/// Log rotation defaults (Docker's json-file with max-size=10m, max-file=3).
const LOG_MAX_SIZE: u64 = 10 * 1024 * 1024;
const LOG_MAX_FILES: u32 = 3;
/// Docker's restart backoff: 100ms doubling up to 1 minute, reset after 10s of running.
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(10);

/// What waiters observe about a container.
#[derive(Debug, Clone, Default)]
pub struct Lifecycle {
    pub exits: u64,
    pub exit_code: i64,
    pub running: bool,
    pub removed: bool,
}

pub(crate) struct Slot {
    pub rec: ContainerRecord,
    pub lifecycle: watch::Sender<Lifecycle>,
    pub starting: bool,
    pub removing: bool,
    pub started_instant: Option<Instant>,
    pub backoff: Duration,
    pub health_task: Option<AbortHandle>,
    pub restart_task: Option<AbortHandle>,
    /// Proxies of published ports.
    pub port_tasks: Vec<AbortHandle>,
}

impl Slot {
    fn new(rec: ContainerRecord) -> Self {
        let (tx, _) = watch::channel(Lifecycle {
            running: rec.state.running,
            exit_code: rec.state.exit_code,
            ..Default::default()
        });
        Self {
            rec,
            lifecycle: tx,
            starting: false,
            removing: false,
            started_instant: None,
            backoff: BACKOFF_START,
            health_task: None,
            restart_task: None,
            port_tasks: Vec::new(),
        }
    }
}

pub struct Engine {
    pub paths: Paths,
    pub images: ImageStore,
    pub volumes: Volumes,
    pub networks: berth_network::Networks,
    pub events: EventBus,
    /// Registry client for pulls, pushes and logins (with `--insecure-registry` hosts).
    pub registries: berth_distribution::RegistryClient,
    pub(crate) exe: PathBuf,
    pub(crate) slots: Mutex<HashMap<String, Slot>>,
    pub(crate) execs: Mutex<HashMap<String, crate::exec::ExecEntry>>,
    /// Embedded DNS responders by network id.
    pub(crate) dns: Mutex<HashMap<String, AbortHandle>>,
    /// Attach requests waiting for their container to start, by container id.
    pub(crate) attach_waiters: Mutex<HashMap<String, usize>>,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

fn attrs(rec: &ContainerRecord) -> BTreeMap<String, String> {
    let mut a = rec.config.labels.clone();
    a.insert("name".into(), rec.name.clone());
    a.insert("image".into(), rec.config.image.clone());
    a
}

impl Engine {
    /// Opens (creating if needed) the engine's data directory and restores its containers.
    pub async fn open(root: &Path) -> anyhow::Result<Arc<Self>> {
        Self::open_with(
            root,
            berth_network::NetworkOptions::new(root),
            Default::default(),
        )
        .await
    }

    /// [`open`](Self::open) with explicit network options and registry settings (insecure
    /// registries, Docker Hub mirrors).
    pub async fn open_with(
        root: &Path,
        net: berth_network::NetworkOptions,
        registries: berth_distribution::RegistryOptions,
    ) -> anyhow::Result<Arc<Self>> {
        let paths = Paths::new(root);
        paths.create_all()?;
        let images = ImageStore::open(root)?;
        let exe = std::fs::read_link("/proc/self/exe")?;
        let engine = Arc::new(Self {
            volumes: Volumes::new(paths.volumes()),
            networks: berth_network::Networks::open(net)?,
            paths,
            images,
            events: EventBus::new(),
            registries: berth_distribution::RegistryClient::new(registries)?,
            exe,
            slots: Mutex::new(HashMap::new()),
            execs: Mutex::new(HashMap::new()),
            attach_waiters: Mutex::new(HashMap::new()),
            dns: Mutex::new(HashMap::new()),
        });
        engine.restore().await;
        Ok(engine)
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn runtime(&self) -> Runtime {
        Runtime::new(self.paths.runtime_state())
    }

    /// Resolves a full id, a unique id prefix or a name (with or without the leading slash).
    pub fn resolve(&self, key: &str) -> Result<String> {
        let slots = self.lock();
        resolve_in(&slots, key)
    }

    pub fn record(&self, key: &str) -> Result<ContainerRecord> {
        let slots = self.lock();
        let id = resolve_in(&slots, key)?;
        Ok(slots[&id].rec.clone())
    }

    /// (running, starting or restarting; exits seen; status) for log following.
    pub fn follow_state(&self, id: &str) -> Option<(bool, u64, String)> {
        let slots = self.lock();
        let slot = slots.get(id)?;
        let active = slot.rec.state.running || slot.rec.state.restarting || slot.starting;
        let exits = slot.lifecycle.borrow().exits;
        Some((active, exits, slot.rec.state.status.clone()))
    }

    /// A receiver that changes whenever the container starts, exits or is removed.
    pub fn lifecycle_receiver(&self, id: &str) -> Option<watch::Receiver<Lifecycle>> {
        self.lock().get(id).map(|s| s.lifecycle.subscribe())
    }

    pub fn records(&self) -> Vec<ContainerRecord> {
        let mut v: Vec<ContainerRecord> = self.lock().values().map(|s| s.rec.clone()).collect();
        v.sort_by(|a, b| b.created.cmp(&a.created));
        v
    }

    /// Saves a container's run state (see [`ContainerRecord::save_state`]).
    pub(crate) fn save(&self, rec: &ContainerRecord) {
        if let Err(e) = rec.save_state(&self.paths.container(&rec.id)) {
            tracing::error!(id = %rec.id, "cannot save container record: {e}");
        }
    }

    // -----------------------------------------------------------------------------------------
    // create
    // -----------------------------------------------------------------------------------------

    pub async fn create(
        self: &Arc<Self>,
        req: ContainerCreate,
        name: Option<String>,
    ) -> Result<ContainerCreated> {
        if req.image.is_empty() {
            return Err(EngineError::Invalid(
                "no image given: name the image to run".into(),
            ));
        }
        let mut req = req;
        req.host_config.network_mode =
            crate::networking::effective_mode(&req.host_config.network_mode).to_string();
        prepare::validate_host_config(&req)?;
        let engine = self.clone();
        let name_given = name.clone().filter(|n| !n.is_empty());
        if let Some(n) = &name_given {
            let n = n.trim_start_matches('/');
            if !crate::names::valid_name(n) {
                return Err(EngineError::Invalid(format!(
                    "invalid container name {n:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                )));
            }
        }
        let rec = tokio::task::spawn_blocking(move || engine.create_blocking(req, name_given))
            .await
            .map_err(EngineError::internal)??;
        self.events
            .publish("container", "create", &rec.id, attrs(&rec));
        Ok(ContainerCreated {
            id: rec.id,
            warnings: Vec::new(),
        })
    }

    fn create_blocking(
        &self,
        req: ContainerCreate,
        name: Option<String>,
    ) -> Result<ContainerRecord> {
        let image = self.images.get(&req.image).map_err(|e| match e {
            berth_image::ImageError::NotFound(_) => EngineError::NotFound(format!(
                "no such image: {}: import or load it first (berth image import/load)",
                req.image
            )),
            other => other.into(),
        })?;
        let endpoints = crate::networking::endpoints(&req)?;
        for ep in &endpoints {
            self.networks.get(&ep.network)?;
        }
        if let Some(other) = req.host_config.network_mode.strip_prefix("container:") {
            self.record(other)?;
        }
        let id = crate::names::new_id();
        let config = prepare::effective_config(&req, &image.config, &id)?;
        // Bind sources must exist; named volumes are created on demand.
        for b in &req.host_config.binds {
            let bind = prepare::parse_bind(b)?;
            if !bind.is_volume && !Path::new(&bind.source).exists() {
                return Err(EngineError::Invalid(format!(
                    "invalid mount config for type \"bind\": bind source path does not exist: {}",
                    bind.source
                )));
            }
        }
        for path in req.host_config.tmpfs.keys() {
            if !path.starts_with('/') {
                return Err(EngineError::Invalid(format!(
                    "invalid tmpfs mount {path:?}: the path must be absolute"
                )));
            }
        }
        let layers = self.images.layer_paths(&image)?;
        let dir = self.paths.container(&id);
        let (uid, gid, additional_gids) = prepare::resolve_user(&config.user, &dir, &layers)?;
        // Reserve the name and write the record under the table lock so two creates with one
        // name cannot both succeed.
        let mut slots = self.lock();
        let name = match name {
            Some(n) => {
                let n = n.trim_start_matches('/').to_string();
                if let Some(other) = slots.values().find(|s| s.rec.name == n) {
                    return Err(EngineError::Conflict(format!(
                        "the container name \"/{n}\" is already in use by container \"{}\": remove (or rename) that container to be able to reuse that name",
                        other.rec.id
                    )));
                }
                n
            }
            None => loop {
                let n = crate::names::random_name();
                if !slots.values().any(|s| s.rec.name == n) {
                    break n;
                }
            },
        };
        // Anonymous volumes: `-v /path` and the image's VOLUMEs not otherwise mounted.
        let mut req = req;
        let mut anonymous_volumes = Vec::new();
        let mut binds = Vec::new();
        for b in &req.host_config.binds {
            let bind = prepare::parse_bind(b)?;
            if bind.is_volume && bind.source.is_empty() {
                let name = crate::names::new_id();
                binds.push(format!("{name}:{}", bind.destination));
                anonymous_volumes.push(name);
            } else {
                binds.push(b.clone());
            }
        }
        for path in image.config.volumes.keys() {
            let taken = binds
                .iter()
                .filter_map(|b| prepare::parse_bind(b).ok())
                .any(|b| b.destination.trim_end_matches('/') == path.trim_end_matches('/'))
                || req.host_config.tmpfs.contains_key(path);
            if !taken && path.starts_with('/') {
                let name = crate::names::new_id();
                binds.push(format!("{name}:{path}"));
                anonymous_volumes.push(name);
            }
        }
        req.host_config.binds = binds;
        for b in &req.host_config.binds {
            let bind = prepare::parse_bind(b)?;
            if bind.is_volume {
                self.volumes.create(&bind.source, BTreeMap::new())?;
                self.events
                    .publish("volume", "create", &bind.source, BTreeMap::new());
            }
        }
        let mounts = prepare::mount_points(
            &req.host_config.binds,
            &req.host_config.tmpfs,
            &self.paths.volumes(),
        )?;
        let rec = ContainerRecord {
            id: id.clone(),
            name,
            created: now(),
            image_id: image.id.clone(),
            config,
            host_config: req.host_config,
            mounts,
            uid,
            gid,
            additional_gids,
            anonymous_volumes,
            endpoints: Some(endpoints),
            state: ContainerState {
                status: "created".into(),
                started_at: ZERO_TIME.into(),
                finished_at: ZERO_TIME.into(),
                ..Default::default()
            },
            ..Default::default()
        };
        std::fs::create_dir_all(&dir)?;
        // The log exists from the start so `logs -f` issued before `start` holds it open.
        std::fs::File::create(dir.join("container.log"))?;
        if let Err(e) = rec.save(&dir) {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e.into());
        }
        slots.insert(id, Slot::new(rec.clone()));
        Ok(rec)
    }

    // -----------------------------------------------------------------------------------------
    // start
    // -----------------------------------------------------------------------------------------

    pub async fn start(self: &Arc<Self>, key: &str) -> Result<()> {
        let rec = {
            let mut slots = self.lock();
            let id = resolve_in(&slots, key)?;
            let slot = slots.get_mut(&id).expect("resolved");
            if slot.rec.state.running {
                return Err(EngineError::NotModified(format!(
                    "container {} is already running",
                    slot.rec.name
                )));
            }
            if slot.starting || slot.removing {
                return Err(EngineError::Conflict(format!(
                    "container {} is being started or removed",
                    slot.rec.name
                )));
            }
            slot.starting = true;
            if let Some(t) = slot.restart_task.take() {
                t.abort();
            }
            slot.rec.clone()
        };
        let bound = crate::ports::bind(&crate::ports::requested(&rec));
        let result = match bound {
            Ok(bound) => {
                let engine = self.clone();
                let rec2 = rec.clone();
                tokio::task::spawn_blocking(move || engine.start_blocking(&rec2))
                    .await
                    .map_err(EngineError::internal)
                    .and_then(|r| r)
                    .map(|r| (r, bound))
            }
            Err(e) => Err(e),
        };
        let mut slots = self.lock();
        let Some(slot) = slots.get_mut(&rec.id) else {
            return Err(EngineError::NotFound(format!("no such container: {key}")));
        };
        slot.starting = false;
        match result {
            Ok(((ready, attachments), bound)) => {
                if let Some(a) = attachments.first() {
                    let (tasks, actual) = crate::ports::spawn(bound, a.ip);
                    slot.port_tasks = tasks;
                    slot.rec.ports = actual;
                }
                slot.rec.networks = attachments;
                let s = &mut slot.rec.state;
                s.status = "running".into();
                s.running = true;
                s.restarting = false;
                s.pid = ready.pid as i64;
                s.exit_code = 0;
                s.oom_killed = false;
                s.error.clear();
                s.started_at = now();
                s.health = slot.rec.config.healthcheck.as_ref().map(|_| Health {
                    status: "starting".into(),
                    ..Default::default()
                });
                slot.rec.monitor_pid = ready.monitor_pid;
                slot.rec.has_been_started = true;
                slot.rec.manually_stopped = false;
                slot.started_instant = Some(Instant::now());
                slot.lifecycle.send_modify(|l| l.running = true);
                let rec = slot.rec.clone();
                drop(slots);
                self.save(&rec);
                self.events
                    .publish("container", "start", &rec.id, attrs(&rec));
                self.watch_monitor(rec.id.clone(), ready.monitor_pid);
                for a in rec.networks.clone() {
                    let engine = self.clone();
                    tokio::spawn(async move { engine.ensure_dns(&a).await });
                }
                crate::health::spawn(self, &rec);
                Ok(())
            }
            Err(e) => {
                slot.rec.state.error = e.to_string();
                slot.rec.state.exit_code = 128;
                let rec = slot.rec.clone();
                drop(slots);
                self.save(&rec);
                Err(e)
            }
        }
    }

    fn start_blocking(
        &self,
        rec: &ContainerRecord,
    ) -> Result<(Ready, Vec<berth_network::Attachment>)> {
        let dir = self.paths.container(&rec.id);
        let image = self.images.get(&rec.image_id)?;
        let layers = self.images.layer_paths(&image)?;
        let mut volume_paths = BTreeMap::new();
        for b in &rec.host_config.binds {
            let bind = prepare::parse_bind(b)?;
            if bind.is_volume {
                self.volumes.create(&bind.source, BTreeMap::new())?;
                volume_paths.insert(bind.source.clone(), self.volumes.path(&bind.source)?);
            } else if !Path::new(&bind.source).exists() {
                return Err(EngineError::Invalid(format!(
                    "invalid mount config for type \"bind\": bind source path does not exist: {}",
                    bind.source
                )));
            }
        }
        let rootfs = rootfs::mount_rootfs(&dir, &layers)?;
        let attachment = match self.join_networks(rec) {
            Ok(a) => a,
            Err(e) => {
                let _ = rootfs::unmount_rootfs(&dir);
                return Err(e);
            }
        };
        let mut rec = rec.clone();
        rec.networks = attachment.clone();
        let rec = &rec;
        let result = (|| -> Result<Ready> {
            make_workdir(&rootfs, &rec.config.working_dir);
            for b in &rec.host_config.binds {
                let bind = prepare::parse_bind(b)?;
                if let Some(data) = volume_paths.get(&bind.source) {
                    crate::volumes::copy_up(&rootfs, &bind.destination, data)?;
                }
            }
            let shared = self.shared_netns(rec)?;
            match &shared {
                Some((_, target_dir)) => prepare::copy_etc_files(target_dir, &dir, rec)?,
                None => prepare::write_etc_files(&dir, rec)?,
            }
            let mut input = prepare::spec_input(rec, &dir, &rootfs, &volume_paths)?;
            if let Some((ns, _)) = shared {
                input.network = berth_runtime::spec::NetworkMode::Path(ns);
            }
            let spec = berth_runtime::spec::build_spec(&input)
                .map_err(|e| EngineError::Invalid(e.to_string()))?;
            let spec_json = serde_json::to_vec_pretty(&spec).map_err(EngineError::internal)?;
            // Runtime files are rewritten at every start: no fsync (a reboot ends the run).
            write_atomic_nosync(&dir.join("config.json"), &spec_json)?;
            let mc = MonitorConfig {
                id: rec.id.clone(),
                bundle: dir.clone(),
                state_root: self.paths.runtime_state(),
                log_path: dir.join("container.log"),
                log_max_size: LOG_MAX_SIZE,
                log_max_files: LOG_MAX_FILES,
                init: rec.host_config.init,
                cgroup_path: rec.cgroup_path(),
                tty: rec.config.tty,
                console_size: match rec.host_config.console_size {
                    [rows, cols] if rec.config.tty && rows > 0 && cols > 0 => Some((rows, cols)),
                    _ => None,
                },
                open_stdin: rec.config.open_stdin,
                stdin_once: rec.config.stdin_once,
                replay: rec.config.tty || rec.config.open_stdin || self.attach_waiting(&rec.id),
            };
            write_atomic_nosync(
                &dir.join(monitor::CONFIG_FILE),
                &serde_json::to_vec_pretty(&mc).map_err(EngineError::internal)?,
            )?;
            let _ = std::fs::remove_file(dir.join(monitor::STATE_FILE));
            self.spawn_monitor(&dir)
        })();
        if result.is_err() {
            let _ = rootfs::unmount_rootfs(&dir);
            if !attachment.is_empty() {
                let _ = self.networks.release(&rec.id, &attachment);
            }
        }
        result.map(|r| (r, attachment))
    }

    fn spawn_monitor(&self, dir: &Path) -> Result<Ready> {
        let log = std::fs::File::create(dir.join("monitor.log"))?;
        let mut child = std::process::Command::new(&self.exe)
            .arg("__monitor")
            .arg(dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| {
                EngineError::Internal(format!("cannot spawn the container monitor: {e}"))
            })?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| EngineError::internal("monitor has no stdout"))?;
        let _ = child.wait();
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let ready: Ready = serde_json::from_str(line.trim()).map_err(|_| {
            let log = std::fs::read_to_string(dir.join("monitor.log")).unwrap_or_default();
            EngineError::Internal(format!("container monitor failed to start: {}", log.trim()))
        })?;
        if let Some(err) = ready.error {
            return Err(EngineError::Internal(format!("runtime: {err}")));
        }
        Ok(ready)
    }

    /// Waits for the monitor to end, then handles the container's exit.
    pub(crate) fn watch_monitor(self: &Arc<Self>, id: String, monitor_pid: i32) {
        let engine = self.clone();
        tokio::spawn(async move {
            // SAFETY: the AsyncFd owns the pidfd (an OwnedFd), which stays open and unchanged
            // until the AsyncFd is dropped.
            let afd = monitor::pidfd_open(monitor_pid)
                .and_then(|fd| unsafe { tokio::io::unix::AsyncFd::register(fd) }.ok());
            match afd {
                Some(afd) => {
                    let _ = afd.readable().await;
                }
                None => {
                    let dir = engine.paths.container(&id);
                    while monitor::is_monitor_alive(monitor_pid, &dir) {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
            engine.on_exit(&id).await;
        });
    }

    /// Records an exit reported by the monitor, then applies the restart policy or `--rm`.
    pub(crate) async fn on_exit(self: &Arc<Self>, id: &str) {
        let dir = self.paths.container(id);
        let ms = MonitorState::load(&dir).filter(|s| s.status == "exited");
        let (rec, restart_delay, auto_remove, endpoints) = {
            let mut slots = self.lock();
            let Some(slot) = slots.get_mut(id) else {
                return;
            };
            if !slot.rec.state.running {
                return;
            }
            let s = &mut slot.rec.state;
            s.running = false;
            s.pid = 0;
            s.status = "exited".into();
            match &ms {
                Some(ms) => {
                    s.exit_code = ms.exit_code as i64;
                    s.oom_killed = ms.oom_killed;
                    s.finished_at = if ms.finished_at.is_empty() {
                        now()
                    } else {
                        ms.finished_at.clone()
                    };
                }
                None => {
                    s.exit_code = 255;
                    s.error = "the container's monitor ended without recording an exit".into();
                    s.finished_at = now();
                }
            }
            if let Some(t) = slot.health_task.take() {
                t.abort();
            }
            let exit_code = s.exit_code;
            let ran_for = slot
                .started_instant
                .map(|t| t.elapsed())
                .unwrap_or_default();
            let policy = &slot.rec.host_config.restart_policy;
            let restart = !slot.removing
                && !slot.rec.manually_stopped
                && match policy.name.as_str() {
                    "always" | "unless-stopped" => true,
                    "on-failure" => {
                        exit_code != 0
                            && (policy.maximum_retry_count == 0
                                || slot.rec.restart_count < policy.maximum_retry_count)
                    }
                    _ => false,
                };
            let delay = if restart {
                if ran_for >= BACKOFF_RESET_AFTER {
                    slot.backoff = BACKOFF_START;
                }
                let d = slot.backoff;
                slot.backoff = (slot.backoff * 2).min(BACKOFF_MAX);
                slot.rec.state.status = "restarting".into();
                slot.rec.state.restarting = true;
                Some(d)
            } else {
                None
            };
            let auto_remove = slot.rec.host_config.auto_remove && !slot.removing;
            // Endpoints go with the exit; the record is saved once, without them.
            let endpoints = crate::networking::take_endpoints(slot);
            (slot.rec.clone(), delay, auto_remove, endpoints)
        };
        self.save(&rec);
        if ms.is_none() {
            // The monitor died without recording an exit (killed from outside): nothing holds
            // the container's output or can reap it any more, so end it rather than leak it.
            let cgroup = berth_runtime::cgroups::Cgroup::new(&rec.cgroup_path());
            let runtime = self.runtime();
            let id2 = id.to_string();
            let _ = tokio::task::spawn_blocking(move || {
                for pid in cgroup.pids() {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
                let _ = runtime.delete(&id2, true);
            })
            .await;
        }
        let d = dir.clone();
        let _ = tokio::task::spawn_blocking(move || rootfs::unmount_rootfs(&d)).await;
        self.release_endpoints(id, endpoints).await;
        // Waiters (stop, kill, rm -f, wait) learn of the exit once its rootfs is unmounted and
        // its network endpoints are released, so e.g. `network rm` right after `rm -f` finds
        // the network free, as with Docker.
        if let Some(slot) = self.lock().get(id) {
            let exit_code = rec.state.exit_code;
            slot.lifecycle.send_modify(|l| {
                l.exits += 1;
                l.exit_code = exit_code;
                l.running = false;
            });
        }
        let mut a = attrs(&rec);
        if rec.state.oom_killed {
            self.events.publish("container", "oom", id, a.clone());
        }
        a.insert("exitCode".into(), rec.state.exit_code.to_string());
        self.events.publish("container", "die", id, a);
        if let Some(delay) = restart_delay {
            let engine = self.clone();
            let id2 = id.to_string();
            let handle = tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                engine.restart_after_backoff(&id2).await;
            });
            if let Some(slot) = self.lock().get_mut(id) {
                slot.restart_task = Some(handle.abort_handle());
            }
        } else if auto_remove {
            if let Err(e) = self.remove(id, true, true).await {
                tracing::warn!(id, "auto-remove failed: {e}");
            }
        }
    }

    async fn restart_after_backoff(self: &Arc<Self>, id: &str) {
        {
            let mut slots = self.lock();
            let Some(slot) = slots.get_mut(id) else {
                return;
            };
            if !slot.rec.state.restarting || slot.removing {
                return;
            }
            slot.restart_task = None;
            slot.rec.restart_count += 1;
        }
        if let Err(e) = self.start(id).await {
            tracing::warn!(id, "restart failed: {e}");
            let rec = {
                let mut slots = self.lock();
                let Some(slot) = slots.get_mut(id) else {
                    return;
                };
                slot.rec.state.restarting = false;
                slot.rec.state.status = "exited".into();
                slot.rec.clone()
            };
            self.save(&rec);
        } else {
            let rec = self.record(id).ok();
            if let Some(rec) = rec {
                self.events.publish("container", "restart", id, attrs(&rec));
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // stop / kill / restart
    // -----------------------------------------------------------------------------------------

    /// Sends the stop signal, waits up to `timeout` (default: the container's stop timeout),
    /// then SIGKILL.
    pub async fn stop(self: &Arc<Self>, key: &str, timeout: Option<u64>) -> Result<()> {
        self.wait_not_starting(key).await?;
        let (id, pid, signal, timeout, mut rx) = {
            let mut slots = self.lock();
            let id = resolve_in(&slots, key)?;
            let slot = slots.get_mut(&id).expect("resolved");
            slot.rec.manually_stopped = true;
            if !slot.rec.state.running {
                if slot.rec.state.restarting {
                    if let Some(t) = slot.restart_task.take() {
                        t.abort();
                    }
                    slot.rec.state.restarting = false;
                    slot.rec.state.status = "exited".into();
                    let rec = slot.rec.clone();
                    drop(slots);
                    self.save(&rec);
                    return Ok(());
                }
                let rec = slot.rec.clone();
                drop(slots);
                self.save(&rec);
                return Err(EngineError::NotModified(format!(
                    "container {key} is not running"
                )));
            }
            let signal = prepare::parse_signal(&slot.rec.config.stop_signal)
                .unwrap_or(nix::sys::signal::Signal::SIGTERM);
            let timeout = timeout.unwrap_or(slot.rec.config.stop_timeout);
            (
                id,
                slot.rec.state.pid as i32,
                signal,
                timeout,
                slot.lifecycle.subscribe(),
            )
        };
        let before = rx.borrow().exits;
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
        let exited = wait_exit(&mut rx, before, Duration::from_secs(timeout)).await;
        if !exited {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            if !wait_exit(&mut rx, before, Duration::from_secs(30)).await {
                return Err(EngineError::Internal(format!(
                    "container {key} did not exit after SIGKILL"
                )));
            }
        }
        if let Ok(rec) = self.record(&id) {
            self.save(&rec);
            self.events.publish("container", "stop", &id, attrs(&rec));
        }
        Ok(())
    }

    /// Waits while a start of the container is in flight, so a stop or removal acts on the
    /// container that start produced.
    async fn wait_not_starting(&self, key: &str) -> Result<()> {
        loop {
            {
                let slots = self.lock();
                let id = resolve_in(&slots, key)?;
                if !slots[&id].starting {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub async fn kill(self: &Arc<Self>, key: &str, signal: &str) -> Result<()> {
        let sig = prepare::parse_signal(if signal.is_empty() { "SIGKILL" } else { signal })?;
        let (id, pid, rec) = {
            let mut slots = self.lock();
            let id = resolve_in(&slots, key)?;
            let slot = slots.get_mut(&id).expect("resolved");
            if !slot.rec.state.running {
                return Err(EngineError::Conflict(format!(
                    "cannot kill container {key}: container is not running"
                )));
            }
            if matches!(sig, nix::sys::signal::Signal::SIGKILL) {
                slot.rec.manually_stopped = true;
            }
            (id, slot.rec.state.pid as i32, slot.rec.clone())
        };
        self.save(&rec);
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig)
            .map_err(|e| EngineError::Internal(format!("cannot signal container {key}: {e}")))?;
        let mut a = attrs(&rec);
        a.insert("signal".into(), (sig as i32).to_string());
        self.events.publish("container", "kill", &id, a);
        Ok(())
    }

    pub async fn restart(self: &Arc<Self>, key: &str, timeout: Option<u64>) -> Result<()> {
        match self.stop(key, timeout).await {
            Ok(()) | Err(EngineError::NotModified(_)) => {}
            Err(e) => return Err(e),
        }
        self.start(key).await?;
        let id = self.resolve(key)?;
        if let Ok(rec) = self.record(&id) {
            self.events
                .publish("container", "restart", &id, attrs(&rec));
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // remove / wait
    // -----------------------------------------------------------------------------------------

    /// Removes the container; with `volumes` also its anonymous volumes.
    pub async fn remove(self: &Arc<Self>, key: &str, force: bool, volumes: bool) -> Result<()> {
        self.wait_not_starting(key).await?;
        let (id, running, pid, mut rx) = {
            let mut slots = self.lock();
            let id = resolve_in(&slots, key)?;
            let slot = slots.get_mut(&id).expect("resolved");
            if slot.removing {
                return Err(EngineError::Conflict(format!(
                    "removal of container {key} is already in progress"
                )));
            }
            if slot.rec.state.running && !force {
                return Err(EngineError::Conflict(format!(
                    "cannot remove container \"/{}\": container is running: stop the container before removing or force remove",
                    slot.rec.name
                )));
            }
            slot.removing = true;
            if let Some(t) = slot.restart_task.take() {
                t.abort();
            }
            (
                id,
                slot.rec.state.running,
                slot.rec.state.pid as i32,
                slot.lifecycle.subscribe(),
            )
        };
        if running {
            let before = rx.borrow().exits;
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            if !wait_exit(&mut rx, before, Duration::from_secs(30)).await {
                if let Some(slot) = self.lock().get_mut(&id) {
                    slot.removing = false;
                }
                return Err(EngineError::Internal(format!(
                    "container {key} did not exit after SIGKILL"
                )));
            }
        }
        self.release_network(&id).await;
        let dir = self.paths.container(&id);
        let runtime = self.runtime();
        let id2 = id.clone();
        let cleanup = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            rootfs::unmount_rootfs(&dir)?;
            let _ = runtime.delete(&id2, true);
            std::fs::remove_dir_all(&dir)
        })
        .await
        .map_err(EngineError::internal)?;
        if let Err(e) = cleanup {
            if let Some(slot) = self.lock().get_mut(&id) {
                slot.removing = false;
            }
            return Err(EngineError::Internal(format!(
                "cannot remove container {key}: {e}"
            )));
        }
        let slot = self.lock().remove(&id);
        if let Some(slot) = slot {
            slot.lifecycle.send_modify(|l| l.removed = true);
            self.events
                .publish("container", "destroy", &id, attrs(&slot.rec));
            if volumes {
                for name in &slot.rec.anonymous_volumes {
                    if self.volume_in_use_by(name).is_empty() && self.volumes.remove(name).is_ok() {
                        self.events
                            .publish("volume", "destroy", name, BTreeMap::new());
                    }
                }
            }
        }
        Ok(())
    }

    /// Blocks until the condition holds; returns the exit code.
    pub async fn wait(self: &Arc<Self>, key: &str, condition: &str) -> Result<i64> {
        Ok(self.waiter(key, condition)?.await)
    }

    /// Checks the container and the condition and starts watching now; the returned future
    /// resolves to the exit code once the condition holds. (The API sends its response
    /// headers in between, as Docker clients wait for them before starting the container.)
    pub fn waiter(
        &self,
        key: &str,
        condition: &str,
    ) -> Result<impl std::future::Future<Output = i64> + Send + 'static> {
        let mut rx = {
            let slots = self.lock();
            let id = resolve_in(&slots, key)?;
            slots[&id].lifecycle.subscribe()
        };
        let start = rx.borrow().clone();
        let done_now = match condition {
            "" | "not-running" if !start.running => true,
            "" | "not-running" | "next-exit" | "removed" => false,
            other => {
                return Err(EngineError::Invalid(format!(
                    "invalid wait condition {other:?}: use not-running, next-exit or removed"
                )))
            }
        };
        let until_removed = condition == "removed";
        Ok(async move {
            if done_now {
                return start.exit_code;
            }
            loop {
                let changed = rx.changed().await;
                let cur = rx.borrow().clone();
                if changed.is_err() || cur.removed {
                    return cur.exit_code;
                }
                if !until_removed && cur.exits > start.exits {
                    return cur.exit_code;
                }
            }
        })
    }

    pub fn inspect(&self, key: &str) -> Result<ContainerInspect> {
        let rec = self.record(key)?;
        let mut args = rec.config.entrypoint.clone();
        args.extend(rec.config.cmd.iter().cloned());
        let path = if args.is_empty() {
            String::new()
        } else {
            args.remove(0)
        };
        Ok(ContainerInspect {
            id: rec.id.clone(),
            name: format!("/{}", rec.name),
            created: rec.created.clone(),
            path,
            args,
            state: rec.state.clone(),
            image: rec.image_id.clone(),
            log_path: self
                .paths
                .container(&rec.id)
                .join("container.log")
                .display()
                .to_string(),
            restart_count: rec.restart_count,
            mounts: rec.mounts.clone(),
            network_settings: crate::networking::settings(&rec),
            config: rec.config.clone(),
            host_config: rec.host_config.clone(),
        })
    }

    // -----------------------------------------------------------------------------------------
    // restore
    // -----------------------------------------------------------------------------------------

    /// Loads every container record; reattaches to monitors that are still alive and handles
    /// exits that happened while the engine was down.
    async fn restore(self: &Arc<Self>) {
        let Ok(entries) = std::fs::read_dir(self.paths.containers()) else {
            return;
        };
        let mut attach = Vec::new();
        let mut exited = Vec::new();
        let mut restart = Vec::new();
        for entry in entries.flatten() {
            let dir = entry.path();
            let rec = match ContainerRecord::load(&dir) {
                Ok(r) => r,
                Err(_) => {
                    // A create that never finished: nothing of it is visible, drop it.
                    let _ = rootfs::unmount_rootfs(&dir);
                    let _ = std::fs::remove_dir_all(&dir);
                    continue;
                }
            };
            if rec.state.running {
                if monitor::is_monitor_alive(rec.monitor_pid, &dir) {
                    attach.push((rec.id.clone(), rec.monitor_pid));
                } else {
                    exited.push(rec.id.clone());
                }
            } else {
                let _ = rootfs::unmount_rootfs(&dir);
                let always = matches!(
                    rec.host_config.restart_policy.name.as_str(),
                    "always" | "unless-stopped"
                );
                if rec.state.restarting || (always && rec.has_been_started && !rec.manually_stopped)
                {
                    restart.push(rec.id.clone());
                }
            }
            self.lock().insert(rec.id.clone(), Slot::new(rec));
        }
        {
            let live: std::collections::HashSet<String> =
                attach.iter().map(|(id, _)| id.clone()).collect();
            let engine = self.clone();
            let _ = tokio::task::spawn_blocking(move || {
                engine.networks.reconcile(&|c: &str| live.contains(c))
            })
            .await;
        }
        for (id, pid) in attach {
            if let Some(slot) = self.lock().get_mut(&id) {
                slot.started_instant = Some(Instant::now());
                // Published ports are served by the engine: bind them again.
                if let (Some(a), false) = (slot.rec.networks.first(), slot.rec.ports.is_empty()) {
                    match crate::ports::bind(&slot.rec.ports) {
                        Ok(bound) => {
                            let (tasks, _) = crate::ports::spawn(bound, a.ip);
                            slot.port_tasks = tasks;
                        }
                        Err(e) => tracing::warn!(%id, "cannot publish ports again: {e}"),
                    }
                }
            }
            self.watch_monitor(id.clone(), pid);
            for a in self.record(&id).map(|r| r.networks).unwrap_or_default() {
                self.ensure_dns(&a).await;
            }
            if let Ok(rec) = self.record(&id) {
                crate::health::spawn(self, &rec);
            }
        }
        for id in exited {
            self.on_exit(&id).await;
        }
        for id in restart {
            let engine = self.clone();
            tokio::spawn(async move {
                if let Some(slot) = engine.lock().get_mut(&id) {
                    slot.rec.state.restarting = false;
                }
                if let Err(e) = engine.start(&id).await {
                    tracing::warn!(%id, "restart on engine start failed: {e}");
                }
            });
        }
    }
}

async fn wait_exit(rx: &mut watch::Receiver<Lifecycle>, before: u64, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if rx.borrow().exits > before {
            return true;
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => continue,
            Ok(Err(_)) => return rx.borrow().exits > before,
            Err(_) => return false,
        }
    }
}

pub(crate) fn resolve_in(slots: &HashMap<String, Slot>, key: &str) -> Result<String> {
    let key = key.trim_start_matches('/');
    if key.is_empty() {
        return Err(EngineError::Invalid("no container name or id given".into()));
    }
    if slots.contains_key(key) {
        return Ok(key.to_string());
    }
    if let Some(slot) = slots.values().find(|s| s.rec.name == key) {
        return Ok(slot.rec.id.clone());
    }
    let matches: Vec<&String> = slots.keys().filter(|id| id.starts_with(key)).collect();
    match matches.len() {
        1 => Ok(matches[0].clone()),
        0 => Err(EngineError::NotFound(format!("no such container: {key}"))),
        _ => Err(EngineError::Invalid(format!(
            "multiple containers match the id prefix {key}: give more characters"
        ))),
    }
}

/// Creates the working directory inside the rootfs, refusing to follow symlinks (they could
/// point outside the container from the host's point of view).
fn make_workdir(rootfs: &Path, workdir: &str) {
    let mut cur = rootfs.to_path_buf();
    for part in workdir
        .split('/')
        .filter(|p| !p.is_empty() && *p != "." && *p != "..")
    {
        cur.push(part);
        match std::fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => continue,
            Ok(_) => return,
            Err(_) => {
                if std::fs::create_dir(&cur).is_err() {
                    return;
                }
            }
        }
    }
}
