//! The `berth` binary: a thin layer of clap structs over the Berth crates.
//!
//! `berth engine` runs the engine daemon; every other command talks to it over its unix socket
//! through [`berth_engine_client::EngineClient`] and behaves like its Docker namesake (same
//! flags, same output, same exit codes: `run`/`create` exit 125 when the CLI or the engine
//! fails, other commands exit 1).
//!
//! Layout: [`run`] (run, create, start, exec and the container flags), [`containers`] (ps, logs,
//! stop, kill, rm, wait, inspect, top, prune), [`stats`], [`images`], [`volumes`], [`system`]
//! (version, df, prune, events), [`distribution`] (pull, push, login, logout) with
//! [`progress`] (their progress display), [`parse`] (flag values), [`format`] (tables, sizes, times),
//! [`template`] (`--format`), [`tarstream`] (upload bodies).

mod agent;
mod build;
mod containers;
mod distribution;
mod format;
mod images;
mod interactive;
mod internal;
mod networks;
mod parse;
mod progress;
mod registry;
mod run;
mod server;
mod stats;
mod system;
mod tarstream;
mod template;
mod up;
mod volumes;

use std::ffi::OsString;
use std::path::PathBuf;

use berth_engine_client::{EngineClient, DEFAULT_HOST, DEFAULT_ROOT};
use clap::{Parser, Subcommand};

/// Prints a line to stdout, ignoring a closed pipe (`berth ps | head`).
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// Prints `berth: <message>` to stderr.
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "berth: {}", format!($($arg)*));
    }};
}

/// Docker-like container engine.
#[derive(Debug, Parser)]
#[command(
    name = "berth",
    version,
    about = "Berth: a Docker-like container engine"
)]
struct Cli {
    /// Engine socket to connect to (`unix:///path`).
    #[arg(short = 'H', long, env = "BERTH_HOST", default_value = DEFAULT_HOST, global = true)]
    host: String,
    /// Engine data directory (used by `berth engine`).
    #[arg(long, env = "BERTH_ROOT", default_value = DEFAULT_ROOT, global = true)]
    root: PathBuf,
    /// Log level: error, warn, info, debug, trace.
    #[arg(long, default_value = "info", global = true)]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the engine daemon.
    Engine(EngineArgs),
    /// Run the ECS-compatible control plane.
    Server(server::ServerArgs),
    /// Run the node agent: register this host with a control plane and run its tasks.
    Agent(agent::AgentArgs),
    /// Run the control plane, one node agent (cluster `default`) and the engine in one
    /// process: the embedded default.
    Up(up::UpArgs),
    /// Run an OCI distribution (Docker Registry v2) registry.
    Registry(registry::RegistryArgs),
    /// Show the berth version information.
    Version,
    /// Create and run a new container from an image.
    Run(run::RunArgs),
    /// Create a new container.
    Create(run::CreateArgs),
    /// Start one or more stopped containers.
    Start(run::StartArgs),
    /// Execute a command in a running container.
    Exec(run::ExecArgs),
    /// Attach local standard input, output and error to a running container.
    Attach(interactive::AttachArgs),
    /// List containers.
    Ps(containers::PsArgs),
    /// Fetch the logs of a container.
    Logs(containers::LogsArgs),
    /// Stop one or more running containers.
    Stop(containers::StopArgs),
    /// Restart one or more containers.
    Restart(containers::StopArgs),
    /// Kill one or more running containers.
    Kill(containers::KillArgs),
    /// Remove one or more containers.
    Rm(containers::RmArgs),
    /// Block until one or more containers stop, then print their exit codes.
    Wait(containers::NamesArgs),
    /// Return low-level information on containers or images.
    Inspect(containers::InspectArgs),
    /// Display the running processes of a container.
    Top(containers::TopArgs),
    /// Display a live stream of container resource usage statistics.
    Stats(stats::StatsArgs),
    /// List port mappings of a container.
    Port(networks::PortArgs),
    /// Manage containers.
    #[command(subcommand)]
    Container(ContainerCommand),
    /// List images.
    Images(images::LsArgs),
    /// Manage images.
    #[command(subcommand)]
    Image(images::ImageCommand),
    /// Remove one or more images.
    Rmi(images::RmArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE.
    Tag(images::TagArgs),
    /// Build an image from a Dockerfile.
    Build(build::BuildArgs),
    /// Import a root filesystem tarball or directory as an image.
    Import(images::ImportArgs),
    /// Load images from a tar archive or an OCI layout directory.
    Load(images::LoadArgs),
    /// Save one or more images to a tar archive.
    Save(images::SaveArgs),
    /// Download an image from a registry.
    Pull(distribution::PullArgs),
    /// Upload an image to a registry.
    Push(distribution::PushArgs),
    /// Log in to a registry (checked by the engine, stored in ~/.docker/config.json).
    Login(distribution::LoginArgs),
    /// Log out from a registry.
    Logout(distribution::LogoutArgs),
    /// Manage volumes.
    #[command(subcommand)]
    Volume(volumes::VolumeCommand),
    /// Manage networks.
    #[command(subcommand)]
    Network(networks::NetworkCommand),
    /// Manage the engine.
    #[command(subcommand)]
    System(system::SystemCommand),
    /// Get real time events from the engine.
    Events(system::EventsArgs),
}

/// `berth engine`.
#[derive(Debug, Clone, clap::Args)]
struct EngineArgs {
    /// Prefix (1-6 letters/digits) of the links and the nftables table the engine creates.
    #[arg(long, env = "BERTH_NETWORK_PREFIX")]
    network_prefix: Option<String>,
    /// Subnet of the default `bridge` network (default 172.28.0.0/16).
    #[arg(long, env = "BERTH_DEFAULT_BRIDGE_SUBNET")]
    default_bridge_subnet: Option<String>,
    /// Reach this registry (HOST[:PORT]) over plain http although it is not on loopback
    /// (repeatable).
    #[arg(
        long = "insecure-registry",
        value_name = "HOST:PORT",
        env = "BERTH_INSECURE_REGISTRIES",
        value_delimiter = ','
    )]
    insecure_registries: Vec<String>,
    /// Try this Docker Hub mirror (http://HOST[:PORT] or https://HOST) before Docker Hub when
    /// pulling docker.io images (repeatable, in order).
    #[arg(
        long = "registry-mirror",
        value_name = "URL",
        env = "BERTH_REGISTRY_MIRRORS",
        value_delimiter = ','
    )]
    registry_mirrors: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum ContainerCommand {
    /// List containers.
    #[command(visible_aliases = ["ps", "list"])]
    Ls(containers::PsArgs),
    /// Create and run a new container from an image.
    Run(run::RunArgs),
    /// Create a new container.
    Create(run::CreateArgs),
    /// Start one or more stopped containers.
    Start(run::StartArgs),
    /// Execute a command in a running container.
    Exec(run::ExecArgs),
    /// Attach local standard input, output and error to a running container.
    Attach(interactive::AttachArgs),
    /// Fetch the logs of a container.
    Logs(containers::LogsArgs),
    /// Stop one or more running containers.
    Stop(containers::StopArgs),
    /// Restart one or more containers.
    Restart(containers::StopArgs),
    /// Kill one or more running containers.
    Kill(containers::KillArgs),
    /// Remove one or more containers.
    #[command(visible_alias = "remove")]
    Rm(containers::RmArgs),
    /// Block until one or more containers stop, then print their exit codes.
    Wait(containers::NamesArgs),
    /// Display detailed information on one or more containers.
    Inspect(containers::TypedInspectArgs),
    /// Display the running processes of a container.
    Top(containers::TopArgs),
    /// Display a live stream of container resource usage statistics.
    Stats(stats::StatsArgs),
    /// Remove all stopped containers.
    Prune(containers::PruneArgs),
}

/// True when the command line names `run`/`create` (whose usage errors exit 125, like Docker).
fn is_run_or_create(args: &[OsString]) -> bool {
    let mut words = Vec::new();
    let mut skip_next = false;
    for a in args.iter().skip(1) {
        let a = a.to_string_lossy();
        if skip_next {
            skip_next = false;
            continue;
        }
        if a.starts_with('-') {
            if matches!(a.as_ref(), "-H" | "--host" | "--root" | "--log-level") {
                skip_next = true;
            }
            continue;
        }
        words.push(a.into_owned());
        if words.len() == 2 {
            break;
        }
    }
    match words.first().map(String::as_str) {
        Some("run" | "create") => true,
        Some("container") => matches!(words.get(1).map(String::as_str), Some("run" | "create")),
        _ => false,
    }
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only on a terminal: log files stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

fn main() {
    // Hidden helper modes (container monitor, exec helper) must run single-threaded, before any
    // async runtime exists; they are dispatched here by argv[1] and never return.
    internal::dispatch_hidden();

    let args: Vec<OsString> = std::env::args_os().collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            match e.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    let _ = e.print();
                    let code = if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                        1
                    } else {
                        0
                    };
                    std::process::exit(code);
                }
                _ => {
                    let rendered = e.render().to_string();
                    let msg = rendered.strip_prefix("error: ").unwrap_or(&rendered);
                    eprint!("berth: {msg}");
                    std::process::exit(if is_run_or_create(&args) { 125 } else { 1 });
                }
            }
        }
    };

    let is_engine = matches!(
        cli.command,
        Command::Engine(_)
            | Command::Server(_)
            | Command::Agent(_)
            | Command::Up(_)
            | Command::Registry(_)
    );
    init_logging(if is_engine {
        &cli.log_level
    } else {
        // The CLI itself only logs warnings unless asked for more.
        match cli.log_level.as_str() {
            "info" => "warn",
            other => other,
        }
    });

    let fail_code = match &cli.command {
        Command::Run(_) | Command::Create(_) => 125,
        Command::Container(ContainerCommand::Run(_) | ContainerCommand::Create(_)) => 125,
        _ => 1,
    };
    if matches!(cli.command, Command::Agent(_)) {
        agent::limit_malloc_arenas();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            errln!("cannot start the async runtime: {e}");
            std::process::exit(fail_code);
        }
    };
    let code = match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            errln!("{e:#}");
            fail_code
        }
    };
    {
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
    }
    // Do not wait for detached tasks (open streams) when exiting.
    runtime.shutdown_background();
    std::process::exit(code);
}

async fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    if let Command::Server(a) = &cli.command {
        return server::serve(a.clone(), &cli.root).await;
    }
    if let Command::Registry(a) = &cli.command {
        return registry::serve(a.clone(), &cli.root).await;
    }
    if let Command::Agent(a) = &cli.command {
        return agent::run(a.clone(), &cli.host, &cli.root).await;
    }
    if let Command::Up(a) = &cli.command {
        return up::up(a.clone(), &cli.host, &cli.root).await;
    }
    if let Command::Engine(a) = &cli.command {
        berth_engine::run_daemon(berth_engine::DaemonOptions {
            host: cli.host.clone(),
            root: cli.root.clone(),
            network_prefix: a.network_prefix.clone(),
            default_bridge_subnet: a.default_bridge_subnet.clone(),
            registries: berth_engine::RegistryOptions {
                insecure: a.insecure_registries.clone(),
                mirrors: a.registry_mirrors.clone(),
            },
        })
        .await?;
        return Ok(0);
    }
    if let Command::Logout(a) = &cli.command {
        return distribution::logout(a.clone()).await;
    }
    if let Command::Version = cli.command {
        return system::version(&cli.host).await;
    }
    let client = EngineClient::new(&cli.host)?;
    let c = &client;
    match cli.command {
        Command::Engine(_)
        | Command::Version
        | Command::Server(_)
        | Command::Agent(_)
        | Command::Registry(_)
        | Command::Logout(_)
        | Command::Up(_) => Ok(0),
        Command::Run(a) => run::run(c, a).await,
        Command::Create(a) => run::create(c, a).await,
        Command::Start(a) => run::start(c, a).await,
        Command::Exec(a) => run::exec(c, a).await,
        Command::Attach(a) => interactive::attach(c, a).await,
        Command::Ps(a) => containers::ps(c, a).await,
        Command::Logs(a) => containers::logs(c, a).await,
        Command::Stop(a) => containers::stop(c, a, false).await,
        Command::Restart(a) => containers::stop(c, a, true).await,
        Command::Kill(a) => containers::kill(c, a).await,
        Command::Rm(a) => containers::rm(c, a).await,
        Command::Wait(a) => containers::wait(c, a).await,
        Command::Inspect(a) => containers::inspect(c, a).await,
        Command::Top(a) => containers::top(c, a).await,
        Command::Stats(a) => stats::stats(c, a).await,
        Command::Container(cmd) => match cmd {
            ContainerCommand::Ls(a) => containers::ps(c, a).await,
            ContainerCommand::Run(a) => run::run(c, a).await,
            ContainerCommand::Create(a) => run::create(c, a).await,
            ContainerCommand::Start(a) => run::start(c, a).await,
            ContainerCommand::Exec(a) => run::exec(c, a).await,
            ContainerCommand::Attach(a) => interactive::attach(c, a).await,
            ContainerCommand::Logs(a) => containers::logs(c, a).await,
            ContainerCommand::Stop(a) => containers::stop(c, a, false).await,
            ContainerCommand::Restart(a) => containers::stop(c, a, true).await,
            ContainerCommand::Kill(a) => containers::kill(c, a).await,
            ContainerCommand::Rm(a) => containers::rm(c, a).await,
            ContainerCommand::Wait(a) => containers::wait(c, a).await,
            ContainerCommand::Inspect(a) => {
                containers::inspect(c, a.into_inspect("container")).await
            }
            ContainerCommand::Top(a) => containers::top(c, a).await,
            ContainerCommand::Stats(a) => stats::stats(c, a).await,
            ContainerCommand::Prune(a) => containers::prune(c, a).await,
        },
        Command::Images(a) => images::ls(c, a).await,
        Command::Image(cmd) => images::dispatch(c, cmd).await,
        Command::Rmi(a) => images::rm(c, a).await,
        Command::Tag(a) => images::tag(c, a).await,
        Command::Build(a) => build::build(c, a).await,
        Command::Import(a) => images::import(c, a).await,
        Command::Load(a) => images::load(c, a).await,
        Command::Save(a) => images::save(c, a).await,
        Command::Pull(a) => distribution::pull(c, a).await,
        Command::Push(a) => distribution::push(c, a).await,
        Command::Login(a) => distribution::login(c, a).await,
        Command::Volume(cmd) => volumes::dispatch(c, cmd).await,
        Command::Network(cmd) => networks::dispatch(c, cmd).await,
        Command::Port(a) => networks::port(c, a).await,
        Command::System(cmd) => system::dispatch(c, cmd).await,
        Command::Events(a) => system::events(c, a).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn detects_run_and_create() {
        assert!(is_run_or_create(&os(&["berth", "run", "--bogus"])));
        assert!(is_run_or_create(&os(&[
            "berth",
            "-H",
            "unix:///x",
            "create"
        ])));
        assert!(is_run_or_create(&os(&["berth", "container", "run", "x"])));
        assert!(!is_run_or_create(&os(&["berth", "ps", "run"])));
        assert!(!is_run_or_create(&os(&["berth", "--root", "run", "ps"])));
    }

    #[test]
    fn clap_definition_is_valid() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
