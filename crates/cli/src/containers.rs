//! Container commands other than run/create/start/exec: `ps`, `logs`, `stop`, `restart`,
//! `kill`, `rm`, `wait`, `inspect`, `top` and `container prune`.
//!
//! Commands taking several containers act on each, print the name as the user gave it on
//! success, print `berth: <error>` for each failure and exit 1 if any failed, like Docker.

use anyhow::{bail, Result};
use berth_engine_client::client::LogsOptions;
use berth_engine_client::{ContainerSummary, EngineClient};
use clap::Args;
use serde_json::{json, Value};

use crate::format::{self, Table};
use crate::{errln, outln, parse, run, system, template};

/// `berth ps`.
#[derive(Debug, Clone, Args)]
pub struct PsArgs {
    /// Show all containers (default shows just running).
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only display container IDs.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Don't truncate output.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Filter output based on conditions provided (key=value).
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a Go template (fields: ID, Image, Command, CreatedAt, RunningFor,
    /// Ports, State, Status, Names, Labels).
    #[arg(long)]
    pub format: Option<String>,
}

/// `berth logs`.
#[derive(Debug, Clone, Args)]
pub struct LogsArgs {
    /// Follow log output.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Show timestamps.
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// Number of lines to show from the end of the logs ("all" or a number).
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Show logs since a timestamp (e.g. 2024-01-02T13:23:37Z) or relative (e.g. 42m).
    #[arg(long)]
    pub since: Option<String>,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// `berth stop` / `berth restart`.
#[derive(Debug, Clone, Args)]
pub struct StopArgs {
    /// Seconds to wait before killing the container.
    #[arg(short = 't', long = "time", allow_negative_numbers = true)]
    pub time: Option<i64>,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// `berth kill`.
#[derive(Debug, Clone, Args)]
pub struct KillArgs {
    /// Signal to send to the container.
    #[arg(short = 's', long, default_value = "KILL")]
    pub signal: String,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// `berth rm`.
#[derive(Debug, Clone, Args)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL).
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Remove anonymous volumes associated with the container.
    #[arg(short = 'v', long)]
    pub volumes: bool,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// Commands that take only container names.
#[derive(Debug, Clone, Args)]
pub struct NamesArgs {
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// `berth inspect`.
#[derive(Debug, Clone, Args)]
pub struct InspectArgs {
    /// Format output using a Go template.
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    /// Only inspect objects of this type (container, image or volume).
    #[arg(long = "type")]
    pub kind: Option<String>,
    #[arg(required = true, value_name = "NAME|ID")]
    pub names: Vec<String>,
}

/// `berth container inspect` / `image inspect` / `volume inspect`.
#[derive(Debug, Clone, Args)]
pub struct TypedInspectArgs {
    /// Format output using a Go template.
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    #[arg(required = true, value_name = "NAME|ID")]
    pub names: Vec<String>,
}

impl TypedInspectArgs {
    /// As an `inspect --type KIND`.
    pub fn into_inspect(self, kind: &str) -> InspectArgs {
        InspectArgs {
            format: self.format,
            kind: Some(kind.to_string()),
            names: self.names,
        }
    }
}

/// `berth top`.
#[derive(Debug, Clone, Args)]
pub struct TopArgs {
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// `berth container prune`.
#[derive(Debug, Clone, Args)]
pub struct PruneArgs {
    /// Do not prompt for confirmation.
    #[arg(short = 'f', long)]
    pub force: bool,
}

fn container_name(c: &ContainerSummary) -> String {
    c.names
        .iter()
        .map(|n| n.trim_start_matches('/').to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The fields of `ps --format`.
fn ps_fields(c: &ContainerSummary, no_trunc: bool, now: i64) -> Value {
    let id = if no_trunc {
        c.id.clone()
    } else {
        format::short_id(&c.id)
    };
    let labels = c
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let created_at = chrono::DateTime::from_timestamp(c.created, 0)
        .map(|d| {
            d.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S %z %Z")
                .to_string()
        })
        .unwrap_or_default();
    json!({
        "ID": id,
        "Image": c.image,
        "Command": format::quote_command(&c.command, no_trunc),
        "CreatedAt": created_at,
        "RunningFor": format::ago(c.created, now),
        "Ports": "",
        "State": c.state,
        "Status": c.status,
        "Names": container_name(c),
        "Labels": labels,
        "Mounts": "",
        "Networks": "",
    })
}

/// `berth ps`.
pub async fn ps(client: &EngineClient, args: PsArgs) -> Result<i32> {
    let filters = parse::parse_filters(&args.filter)?;
    let list = client.list_containers(args.all, &filters).await?;
    let now = format::now_unix();
    if args.quiet {
        for c in &list {
            if args.no_trunc {
                outln!("{}", c.id);
            } else {
                outln!("{}", format::short_id(&c.id));
            }
        }
        return Ok(0);
    }
    if let Some(fmt) = &args.format {
        let tpl = template::Template::parse(fmt.strip_prefix("table ").unwrap_or(fmt))?;
        for c in &list {
            outln!("{}", tpl.render(&ps_fields(c, args.no_trunc, now))?);
        }
        return Ok(0);
    }
    let mut t = Table::new(&[
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ]);
    for c in &list {
        let image = if c.image.starts_with("sha256:") && !args.no_trunc {
            format::short_id(&c.image)
        } else {
            c.image.clone()
        };
        t.row(vec![
            if args.no_trunc {
                c.id.clone()
            } else {
                format::short_id(&c.id)
            },
            image,
            format::quote_command(&c.command, args.no_trunc),
            format::ago(c.created, now),
            c.status.clone(),
            String::new(),
            container_name(c),
        ]);
    }
    let _ = t.print();
    Ok(0)
}

/// `berth logs`.
pub async fn logs(client: &EngineClient, args: LogsArgs) -> Result<i32> {
    let tail = match args.tail.as_str() {
        "all" | "" => None,
        n => match n.parse::<i64>() {
            Ok(v) if v < 0 => None,
            Ok(v) => Some(v as u64),
            Err(_) => bail!("invalid value {n:?} for --tail: expected a number or \"all\""),
        },
    };
    let since = match &args.since {
        Some(s) => Some(parse::parse_timestamp("--since", s, format::now_unix())?),
        None => None,
    };
    let opts = LogsOptions {
        follow: args.follow,
        timestamps: args.timestamps,
        tail,
        since,
        ..LogsOptions::default()
    };
    let frames = client.logs(&args.container, &opts).await?;
    run::relay(frames).await?;
    Ok(0)
}

/// Runs `op` on every name concurrently; prints the name on success and the error otherwise.
async fn for_each<F, Fut>(names: &[String], op: F) -> i32
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), berth_engine_client::ClientError>>,
{
    let results = futures_util::future::join_all(names.iter().map(|n| op(n.clone()))).await;
    let mut code = 0;
    for (name, r) in names.iter().zip(results) {
        match r {
            Ok(()) => outln!("{name}"),
            Err(e) => {
                errln!("{e}");
                code = 1;
            }
        }
    }
    code
}

/// `berth stop` / `berth restart`.
pub async fn stop(client: &EngineClient, args: StopArgs, restart: bool) -> Result<i32> {
    let t = args.time;
    Ok(for_each(&args.containers, |n| async move {
        if restart {
            client.restart_container(&n, t).await
        } else {
            client.stop_container(&n, t).await.map(|_| ())
        }
    })
    .await)
}

/// `berth kill`.
pub async fn kill(client: &EngineClient, args: KillArgs) -> Result<i32> {
    let sig = parse::parse_signal(&args.signal)?;
    let sig = &sig;
    Ok(for_each(&args.containers, |n| async move {
        client.kill_container(&n, Some(sig)).await
    })
    .await)
}

/// `berth rm`.
pub async fn rm(client: &EngineClient, args: RmArgs) -> Result<i32> {
    let (force, volumes) = (args.force, args.volumes);
    Ok(for_each(&args.containers, |n| async move {
        client.remove_container(&n, force, volumes).await
    })
    .await)
}

/// `berth wait`: prints each container's exit code.
pub async fn wait(client: &EngineClient, args: NamesArgs) -> Result<i32> {
    let results = futures_util::future::join_all(
        args.containers
            .iter()
            .map(|n| client.wait_container(n, Some("not-running"))),
    )
    .await;
    let mut code = 0;
    for r in results {
        match r {
            Ok(w) => outln!("{}", w.status_code),
            Err(e) => {
                errln!("{e}");
                code = 1;
            }
        }
    }
    Ok(code)
}

/// Looks one name up as the allowed object types, in Docker's order (container, image, volume).
async fn inspect_one(
    client: &EngineClient,
    name: &str,
    kind: Option<&str>,
) -> Result<Value, String> {
    let kinds: &[&str] = match kind {
        Some("container") => &["container"],
        Some("image") => &["image"],
        Some("volume") => &["volume"],
        Some("network") => &["network"],
        Some(other) => return Err(format!("{other:?} is not a valid value for --type")),
        None => &["container", "image", "volume", "network"],
    };
    for k in kinds {
        let r = match *k {
            "container" => client.inspect_container_raw(name).await,
            "image" => client.inspect_image_raw(name).await,
            "network" => client.inspect_network_raw(name).await,
            _ => client.inspect_volume_raw(name).await,
        };
        match r {
            Ok(v) => return Ok(v),
            Err(e) if e.is_not_found() => {
                if kinds.len() == 1 {
                    return Err(match *k {
                        "container" => format!("No such container: {name}"),
                        "image" => format!("No such image: {name}"),
                        "network" => format!("network {name} not found"),
                        _ => format!("No such volume: {name}"),
                    });
                }
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Err(format!("No such object: {name}"))
}

/// `berth inspect` (and the typed `container/image/volume inspect`).
pub async fn inspect(client: &EngineClient, args: InspectArgs) -> Result<i32> {
    let tpl = match &args.format {
        Some(f) => Some(template::Template::parse(f)?),
        None => None,
    };
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for name in &args.names {
        match inspect_one(client, name, args.kind.as_deref()).await {
            Ok(v) => found.push(v),
            Err(e) => errors.push(e),
        }
    }
    let mut code = 0;
    match &tpl {
        Some(tpl) => {
            for v in &found {
                match tpl.render(v) {
                    Ok(s) => outln!("{s}"),
                    Err(e) => {
                        errln!("{e}");
                        code = 1;
                    }
                }
            }
        }
        None => outln!("{}", format::pretty_json(&Value::Array(found))),
    }
    for e in &errors {
        errln!("{e}");
    }
    if !errors.is_empty() {
        code = 1;
    }
    Ok(code)
}

/// `berth top`.
pub async fn top(client: &EngineClient, args: TopArgs) -> Result<i32> {
    let top = client.top(&args.container).await?;
    let titles: Vec<&str> = top.titles.iter().map(String::as_str).collect();
    let mut t = Table::new(&titles).min_width(20);
    for p in top.processes {
        t.row(p);
    }
    let _ = t.print();
    Ok(0)
}

/// `berth container prune`.
pub async fn prune(client: &EngineClient, args: PruneArgs) -> Result<i32> {
    if !args.force && !system::confirm("WARNING! This will remove all stopped containers.")? {
        return Ok(0);
    }
    let report = client.prune_containers().await?;
    if !report.containers_deleted.is_empty() {
        outln!("Deleted Containers:");
        for c in &report.containers_deleted {
            outln!("{c}");
        }
        outln!();
    }
    outln!(
        "Total reclaimed space: {}",
        format::human_size(report.space_reclaimed as f64)
    );
    Ok(0)
}
