//! `berth run`, `create`, `start` and `exec`: the container flags, their translation into a
//! [`ContainerCreate`], and attaching to a container's output.
//!
//! `run` without `-d` follows Docker's order so no output and no exit code is lost: it asks to
//! wait for the next exit (`POST /wait?condition=next-exit`) and opens the log stream
//! (`follow=1`, from the beginning) before starting the container, relays stdout and stderr to
//! their own streams, forwards SIGINT/SIGTERM/... to the container (`--sig-proxy`) and exits
//! with the container's exit code.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use berth_engine_client::client::{FrameStream, LogsOptions};
use berth_engine_client::frame::StreamKind;
use berth_engine_client::{
    ContainerCreate, EngineClient, ExecCreate, HealthConfig, HostConfig, RestartPolicy,
};
use clap::{ArgAction, Args};
use futures_util::StreamExt;

use crate::parse;
use crate::{errln, outln};

/// Flags shared by `run` and `create` (Docker's names).
#[derive(Debug, Clone, Args, Default)]
pub struct ContainerFlags {
    /// Assign a name to the container.
    #[arg(long)]
    pub name: Option<String>,
    /// Set environment variables (KEY=VALUE, or KEY to take it from this environment).
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Read a file of environment variables.
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// Working directory inside the container.
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>]).
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image.
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Memory limit (e.g. 64m, 1g).
    #[arg(short = 'm', long, value_name = "BYTES")]
    pub memory: Option<String>,
    /// Memory soft limit.
    #[arg(long = "memory-reservation", value_name = "BYTES")]
    pub memory_reservation: Option<String>,
    /// Number of CPUs (e.g. 0.5).
    #[arg(long)]
    pub cpus: Option<String>,
    /// CPU shares (relative weight).
    #[arg(short = 'c', long = "cpu-shares")]
    pub cpu_shares: Option<u64>,
    /// Tune container pids limit (-1 for unlimited).
    #[arg(long = "pids-limit", allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
    /// Bind mount a volume (SRC:DST[:ro]).
    #[arg(short = 'v', long = "volume", value_name = "SRC:DST[:MODE]")]
    pub volumes: Vec<String>,
    /// Mount a tmpfs directory (PATH[:OPTIONS]).
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// Mount the container's root filesystem as read only.
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Add Linux capabilities.
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities.
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    /// Connect a container to a network: bridge (the default), none, host, container:ID or a
    /// network name; give it again to join more bridge networks.
    #[arg(long, visible_alias = "net")]
    pub network: Vec<String>,
    /// Publish a container's port to the host:
    /// [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/tcp|/udp] (needs a bridge network).
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// Publish all exposed ports to free host ports of the ephemeral range.
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Expose a port or a range of ports (PORT[-PORT][/PROTO]) for -P.
    #[arg(long)]
    pub expose: Vec<String>,
    /// Add a network-scoped alias for the container (user-defined networks).
    #[arg(long = "network-alias")]
    pub network_alias: Vec<String>,
    /// IPv4 address on the (first) network (user-defined networks).
    #[arg(long)]
    pub ip: Option<String>,
    /// Container host name.
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// Restart policy (no, on-failure[:max-retries], always, unless-stopped).
    #[arg(long)]
    pub restart: Option<String>,
    /// Timeout (in seconds) to stop a container.
    #[arg(long = "stop-timeout")]
    pub stop_timeout: Option<u64>,
    /// Signal to stop the container.
    #[arg(long = "stop-signal")]
    pub stop_signal: Option<String>,
    /// Run an init inside the container that forwards signals and reaps processes.
    #[arg(long)]
    pub init: bool,
    /// Give extended privileges to this container.
    #[arg(long)]
    pub privileged: bool,
    /// Ulimit options (e.g. nofile=1024:2048).
    #[arg(long)]
    pub ulimit: Vec<String>,
    /// Add a custom host-to-IP mapping (host:ip).
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// Set custom DNS servers.
    #[arg(long)]
    pub dns: Vec<String>,
    /// Set custom DNS search domains.
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    /// Size of /dev/shm.
    #[arg(long = "shm-size", value_name = "BYTES")]
    pub shm_size: Option<String>,
    /// Sysctl options (k=v).
    #[arg(long)]
    pub sysctl: Vec<String>,
    /// Set meta data on a container (k=v).
    #[arg(short = 'l', long = "label")]
    pub label: Vec<String>,
    /// Command to run to check health.
    #[arg(long = "health-cmd")]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h).
    #[arg(long = "health-interval")]
    pub health_interval: Option<String>,
    /// Maximum time to allow one check to run (ms|s|m|h).
    #[arg(long = "health-timeout")]
    pub health_timeout: Option<String>,
    /// Consecutive failures needed to report unhealthy.
    #[arg(long = "health-retries")]
    pub health_retries: Option<u32>,
    /// Start period for the container to initialize before counting retries (ms|s|m|h).
    #[arg(long = "health-start-period")]
    pub health_start_period: Option<String>,
    /// Disable any container-specified HEALTHCHECK.
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
    /// Automatically remove the container when it exits.
    #[arg(long)]
    pub rm: bool,
    /// Keep STDIN open (and attach it) even if not attached.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Pull the image before creating the container: missing (only when it is not here),
    /// always, never.
    #[arg(long, value_enum, default_value_t = PullPolicy::Missing)]
    pub pull: PullPolicy,
    /// Suppress the pull output.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Print help.
    #[arg(long, action = ArgAction::Help)]
    pub help: Option<bool>,
    /// The image to run, then the command and its arguments (everything after the image
    /// belongs to the command).
    #[arg(
        value_name = "IMAGE [COMMAND] [ARG...]",
        required = true,
        num_args = 1..,
        trailing_var_arg = true
    )]
    pub image_and_command: Vec<String>,
}

/// When `run`/`create` pull the image (Docker's `--pull`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum PullPolicy {
    #[default]
    Missing,
    Always,
    Never,
}

impl ContainerFlags {
    /// The image name.
    pub fn image(&self) -> &str {
        self.image_and_command
            .first()
            .map(String::as_str)
            .unwrap_or("")
    }

    /// The command after the image.
    pub fn command(&self) -> &[String] {
        self.image_and_command.get(1..).unwrap_or(&[])
    }
}

/// `berth run`.
#[derive(Debug, Clone, Args)]
#[command(
    disable_help_flag = true,
    override_usage = "berth run [OPTIONS] IMAGE [COMMAND] [ARG...]"
)]
pub struct RunArgs {
    /// Run the container in the background and print its id.
    #[arg(short = 'd', long)]
    pub detach: bool,
    #[command(flatten)]
    pub flags: ContainerFlags,
}

/// `berth create`.
#[derive(Debug, Clone, Args)]
#[command(
    disable_help_flag = true,
    override_usage = "berth create [OPTIONS] IMAGE [COMMAND] [ARG...]"
)]
pub struct CreateArgs {
    #[command(flatten)]
    pub flags: ContainerFlags,
}

/// `berth start`.
#[derive(Debug, Clone, Args)]
pub struct StartArgs {
    /// Attach stdout/stderr and forward signals.
    #[arg(short = 'a', long)]
    pub attach: bool,
    /// Attach the container's stdin.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// `berth exec`.
#[derive(Debug, Clone, Args)]
pub struct ExecArgs {
    /// Detached mode: run the command in the background.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Keep STDIN open and attach it.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Set environment variables.
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Read a file of environment variables.
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// Working directory inside the container.
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>]).
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    #[arg(
        value_name = "COMMAND",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,
}

fn env_lookup(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

/// Collects `--env-file` then `-e` values (later ones win in the engine, as in Docker).
pub fn collect_env(
    files: &[PathBuf],
    args: &[String],
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>> {
    let mut env = Vec::new();
    for f in files {
        let name = f.display().to_string();
        let content = std::fs::read_to_string(f).with_context(|| format!("open {name}"))?;
        env.extend(parse::parse_env_file(&name, &content, lookup)?);
    }
    for e in args {
        if let Some(v) = parse::parse_env_arg(e, lookup)? {
            env.push(v);
        }
    }
    Ok(env)
}

fn health_flags_set(f: &ContainerFlags) -> bool {
    f.health_cmd.is_some()
        || f.health_interval.is_some()
        || f.health_timeout.is_some()
        || f.health_retries.is_some()
        || f.health_start_period.is_some()
}

fn health_duration(flag: &str, v: &Option<String>) -> Result<u64> {
    match v {
        None => Ok(0),
        Some(s) => {
            parse::parse_duration(s).map_err(|e| anyhow!("invalid argument for {flag}: {e}"))
        }
    }
}

/// Translates the flags into the create request (and the container name).
pub fn build_create(
    f: &ContainerFlags,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<ContainerCreate> {
    if f.image().is_empty() {
        bail!("invalid reference format: the image name is empty");
    }
    let env = collect_env(&f.env_file, &f.env, lookup)?;
    if let Some(w) = &f.workdir {
        if !w.starts_with('/') {
            bail!("the working directory '{w}' is invalid, it needs to be an absolute path");
        }
    }
    let mut hc = HostConfig {
        memory: opt_memory(&f.memory)?,
        memory_reservation: opt_memory(&f.memory_reservation)?,
        shm_size: opt_memory(&f.shm_size)?,
        nano_cpus: match &f.cpus {
            Some(c) => parse::parse_cpus(c)?,
            None => 0,
        },
        cpu_shares: f.cpu_shares.unwrap_or(0),
        pids_limit: f.pids_limit,
        readonly_rootfs: f.read_only,
        cap_add: f.cap_add.clone(),
        cap_drop: f.cap_drop.clone(),
        network_mode: f.network.first().cloned().unwrap_or_default(),
        publish_all_ports: f.publish_all,
        auto_remove: f.rm,
        init: f.init,
        privileged: f.privileged,
        ..HostConfig::default()
    };
    for v in &f.volumes {
        hc.binds.push(parse::parse_volume(v)?);
    }
    for p in &f.publish {
        let (key, binding) = parse::parse_publish(p)?;
        hc.port_bindings.entry(key).or_default().push(binding);
    }
    for t in &f.tmpfs {
        let (path, opts) = parse::parse_tmpfs(t)?;
        hc.tmpfs.insert(path, opts);
    }
    if let Some(r) = &f.restart {
        let policy = parse::parse_restart(r)?;
        if f.rm && policy.name != "no" {
            bail!("conflicting options: cannot specify both --restart and --rm");
        }
        hc.restart_policy = policy;
    } else {
        hc.restart_policy = RestartPolicy::default();
    }
    for u in &f.ulimit {
        hc.ulimits.push(parse::parse_ulimit(u)?);
    }
    for h in &f.add_host {
        hc.extra_hosts.push(parse::parse_add_host(h)?);
    }
    for d in &f.dns {
        hc.dns.push(parse::parse_ip("--dns", d)?);
    }
    for d in &f.dns_search {
        if d.is_empty() || d.contains(char::is_whitespace) {
            bail!("invalid --dns-search {d:?}: expected a domain name");
        }
        hc.dns_search.push(d.clone());
    }
    let mut exposed_ports = BTreeMap::new();
    for e in &f.expose {
        for key in parse::parse_expose(e)? {
            exposed_ports.insert(key, serde_json::json!({}));
        }
    }
    hc.sysctls = parse::parse_key_values("--sysctl", &f.sysctl, false)?;
    let labels: BTreeMap<String, String> = parse::parse_key_values("--label", &f.label, true)?;

    let healthcheck = if f.no_healthcheck {
        if health_flags_set(f) {
            bail!("--no-healthcheck conflicts with --health-* options");
        }
        Some(HealthConfig {
            test: vec!["NONE".into()],
            ..HealthConfig::default()
        })
    } else if health_flags_set(f) {
        Some(HealthConfig {
            test: f
                .health_cmd
                .as_ref()
                .map(|c| vec!["CMD-SHELL".to_string(), c.clone()])
                .unwrap_or_default(),
            interval: health_duration("--health-interval", &f.health_interval)?,
            timeout: health_duration("--health-timeout", &f.health_timeout)?,
            start_period: health_duration("--health-start-period", &f.health_start_period)?,
            retries: f.health_retries.unwrap_or(0),
        })
    } else {
        None
    };
    let stop_signal = match &f.stop_signal {
        Some(s) => Some(parse::parse_signal(s)?),
        None => None,
    };
    let entrypoint = f.entrypoint.as_ref().map(|e| {
        if e.is_empty() {
            Vec::new()
        } else {
            vec![e.clone()]
        }
    });
    Ok(ContainerCreate {
        image: f.image().to_string(),
        cmd: if f.command().is_empty() {
            None
        } else {
            Some(f.command().to_vec())
        },
        entrypoint,
        env,
        working_dir: f.workdir.clone(),
        user: f.user.clone(),
        hostname: f.hostname.clone(),
        labels,
        stop_signal,
        stop_timeout: f.stop_timeout,
        healthcheck,
        tty: f.tty,
        open_stdin: f.interactive,
        stdin_once: f.interactive,
        networking_config: networking_config(f)?,
        exposed_ports,
        host_config: HostConfig {
            console_size: if f.tty {
                crate::interactive::terminal_size().map_or([0, 0], |(rows, cols)| [rows, cols])
            } else {
                [0, 0]
            },
            ..hc
        },
    })
}

/// `--network` given more than once, `--network-alias` and `--ip` (for the first network).
fn networking_config(f: &ContainerFlags) -> Result<berth_engine_client::NetworkingConfig> {
    use berth_engine_client::{EndpointConfig, EndpointIpamConfig};
    let mut eps = BTreeMap::new();
    for (i, net) in f.network.iter().enumerate() {
        if eps.contains_key(net) {
            bail!("network {net:?} given twice");
        }
        let mut ep = EndpointConfig::default();
        if i == 0 {
            ep.aliases = f.network_alias.clone();
            if let Some(ip) = &f.ip {
                ep.ipam_config = Some(EndpointIpamConfig {
                    ipv4_address: parse::parse_ip("--ip", ip)?,
                });
            }
        }
        eps.insert(net.clone(), ep);
    }
    if f.network.is_empty() && (!f.network_alias.is_empty() || f.ip.is_some()) {
        bail!("--network-alias and --ip need a user-defined network: add --network NAME");
    }
    if f.network.len() == 1 && f.network_alias.is_empty() && f.ip.is_none() {
        eps.clear();
    }
    Ok(berth_engine_client::NetworkingConfig {
        endpoints_config: eps,
    })
}

fn opt_memory(v: &Option<String>) -> Result<i64> {
    match v {
        Some(s) => parse::parse_memory(s),
        None => Ok(0),
    }
}

/// True when the engine refused a create because it has no such image.
fn is_missing_image(e: &berth_engine_client::ClientError) -> bool {
    e.is_not_found()
        && e.to_string()
            .to_ascii_lowercase()
            .starts_with("no such image")
}

async fn create_container(client: &EngineClient, f: &ContainerFlags) -> Result<String> {
    let config = build_create(f, &env_lookup)?;
    if f.pull == PullPolicy::Always {
        crate::distribution::pull_for_container(client, &config.image, f.quiet).await?;
    }
    let created = match client.create_container(&config, f.name.as_deref()).await {
        Err(e) if f.pull == PullPolicy::Missing && is_missing_image(&e) => {
            let shown = berth_image::reference::Reference::parse(&config.image)
                .map(|r| r.familiar_tagged())
                .unwrap_or_else(|_| config.image.clone());
            eprintln!("Unable to find image '{shown}' locally");
            crate::distribution::pull_for_container(client, &config.image, f.quiet).await?;
            client.create_container(&config, f.name.as_deref()).await?
        }
        r => r?,
    };
    for w in &created.warnings {
        eprintln!("WARNING: {w}");
    }
    Ok(created.id)
}

/// `berth create`: prints the new container's id.
pub async fn create(client: &EngineClient, args: CreateArgs) -> Result<i32> {
    let id = create_container(client, &args.flags).await?;
    outln!("{id}");
    Ok(0)
}

/// `berth run`.
pub async fn run(client: &EngineClient, args: RunArgs) -> Result<i32> {
    let id = create_container(client, &args.flags).await?;
    if args.detach {
        client.start_container(&id).await?;
        outln!("{id}");
        return Ok(0);
    }
    if args.flags.interactive || args.flags.tty {
        return crate::interactive::run_session(
            client,
            crate::interactive::Session {
                id,
                tty: args.flags.tty,
                stdin: args.flags.interactive,
                start: true,
                auto_remove: args.flags.rm,
                sig_proxy: true,
            },
        )
        .await;
    }
    attach_and_start(client, &id, args.flags.rm, false).await
}

/// Writes output frames to stdout/stderr; returns the exit code of a final system frame
/// `{"ExitCode":N}` if one came.
pub async fn relay(frames: FrameStream) -> Result<Option<i64>> {
    relay_with_activity(frames, None).await
}

/// Milliseconds since the unix epoch (for the relay's activity clock).
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// [`relay`], recording the time of the latest frame in `activity`.
async fn relay_with_activity(
    mut frames: FrameStream,
    activity: Option<Arc<AtomicU64>>,
) -> Result<Option<i64>> {
    use std::io::Write as _;
    let mut exit = None;
    let mut err_ok = true;
    while let Some(item) = frames.next().await {
        let (kind, data) = item?;
        if let Some(a) = &activity {
            a.store(now_ms(), Ordering::Relaxed);
        }
        // Plain blocking writes: frames are small and a CLI blocking on its own stdout is the
        // back-pressure we want (tokio's stdout costs a thread hop per write).
        match kind {
            StreamKind::Stdout | StreamKind::Stdin => {
                let mut out = std::io::stdout().lock();
                if out.write_all(&data).is_err() || out.flush().is_err() {
                    // stdout is gone (`berth logs -f | head`): nobody is reading any more.
                    return Ok(exit);
                }
            }
            StreamKind::Stderr => {
                if err_ok {
                    let mut err = std::io::stderr().lock();
                    err_ok = err.write_all(&data).is_ok() && err.flush().is_ok();
                }
            }
            StreamKind::System => {
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&data) {
                    if let Some(code) = v.get("ExitCode").and_then(|c| c.as_i64()) {
                        exit = Some(code);
                    }
                }
            }
        }
    }
    Ok(exit)
}

/// Waits for a signal that should be forwarded to the container; returns its name.
pub(crate) struct SignalProxy {
    signals: Vec<(tokio::signal::unix::Signal, &'static str)>,
}

impl SignalProxy {
    pub(crate) fn new() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        let kinds = [
            (SignalKind::interrupt(), "SIGINT"),
            (SignalKind::terminate(), "SIGTERM"),
            (SignalKind::hangup(), "SIGHUP"),
            (SignalKind::quit(), "SIGQUIT"),
            (SignalKind::user_defined1(), "SIGUSR1"),
            (SignalKind::user_defined2(), "SIGUSR2"),
        ];
        let signals = kinds
            .into_iter()
            .filter_map(|(k, n)| signal(k).ok().map(|s| (s, n)))
            .collect();
        SignalProxy { signals }
    }

    pub(crate) async fn next(&mut self) -> &'static str {
        if self.signals.is_empty() {
            std::future::pending::<()>().await;
        }
        let futs = self
            .signals
            .iter_mut()
            .map(|(s, n)| Box::pin(async move { s.recv().await.map(|_| *n) }));
        let (res, _, _) = futures_util::future::select_all(futs).await;
        match res {
            Some(n) => n,
            None => std::future::pending().await,
        }
    }
}

/// Opens the wait and the log stream, starts the container, relays its output and returns its
/// exit code. `new_output_only` (for `start -a`) skips logs written before this start.
pub async fn attach_and_start(
    client: &EngineClient,
    id: &str,
    auto_remove: bool,
    new_output_only: bool,
) -> Result<i32> {
    let wc = client.clone();
    let wid = id.to_string();
    let mut wait = tokio::spawn(async move { wc.wait_container(&wid, Some("next-exit")).await });
    let opts = LogsOptions {
        follow: true,
        tail: if new_output_only { Some(0) } else { None },
        ..LogsOptions::default()
    };
    let frames = match client.logs(id, &opts).await {
        Ok(f) => f,
        Err(e) => {
            wait.abort();
            return Err(e.into());
        }
    };
    let activity = Arc::new(AtomicU64::new(now_ms()));
    let mut relay_task = tokio::spawn(relay_with_activity(frames, Some(activity.clone())));
    if let Err(e) = client.start_container(id).await {
        wait.abort();
        relay_task.abort();
        if auto_remove {
            let _ = client.remove_container(id, true, true).await;
        }
        return Err(e.into());
    }
    let mut proxy = SignalProxy::new();
    let waited = loop {
        tokio::select! {
            r = &mut wait => break r,
            sig = proxy.next() => {
                let c = client.clone();
                let id = id.to_string();
                tokio::spawn(async move {
                    if let Err(e) = c.kill_container(&id, Some(sig)).await {
                        errln!("failed to forward {sig}: {e}");
                    }
                });
            }
        }
    };
    let code = match waited {
        Ok(Ok(resp)) => {
            if let Some(err) = resp.error.filter(|e| !e.message.is_empty()) {
                errln!("{}", err.message);
            }
            resp.status_code
        }
        Ok(Err(e)) => {
            // The wait failed (e.g. the container is already gone); fall back to its state.
            match client.inspect_container(id).await {
                Ok(c) if !c.state.running => c.state.exit_code,
                _ => return Err(anyhow!(e).context("waiting for the container failed")),
            }
        }
        Err(e) => bail!("waiting for the container failed: {e}"),
    };
    // Let the log stream drain: it ends once the container has stopped and all its output has
    // been sent. Give up only if it goes quiet for a while without ending.
    activity.store(now_ms(), Ordering::Relaxed);
    loop {
        if tokio::time::timeout(Duration::from_millis(250), &mut relay_task)
            .await
            .is_ok()
        {
            break;
        }
        if now_ms().saturating_sub(activity.load(Ordering::Relaxed)) > 3000 {
            relay_task.abort();
            break;
        }
    }
    if auto_remove {
        // Like `docker run --rm`: return once the container (and its anonymous volumes) are
        // gone. A container already removed answers at once (or 404).
        let _ = tokio::time::timeout(
            Duration::from_secs(30),
            client.wait_container(id, Some("removed")),
        )
        .await;
    }
    Ok(code as i32)
}

/// `berth start`.
pub async fn start(client: &EngineClient, args: StartArgs) -> Result<i32> {
    if args.attach {
        if args.containers.len() > 1 {
            bail!("you cannot start and attach multiple containers at once");
        }
        let id = &args.containers[0];
        let info = client.inspect_container(id).await?;
        if args.interactive || info.config.tty {
            return crate::interactive::run_session(
                client,
                crate::interactive::Session {
                    id: info.id.clone(),
                    tty: info.config.tty,
                    stdin: args.interactive && info.config.open_stdin,
                    start: true,
                    auto_remove: false,
                    sig_proxy: true,
                },
            )
            .await;
        }
        return attach_and_start(client, &info.id, false, true).await;
    }
    let mut failed = false;
    for c in &args.containers {
        match client.start_container(c).await {
            Ok(_) => outln!("{c}"),
            Err(e) => {
                errln!("{e}");
                failed = true;
            }
        }
    }
    if failed {
        errln!("failed to start containers: {}", args.containers.join(", "));
        return Ok(1);
    }
    Ok(0)
}

/// `berth exec`: exits with the command's exit code.
pub async fn exec(client: &EngineClient, args: ExecArgs) -> Result<i32> {
    if let Some(w) = &args.workdir {
        if !w.starts_with('/') {
            bail!("the working directory '{w}' is invalid, it needs to be an absolute path");
        }
    }
    let env = collect_env(&args.env_file, &args.env, &env_lookup)?;
    let req = ExecCreate {
        cmd: args.command.clone(),
        env,
        working_dir: args.workdir.clone(),
        user: args.user.clone(),
        tty: args.tty,
        attach_stdin: args.interactive && !args.detach,
    };
    let exec_id = client.exec_create(&args.container, &req).await?;
    if args.detach {
        client.exec_start_detached(&exec_id).await?;
        return Ok(0);
    }
    if args.interactive || args.tty {
        return crate::interactive::exec_session(client, &exec_id, args.tty, args.interactive)
            .await;
    }
    let frames = client.exec_start(&exec_id).await?;
    if let Some(code) = relay(frames).await? {
        return Ok(code as i32);
    }
    // No final frame: ask the engine (the process may take a moment to be reaped).
    for _ in 0..50 {
        let info = client.exec_inspect(&exec_id).await?;
        if !info.running {
            if let Some(code) = info.exit_code {
                return Ok(code as i32);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the exec {exec_id} did not report an exit code")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct T {
        #[command(subcommand)]
        c: Sub,
    }

    #[derive(Debug, clap::Subcommand)]
    enum Sub {
        Run(RunArgs),
    }

    fn parse(args: &[&str]) -> Result<RunArgs, clap::Error> {
        let mut v = vec!["berth", "run"];
        v.extend_from_slice(args);
        T::try_parse_from(v).map(|t| match t.c {
            Sub::Run(r) => r,
        })
    }

    fn lookup(k: &str) -> Option<String> {
        (k == "FROM_HOST").then(|| "yes".to_string())
    }

    #[test]
    fn flags_after_the_image_belong_to_the_command() {
        let r = parse(&["-d", "--name", "web", "alpine", "ls", "-l", "--rm"]).unwrap();
        assert!(r.detach);
        assert_eq!(r.flags.name.as_deref(), Some("web"));
        assert_eq!(r.flags.image(), "alpine");
        assert_eq!(r.flags.command(), ["ls", "-l", "--rm"]);
        assert!(!r.flags.rm);
        let r = parse(&["alpine", "-l"]).unwrap();
        assert_eq!(r.flags.command(), ["-l"]);
        assert!(parse(&["--bogus", "alpine"]).is_err());
        let r = parse(&["-h", "box", "alpine"]).unwrap();
        assert_eq!(r.flags.hostname.as_deref(), Some("box"));
    }

    #[test]
    fn builds_the_create_request() {
        let r = parse(&[
            "--rm",
            "-e",
            "A=1",
            "-e",
            "FROM_HOST",
            "-e",
            "UNSET_X",
            "-m",
            "64m",
            "--cpus",
            "0.5",
            "--pids-limit",
            "-1",
            "-v",
            "/h:/c:ro",
            "--tmpfs",
            "/run:size=1m",
            "--restart",
            "no",
            "--health-cmd",
            "true",
            "--health-interval",
            "1m30s",
            "--ulimit",
            "nofile=10:20",
            "-l",
            "k=v",
            "--entrypoint",
            "",
            "-w",
            "/app",
            "--stop-signal",
            "term",
            "alpine",
            "sleep",
            "1",
        ])
        .unwrap();
        let c = build_create(&r.flags, &lookup).unwrap();
        assert_eq!(c.image, "alpine");
        assert_eq!(c.cmd, Some(vec!["sleep".to_string(), "1".to_string()]));
        assert_eq!(c.entrypoint, Some(vec![]));
        assert_eq!(c.env, vec!["A=1", "FROM_HOST=yes"]);
        assert_eq!(c.working_dir.as_deref(), Some("/app"));
        assert_eq!(c.stop_signal.as_deref(), Some("SIGTERM"));
        assert_eq!(c.labels.get("k").map(String::as_str), Some("v"));
        let hc = &c.host_config;
        assert!(hc.auto_remove);
        assert_eq!(hc.memory, 64 << 20);
        assert_eq!(hc.nano_cpus, 500_000_000);
        assert_eq!(hc.pids_limit, Some(-1));
        assert_eq!(hc.binds, vec!["/h:/c:ro"]);
        assert_eq!(hc.tmpfs.get("/run").map(String::as_str), Some("size=1m"));
        assert_eq!(hc.ulimits[0].hard, 20);
        let h = c.healthcheck.unwrap();
        assert_eq!(h.test, vec!["CMD-SHELL", "true"]);
        assert_eq!(h.interval, 90_000_000_000);
    }

    #[test]
    fn rejects_bad_values() {
        let build = |args: &[&str]| build_create(&parse(args).unwrap().flags, &lookup);
        let e = build(&["-m", "64q", "alpine"]).unwrap_err().to_string();
        assert!(e.contains("\"64q\""), "{e}");
        assert!(build(&["--restart", "always", "--rm", "alpine"]).is_err());
        assert!(build(&["--no-healthcheck", "--health-cmd", "x", "alpine"]).is_err());
        assert!(build(&["-w", "rel", "alpine"]).is_err());
        assert!(build(&["-v", "rel/x:/c", "alpine"]).is_err());
        assert!(build(&["--health-interval", "10", "alpine"]).is_err());
        let c = build(&["--no-healthcheck", "alpine"]).unwrap();
        assert_eq!(c.healthcheck.unwrap().test, vec!["NONE"]);
        let c = build(&["--restart", "on-failure:3", "alpine"]).unwrap();
        assert_eq!(c.host_config.restart_policy.maximum_retry_count, 3);
        let c = build(&["--entrypoint", "/bin/sh", "alpine"]).unwrap();
        assert_eq!(c.entrypoint, Some(vec!["/bin/sh".to_string()]));
        assert_eq!(c.cmd, None);
    }
}
