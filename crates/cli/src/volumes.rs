//! Volume commands: `volume create`, `ls`, `inspect`, `rm` and `prune`.

use anyhow::{bail, Result};
use berth_engine_client::{EngineClient, VolumeCreate};
use clap::{Args, Subcommand};

use crate::containers::{self, TypedInspectArgs};
use crate::format::{self, Table};
use crate::{errln, outln, parse, system, template};

/// `berth volume ...`.
#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Create a volume.
    Create(CreateArgs),
    /// List volumes.
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more volumes.
    Inspect(TypedInspectArgs),
    /// Remove one or more volumes.
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Remove unused volumes.
    Prune(PruneArgs),
}

/// `berth volume create`.
#[derive(Debug, Clone, Args)]
pub struct CreateArgs {
    /// Volume driver name (only "local").
    #[arg(short = 'd', long, default_value = "local")]
    pub driver: String,
    /// Set metadata for a volume (k=v).
    #[arg(long)]
    pub label: Vec<String>,
    #[arg(value_name = "VOLUME")]
    pub name: Option<String>,
}

/// `berth volume ls`.
#[derive(Debug, Clone, Args)]
pub struct LsArgs {
    /// Only display volume names.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Format output using a Go template (fields: Name, Driver, Mountpoint, Labels, Scope).
    #[arg(long)]
    pub format: Option<String>,
}

/// `berth volume rm`.
#[derive(Debug, Clone, Args)]
pub struct RmArgs {
    /// Force the removal of one or more volumes.
    #[arg(short = 'f', long)]
    pub force: bool,
    #[arg(required = true, value_name = "VOLUME")]
    pub names: Vec<String>,
}

/// `berth volume prune`.
#[derive(Debug, Clone, Args)]
pub struct PruneArgs {
    /// Do not prompt for confirmation.
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Remove all unused volumes, not just anonymous ones.
    #[arg(short = 'a', long)]
    pub all: bool,
}

/// Runs a `volume` subcommand.
pub async fn dispatch(client: &EngineClient, cmd: VolumeCommand) -> Result<i32> {
    match cmd {
        VolumeCommand::Create(a) => create(client, a).await,
        VolumeCommand::Ls(a) => ls(client, a).await,
        VolumeCommand::Inspect(a) => containers::inspect(client, a.into_inspect("volume")).await,
        VolumeCommand::Rm(a) => rm(client, a).await,
        VolumeCommand::Prune(a) => prune(client, a).await,
    }
}

async fn create(client: &EngineClient, args: CreateArgs) -> Result<i32> {
    if args.driver != "local" {
        bail!(
            "unsupported volume driver {:?}: only \"local\" is available",
            args.driver
        );
    }
    if let Some(n) = &args.name {
        if !parse::is_volume_name(n) {
            bail!(
                "{n:?} includes invalid characters for a local volume name, only \
                 \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed"
            );
        }
    }
    let req = VolumeCreate {
        name: args.name.clone().unwrap_or_default(),
        labels: parse::parse_key_values("--label", &args.label, true)?,
    };
    let vol = client.create_volume(&req).await?;
    outln!("{}", vol.name);
    Ok(0)
}

async fn ls(client: &EngineClient, args: LsArgs) -> Result<i32> {
    let mut list = client.list_volumes().await?.volumes;
    list.sort_by(|a, b| a.name.cmp(&b.name));
    if args.quiet {
        for v in &list {
            outln!("{}", v.name);
        }
        return Ok(0);
    }
    if let Some(fmt) = &args.format {
        let tpl = template::Template::parse(fmt.strip_prefix("table ").unwrap_or(fmt))?;
        for v in &list {
            let labels = v
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",");
            let value = serde_json::json!({
                "Name": v.name, "Driver": v.driver, "Mountpoint": v.mountpoint,
                "Labels": labels, "Scope": v.scope, "CreatedAt": v.created_at,
            });
            outln!("{}", tpl.render(&value)?);
        }
        return Ok(0);
    }
    let mut t = Table::new(&["DRIVER", "VOLUME NAME"]);
    for v in list {
        let driver = if v.driver.is_empty() {
            "local".to_string()
        } else {
            v.driver
        };
        t.row(vec![driver, v.name]);
    }
    let _ = t.print();
    Ok(0)
}

async fn rm(client: &EngineClient, args: RmArgs) -> Result<i32> {
    let mut code = 0;
    for n in &args.names {
        match client.remove_volume(n, args.force).await {
            Ok(()) => outln!("{n}"),
            Err(e) => {
                errln!("{e}");
                code = 1;
            }
        }
    }
    Ok(code)
}

async fn prune(client: &EngineClient, args: PruneArgs) -> Result<i32> {
    let warning = if args.all {
        "WARNING! This will remove all local volumes not used by at least one container."
    } else {
        "WARNING! This will remove anonymous local volumes not used by at least one container."
    };
    if !args.force && !system::confirm(warning)? {
        return Ok(0);
    }
    let report = client.prune_volumes().await?;
    if !report.volumes_deleted.is_empty() {
        outln!("Deleted Volumes:");
        for v in &report.volumes_deleted {
            outln!("{v}");
        }
        outln!();
    }
    outln!(
        "Total reclaimed space: {}",
        format::human_size(report.space_reclaimed as f64)
    );
    Ok(0)
}
