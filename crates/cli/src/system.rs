//! Engine-wide commands: `version`, `system df`, `system prune`, `events`, and the
//! "Are you sure you want to continue? [y/N]" prompt shared by the prune commands.

use std::io::{BufRead, Write};

use anyhow::{Context, Result};
use berth_engine_client::{DiskUsage, EngineClient, Event};
use clap::{Args, Subcommand};
use futures_util::StreamExt;

use crate::format::{self, Table};
use crate::{errln, outln, parse};

/// `berth system ...`.
#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Show disk usage.
    Df,
    /// Remove unused data.
    Prune(PruneArgs),
    /// Get real time events from the engine.
    Events(EventsArgs),
}

/// `berth system prune`.
#[derive(Debug, Clone, Args)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones.
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Prune anonymous volumes.
    #[arg(long)]
    pub volumes: bool,
    /// Do not prompt for confirmation.
    #[arg(short = 'f', long)]
    pub force: bool,
}

/// `berth events`.
#[derive(Debug, Clone, Args)]
pub struct EventsArgs {
    /// Show all events created since a timestamp.
    #[arg(long)]
    pub since: Option<String>,
    /// Stream events until this timestamp.
    #[arg(long)]
    pub until: Option<String>,
    /// Filter output based on conditions provided (key=value).
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Format each event with a Go template (e.g. `{{json .}}`).
    #[arg(long)]
    pub format: Option<String>,
}

/// Runs a `system` subcommand.
pub async fn dispatch(client: &EngineClient, cmd: SystemCommand) -> Result<i32> {
    match cmd {
        SystemCommand::Df => df(client).await,
        SystemCommand::Prune(a) => prune(client, a).await,
        SystemCommand::Events(a) => events(client, a).await,
    }
}

/// Prints `warning` and asks for confirmation on stdin; true for `y`/`yes`.
pub fn confirm(warning: &str) -> Result<bool> {
    let mut err = std::io::stderr();
    let _ = write!(
        std::io::stdout(),
        "{warning}\nAre you sure you want to continue? [y/N] "
    );
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("read the answer")?;
    let yes = matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes");
    if !yes {
        let _ = err.flush();
    }
    Ok(yes)
}

/// `berth version`: the client's version, then the engine's (exit 1 if unreachable).
pub async fn version(host: &str) -> Result<i32> {
    outln!("Client:");
    outln!(" Version:           {}", env!("CARGO_PKG_VERSION"));
    outln!(
        " OS/Arch:           {}/{}",
        std::env::consts::OS,
        go_arch(std::env::consts::ARCH)
    );
    outln!();
    let client = EngineClient::new(host)?;
    let v = client.version().await?;
    outln!("Server:");
    outln!(" Engine:");
    outln!("  Version:          {}", v.version);
    outln!("  API version:      {}", v.api_version);
    outln!("  OS/Arch:          {}/{}", v.os, v.arch);
    outln!("  Kernel Version:   {}", v.kernel_version);
    outln!("  Cgroup Version:   {}", v.cgroup_version);
    outln!("  Root Dir:         {}", v.root_dir);
    Ok(0)
}

fn go_arch(a: &str) -> &str {
    match a {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn percent(part: i64, total: i64) -> String {
    if total <= 0 {
        return "0%".into();
    }
    format!("{}%", (part as f64 * 100.0 / total as f64).round() as i64)
}

/// Renders Docker's `system df` table.
pub fn render_df(du: &DiskUsage) -> String {
    let mut t = Table::new(&["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]);
    let images_total: i64 = if du.layers_size > 0 {
        du.layers_size
    } else {
        du.images.iter().map(|i| i.size).sum()
    };
    let active_images = du.images.iter().filter(|i| i.containers > 0).count();
    let used: i64 = du
        .images
        .iter()
        .filter(|i| i.containers > 0)
        .map(|i| i.size)
        .sum();
    let reclaim = (images_total - used).max(0);
    t.row(vec![
        "Images".into(),
        du.images.len().to_string(),
        active_images.to_string(),
        format::human_size(images_total as f64),
        format!(
            "{} ({})",
            format::human_size(reclaim as f64),
            percent(reclaim, images_total)
        ),
    ]);
    let c_total: i64 = du.containers.iter().map(|c| c.size_rw).sum();
    let running = du
        .containers
        .iter()
        .filter(|c| c.state == "running")
        .count();
    let c_reclaim: i64 = du
        .containers
        .iter()
        .filter(|c| c.state != "running")
        .map(|c| c.size_rw)
        .sum();
    t.row(vec![
        "Containers".into(),
        du.containers.len().to_string(),
        running.to_string(),
        format::human_size(c_total as f64),
        format!(
            "{} ({})",
            format::human_size(c_reclaim as f64),
            percent(c_reclaim, c_total)
        ),
    ]);
    let v_total: i64 = du.volumes.iter().map(|v| v.size.max(0)).sum();
    let v_active = du.volumes.iter().filter(|v| v.ref_count > 0).count();
    let v_reclaim: i64 = du
        .volumes
        .iter()
        .filter(|v| v.ref_count == 0)
        .map(|v| v.size.max(0))
        .sum();
    t.row(vec![
        "Local Volumes".into(),
        du.volumes.len().to_string(),
        v_active.to_string(),
        format::human_size(v_total as f64),
        format!(
            "{} ({})",
            format::human_size(v_reclaim as f64),
            percent(v_reclaim, v_total)
        ),
    ]);
    t.row(vec![
        "Build Cache".into(),
        "0".into(),
        "0".into(),
        "0B".into(),
        "0B".into(),
    ]);
    t.render()
}

/// `berth system df`.
pub async fn df(client: &EngineClient) -> Result<i32> {
    let du = client.disk_usage().await?;
    let _ = std::io::stdout().write_all(render_df(&du).as_bytes());
    Ok(0)
}

/// `berth system prune`.
pub async fn prune(client: &EngineClient, args: PruneArgs) -> Result<i32> {
    if !args.force {
        let mut warning = String::from("WARNING! This will remove:\n  - all stopped containers\n");
        if args.volumes {
            warning.push_str("  - all anonymous volumes not used by at least one container\n");
        }
        if args.all {
            warning.push_str("  - all images without at least one container associated to them\n");
        } else {
            warning.push_str("  - all dangling images\n");
        }
        if !confirm(&warning)? {
            return Ok(0);
        }
    }
    let report = client.system_prune(args.all, args.volumes).await?;
    let sections = [
        ("Deleted Containers:", &report.containers_deleted, ""),
        ("Deleted Volumes:", &report.volumes_deleted, ""),
        ("Deleted Images:", &report.images_deleted, "deleted: "),
    ];
    for (title, items, prefix) in sections {
        if !items.is_empty() {
            outln!("{title}");
            for i in items {
                outln!("{prefix}{i}");
            }
            outln!();
        }
    }
    outln!(
        "Total reclaimed space: {}",
        format::human_size(report.space_reclaimed as f64)
    );
    Ok(0)
}

/// One event line as Docker prints it:
/// `2024-01-02T15:04:05.000000000Z container start <id> (image=alpine, name=web)`.
pub fn format_event(e: &Event) -> String {
    let (secs, nanos) = if e.time_nano != 0 {
        (
            e.time_nano.div_euclid(1_000_000_000),
            e.time_nano.rem_euclid(1_000_000_000) as u32,
        )
    } else {
        (e.time, 0)
    };
    let time = chrono::DateTime::from_timestamp(secs, nanos)
        .map(|d| {
            d.with_timezone(&chrono::Local)
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
        })
        .unwrap_or_default();
    let mut line = format!("{time} {} {} {}", e.kind, e.action, e.actor.id);
    if !e.actor.attributes.is_empty() {
        let attrs: Vec<String> = e
            .actor
            .attributes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        line.push_str(&format!(" ({})", attrs.join(", ")));
    }
    line
}

/// `berth events`.
pub async fn events(client: &EngineClient, args: EventsArgs) -> Result<i32> {
    let now = format::now_unix();
    let since = match &args.since {
        Some(s) => Some(parse::parse_timestamp("--since", s, now)?),
        None => None,
    };
    let until = match &args.until {
        Some(s) => Some(parse::parse_timestamp("--until", s, now)?),
        None => None,
    };
    let filters = parse::parse_filters(&args.filter)?;
    let mut stream = client.events(since, until, &filters).await?;
    loop {
        tokio::select! {
            item = stream.next() => match item {
                None => return Ok(0),
                Some(Ok(e)) => {
                    let line = match &args.format {
                        Some(t) => crate::template::render(t, &serde_json::to_value(&e)?)?,
                        None => format_event(&e),
                    };
                    let mut out = std::io::stdout().lock();
                    if writeln!(out, "{line}").is_err() || out.flush().is_err() {
                        return Ok(0);
                    }
                }
                Some(Err(e)) => {
                    errln!("{e}");
                    return Ok(1);
                }
            },
            _ = tokio::signal::ctrl_c() => return Ok(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_engine_client::{ContainerUsage, EventActor, ImageSummary, VolumeUsage};

    #[test]
    fn df_table() {
        let du = DiskUsage {
            layers_size: 0,
            images: vec![
                ImageSummary {
                    size: 4_260_000,
                    containers: 1,
                    ..Default::default()
                },
                ImageSummary {
                    size: 1_000_000,
                    containers: 0,
                    ..Default::default()
                },
            ],
            containers: vec![ContainerUsage {
                state: "exited".into(),
                size_rw: 2000,
                ..Default::default()
            }],
            volumes: vec![VolumeUsage {
                name: "v".into(),
                size: 0,
                ref_count: 0,
            }],
        };
        let out = render_df(&du);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE"
        );
        assert_eq!(
            lines[1],
            "Images          2         1         5.26MB    1MB (19%)"
        );
        assert_eq!(
            lines[2],
            "Containers      1         0         2kB       2kB (100%)"
        );
        assert_eq!(
            lines[3],
            "Local Volumes   1         0         0B        0B (0%)"
        );
    }

    #[test]
    fn event_lines() {
        let mut attributes = std::collections::BTreeMap::new();
        attributes.insert("name".to_string(), "web".to_string());
        attributes.insert("image".to_string(), "alpine".to_string());
        let e = Event {
            kind: "container".into(),
            action: "start".into(),
            actor: EventActor {
                id: "abc".into(),
                attributes,
            },
            time: 1_700_000_000,
            time_nano: 1_700_000_000_123_456_789,
        };
        let line = format_event(&e);
        assert!(
            line.ends_with(" container start abc (image=alpine, name=web)"),
            "{line}"
        );
        assert!(line.contains(".123456789"), "{line}");
    }
}
