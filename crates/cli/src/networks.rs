//! Network commands: `network create`, `ls`, `inspect`, `rm`, `prune`, `connect` and
//! `disconnect`; `port`.

use anyhow::Result;
use berth_engine_client::{
    EndpointConfig, EndpointIpamConfig, EngineClient, IpamConfig, NetworkConnect, NetworkCreate,
    NetworkDisconnect, NetworkIpam,
};
use clap::{Args, Subcommand};

use crate::containers::{self, TypedInspectArgs};
use crate::format::Table;
use crate::{errln, outln, parse, system, template};

/// `berth network ...`.
#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create a network.
    Create(CreateArgs),
    /// List networks.
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more networks.
    Inspect(TypedInspectArgs),
    /// Remove one or more networks.
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Remove all unused networks.
    Prune(PruneArgs),
    /// Connect a container to a network.
    Connect(ConnectArgs),
    /// Disconnect a container from a network.
    Disconnect(DisconnectArgs),
}

/// `berth network connect`.
#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// Add a network-scoped alias for the container.
    #[arg(long)]
    pub alias: Vec<String>,
    /// IPv4 address on the network.
    #[arg(long)]
    pub ip: Option<String>,
    #[arg(value_name = "NETWORK")]
    pub network: String,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// `berth network disconnect`.
#[derive(Debug, Clone, Args)]
pub struct DisconnectArgs {
    /// Force the container to disconnect from a network.
    #[arg(short = 'f', long)]
    pub force: bool,
    #[arg(value_name = "NETWORK")]
    pub network: String,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// `berth network create`.
#[derive(Debug, Clone, Args)]
pub struct CreateArgs {
    /// Driver to manage the network (only "bridge").
    #[arg(short = 'd', long, default_value = "bridge")]
    pub driver: String,
    /// Subnet in CIDR format (default: a free /24 of the engine's pool).
    #[arg(long)]
    pub subnet: Option<String>,
    /// IPv4 gateway for the subnet (default: its first address).
    #[arg(long)]
    pub gateway: Option<String>,
    /// Restrict external access to the network.
    #[arg(long)]
    pub internal: bool,
    /// Set metadata on a network (k=v).
    #[arg(long)]
    pub label: Vec<String>,
    #[arg(value_name = "NETWORK")]
    pub name: String,
}

/// `berth network ls`.
#[derive(Debug, Clone, Args)]
pub struct LsArgs {
    /// Only display network IDs.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Do not truncate the output.
    #[arg(long)]
    pub no_trunc: bool,
    /// Format output using a Go template (fields: ID, Name, Driver, Scope, Internal, Subnet).
    #[arg(long)]
    pub format: Option<String>,
}

/// `berth network rm`.
#[derive(Debug, Clone, Args)]
pub struct RmArgs {
    #[arg(required = true, value_name = "NETWORK")]
    pub names: Vec<String>,
}

/// `berth network prune`.
#[derive(Debug, Clone, Args)]
pub struct PruneArgs {
    /// Do not prompt for confirmation.
    #[arg(short = 'f', long)]
    pub force: bool,
}

/// Runs a `network` subcommand.
pub async fn dispatch(client: &EngineClient, cmd: NetworkCommand) -> Result<i32> {
    match cmd {
        NetworkCommand::Create(a) => create(client, a).await,
        NetworkCommand::Ls(a) => ls(client, a).await,
        NetworkCommand::Inspect(a) => containers::inspect(client, a.into_inspect("network")).await,
        NetworkCommand::Rm(a) => rm(client, a).await,
        NetworkCommand::Prune(a) => prune(client, a).await,
        NetworkCommand::Connect(a) => connect(client, a).await,
        NetworkCommand::Disconnect(a) => disconnect(client, a).await,
    }
}

async fn connect(client: &EngineClient, args: ConnectArgs) -> Result<i32> {
    let ipam_config = match &args.ip {
        Some(ip) => Some(EndpointIpamConfig {
            ipv4_address: parse::parse_ip("--ip", ip)?,
        }),
        None => None,
    };
    let req = NetworkConnect {
        container: args.container.clone(),
        endpoint_config: Some(EndpointConfig {
            aliases: args.alias.clone(),
            ipam_config,
        }),
    };
    client.connect_network(&args.network, &req).await?;
    Ok(0)
}

async fn disconnect(client: &EngineClient, args: DisconnectArgs) -> Result<i32> {
    let req = NetworkDisconnect {
        container: args.container.clone(),
        force: args.force,
    };
    client.disconnect_network(&args.network, &req).await?;
    Ok(0)
}

async fn create(client: &EngineClient, args: CreateArgs) -> Result<i32> {
    let config = if args.subnet.is_some() || args.gateway.is_some() {
        vec![IpamConfig {
            subnet: args.subnet.clone().unwrap_or_default(),
            gateway: args.gateway.clone().unwrap_or_default(),
        }]
    } else {
        Vec::new()
    };
    let req = NetworkCreate {
        name: args.name.clone(),
        driver: args.driver.clone(),
        internal: args.internal,
        ipam: NetworkIpam {
            driver: "default".into(),
            config,
        },
        labels: parse::parse_key_values("--label", &args.label, true)?,
    };
    let created = client.create_network(&req).await?;
    outln!("{}", created.id);
    Ok(0)
}

async fn ls(client: &EngineClient, args: LsArgs) -> Result<i32> {
    let list = client.list_networks().await?;
    let short = |id: &str| {
        if args.no_trunc {
            id.to_string()
        } else {
            id[..12.min(id.len())].to_string()
        }
    };
    if args.quiet {
        for n in &list {
            outln!("{}", short(&n.id));
        }
        return Ok(0);
    }
    if let Some(fmt) = &args.format {
        let tpl = template::Template::parse(fmt.strip_prefix("table ").unwrap_or(fmt))?;
        for n in &list {
            let value = serde_json::json!({
                "ID": short(&n.id), "Name": n.name, "Driver": n.driver, "Scope": n.scope,
                "Internal": n.internal,
                "Subnet": n.ipam.config.first().map(|c| c.subnet.clone()).unwrap_or_default(),
            });
            outln!("{}", tpl.render(&value)?);
        }
        return Ok(0);
    }
    let mut t = Table::new(&["NETWORK ID", "NAME", "DRIVER", "SCOPE"]);
    for n in list {
        t.row(vec![short(&n.id), n.name, n.driver, n.scope]);
    }
    let _ = t.print();
    Ok(0)
}

async fn rm(client: &EngineClient, args: RmArgs) -> Result<i32> {
    let mut code = 0;
    for n in &args.names {
        match client.remove_network(n).await {
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
    if !args.force
        && !system::confirm(
            "WARNING! This will remove all custom networks not used by at least one container.",
        )?
    {
        return Ok(0);
    }
    let report = client.prune_networks().await?;
    if !report.networks_deleted.is_empty() {
        outln!("Deleted Networks:");
        for n in &report.networks_deleted {
            outln!("{n}");
        }
    }
    Ok(0)
}

/// `berth port CONTAINER [PORT[/PROTO]]`.
#[derive(Debug, Clone, Args)]
pub struct PortArgs {
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// Only this container port (`80` or `80/tcp`).
    #[arg(value_name = "PORT")]
    pub port: Option<String>,
}

/// Prints `80/tcp -> 127.0.0.1:8080` lines (or only `127.0.0.1:8080` for one port), as Docker.
pub async fn port(client: &EngineClient, args: PortArgs) -> Result<i32> {
    let c = client.inspect_container(&args.container).await?;
    let want = args.port.as_ref().map(|p| {
        if p.contains('/') {
            p.clone()
        } else {
            format!("{p}/tcp")
        }
    });
    let mut any = false;
    for (key, list) in &c.network_settings.ports {
        if want.as_ref().is_some_and(|w| w != key) {
            continue;
        }
        for b in list {
            any = true;
            if want.is_some() {
                outln!("{}:{}", b.host_ip, b.host_port);
            } else {
                outln!("{key} -> {}:{}", b.host_ip, b.host_port);
            }
        }
    }
    if let (Some(w), false) = (&want, any) {
        errln!("no public port '{w}' published for {}", args.container);
        return Ok(1);
    }
    Ok(0)
}
