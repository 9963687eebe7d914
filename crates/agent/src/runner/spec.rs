//! Pure mapping from a task's definition to engine objects: container names, the ECS agent's
//! labels, network modes, task volumes and the engine `ContainerCreate` of each container
//! definition (with the task's container overrides applied).
//!
//! Every field that would change how a container behaves and that Berth cannot honour is an
//! error naming the field: the task then fails to start with that reason, rather than running
//! differently from what its definition says.

use std::collections::BTreeMap;

use berth_api::shapes::agent::{AssignedHostPort, TaskAssignment};
use berth_api::shapes::common::KeyValuePair;
use berth_api::shapes::taskdefs::{ContainerDefinition, TaskDefinition};
use berth_api::shapes::tasks::ContainerOverride;
use berth_engine_client::{ContainerCreate, HealthConfig, HostConfig, PortBinding, Ulimit};
use serde_json::Value;

pub const LABEL_CLUSTER: &str = "com.amazonaws.ecs.cluster";
pub const LABEL_TASK_ARN: &str = "com.amazonaws.ecs.task-arn";
pub const LABEL_CONTAINER_NAME: &str = "com.amazonaws.ecs.container-name";
pub const LABEL_FAMILY: &str = "com.amazonaws.ecs.task-definition-family";
pub const LABEL_VERSION: &str = "com.amazonaws.ecs.task-definition-version";
/// Berth's own label: the container's metadata endpoint token (so an adopted container keeps
/// its endpoint after an agent restart).
pub const LABEL_METADATA_TOKEN: &str = "com.berth.agent.metadata-token";
/// The container name the ECS agent gives the pause container of an awsvpc task.
pub const PAUSE_CONTAINER: &str = "~internal~ecs~pause";
/// Default stop timeout of a container definition (the ECS agent's default), seconds.
pub const DEFAULT_STOP_TIMEOUT: u64 = 30;
/// CPU shares given to a container without `cpu` (Docker's minimum, as the ECS agent does).
pub const MIN_CPU_SHARES: u64 = 2;

const MIB: i64 = 1024 * 1024;

/// The task id: the last segment of the task ARN.
pub fn task_id(task_arn: &str) -> &str {
    task_arn.rsplit('/').next().unwrap_or(task_arn)
}

/// Keeps the characters an engine container name allows.
fn name_part(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect()
}

/// `ecs-<family>-<revision>-<container>-<task id>`, as the ECS agent names containers.
pub fn engine_name(family: &str, revision: u32, container: &str, task_arn: &str) -> String {
    format!(
        "ecs-{}-{}-{}-{}",
        name_part(family),
        revision,
        name_part(container),
        name_part(task_id(task_arn))
    )
}

/// The labels the ECS agent puts on a task's containers.
pub fn agent_labels(a: &TaskAssignment, container: &str) -> BTreeMap<String, String> {
    let mut l = BTreeMap::new();
    l.insert(LABEL_CLUSTER.into(), a.cluster.clone());
    l.insert(LABEL_TASK_ARN.into(), a.task.task_arn.clone());
    l.insert(LABEL_CONTAINER_NAME.into(), container.to_string());
    l.insert(LABEL_FAMILY.into(), a.task_definition.family.clone());
    l.insert(LABEL_VERSION.into(), a.task_definition.revision.to_string());
    l
}

/// A task's network mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetMode {
    Bridge,
    Host,
    None,
    Awsvpc,
}

impl NetMode {
    pub fn as_str(self) -> &'static str {
        match self {
            NetMode::Bridge => "bridge",
            NetMode::Host => "host",
            NetMode::None => "none",
            NetMode::Awsvpc => "awsvpc",
        }
    }
}

/// The task definition's network mode (`bridge` when absent).
pub fn network_mode(td: &TaskDefinition) -> Result<NetMode, String> {
    match td.network_mode.as_deref() {
        None | Some("") | Some("bridge") | Some("default") => Ok(NetMode::Bridge),
        Some("host") => Ok(NetMode::Host),
        Some("none") => Ok(NetMode::None),
        Some("awsvpc") => Ok(NetMode::Awsvpc),
        Some(other) => Err(format!("networkMode {other:?} is not supported")),
    }
}

/// Where a task volume's data lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VolumeSource {
    /// `host.sourcePath`: a bind mount of a host path.
    Host(String),
    /// An engine volume made for this task and removed at cleanup (a volume without
    /// `host.sourcePath`, or `dockerVolumeConfiguration.scope` `task`).
    TaskScoped(String),
    /// A named engine volume that outlives the task (`dockerVolumeConfiguration.scope` `shared`).
    Shared(String),
}

impl VolumeSource {
    /// The source part of an engine bind (`SRC:DST`).
    pub fn bind_source(&self) -> &str {
        match self {
            VolumeSource::Host(p) | VolumeSource::TaskScoped(p) | VolumeSource::Shared(p) => p,
        }
    }
}

/// The task's volumes by name.
pub fn task_volumes(
    td: &TaskDefinition,
    task_arn: &str,
) -> Result<BTreeMap<String, VolumeSource>, String> {
    let mut out = BTreeMap::new();
    for v in &td.volumes {
        let name = v
            .get("name")
            .and_then(Value::as_str)
            .ok_or("a task volume has no name")?;
        for unsupported in [
            "efsVolumeConfiguration",
            "fsxWindowsFileServerVolumeConfiguration",
            "configuredAtLaunch",
        ] {
            if v.get(unsupported)
                .is_some_and(|x| !x.is_null() && x != false)
            {
                return Err(format!("volume {name}: {unsupported} is not supported"));
            }
        }
        let task_scoped = || {
            VolumeSource::TaskScoped(format!(
                "ecs-{}-{}",
                name_part(task_id(task_arn)),
                name_part(name)
            ))
        };
        let source = if let Some(dvc) = v.get("dockerVolumeConfiguration").filter(|x| !x.is_null())
        {
            if let Some(d) = dvc.get("driver").and_then(Value::as_str) {
                if d != "local" {
                    return Err(format!(
                        "volume {name}: dockerVolumeConfiguration.driver {d:?} is not supported (only local)"
                    ));
                }
            }
            if dvc
                .get("driverOpts")
                .and_then(Value::as_object)
                .is_some_and(|o| !o.is_empty())
            {
                return Err(format!(
                    "volume {name}: dockerVolumeConfiguration.driverOpts is not supported"
                ));
            }
            match dvc.get("scope").and_then(Value::as_str) {
                None | Some("task") => task_scoped(),
                Some("shared") => VolumeSource::Shared(name_part(name)),
                Some(other) => {
                    return Err(format!(
                        "volume {name}: dockerVolumeConfiguration.scope {other:?} is not supported"
                    ))
                }
            }
        } else if let Some(p) = v
            .get("host")
            .and_then(|h| h.get("sourcePath"))
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty())
        {
            if !p.starts_with('/') {
                return Err(format!(
                    "volume {name}: host.sourcePath {p:?} must be an absolute path"
                ));
            }
            VolumeSource::Host(p.to_string())
        } else {
            task_scoped()
        };
        out.insert(name.to_string(), source);
    }
    Ok(out)
}

/// What the mapping of one container needs besides its definition.
pub struct SpecContext<'a> {
    pub assignment: &'a TaskAssignment,
    pub net: NetMode,
    pub volumes: &'a BTreeMap<String, VolumeSource>,
    /// Network mode of the engine container: `bridge`, `host`, `none`, `container:<pause id>`.
    pub engine_network: String,
    /// Extra environment (the metadata endpoint variables).
    pub extra_env: Vec<(String, String)>,
    /// Extra labels (the metadata token).
    pub extra_labels: BTreeMap<String, String>,
}

fn str_field<'a>(def: &'a ContainerDefinition, key: &str) -> Option<&'a str> {
    def.extra.get(key).and_then(Value::as_str)
}

fn bool_field(def: &ContainerDefinition, key: &str) -> bool {
    def.extra.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn string_list(v: Option<&Value>, what: &str) -> Result<Vec<String>, String> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("{what} must be a list of strings"))
            })
            .collect(),
        Some(_) => Err(format!("{what} must be a list of strings")),
    }
}

fn present(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(_) => true,
    }
}

/// The override of the named container, if the task has one.
pub fn container_override<'a>(a: &'a TaskAssignment, name: &str) -> Option<&'a ContainerOverride> {
    a.task
        .overrides
        .container_overrides
        .iter()
        .find(|o| o.name.as_deref() == Some(name))
}

/// The engine's `ContainerCreate` for one container definition.
pub fn container_create(
    def: &ContainerDefinition,
    ctx: &SpecContext<'_>,
) -> Result<ContainerCreate, String> {
    let name = def.name.clone().unwrap_or_default();
    let ov = container_override(ctx.assignment, &name);
    let field_err = |f: &str| format!("container {name}: {f} is not supported by the Berth agent");

    for f in [
        "environmentFiles",
        "firelensConfiguration",
        "resourceRequirements",
        "credentialSpecs",
        "systemControls",
    ] {
        if present(def.extra.get(f)) {
            return Err(field_err(f));
        }
    }
    if def.links.as_ref().is_some_and(|l| !l.is_empty()) {
        return Err(field_err("links"));
    }
    if def
        .extra
        .get("restartPolicy")
        .and_then(|r| r.get("enabled"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
    {
        return Err(field_err("restartPolicy"));
    }
    if let Some(o) = ov {
        if o.environment_files.as_ref().is_some_and(|v| !v.is_empty()) {
            return Err(field_err("containerOverrides.environmentFiles"));
        }
        if o.resource_requirements
            .as_ref()
            .is_some_and(|v| !v.is_empty())
        {
            return Err(field_err("containerOverrides.resourceRequirements"));
        }
    }
    if let Some(lc) = def.extra.get("logConfiguration").filter(|v| !v.is_null()) {
        match lc.get("logDriver").and_then(Value::as_str) {
            None | Some("json-file") => {}
            Some(other) => {
                return Err(format!(
                    "container {name}: logConfiguration.logDriver {other:?} is not supported (only json-file)"
                ))
            }
        }
    }
    if bool_field(def, "disableNetworking") && ctx.net != NetMode::None {
        return Err(field_err("disableNetworking"));
    }

    let image = def
        .image
        .clone()
        .filter(|i| !i.is_empty())
        .ok_or_else(|| format!("container {name} has no image"))?;

    let mut c = ContainerCreate {
        image,
        ..ContainerCreate::default()
    };
    c.entrypoint = def.entry_point.clone();
    c.cmd = ov
        .and_then(|o| o.command.clone())
        .or_else(|| def.command.clone());

    // Environment: the definition's, the override's (by name), then the agent's.
    let mut env: Vec<(String, String)> = Vec::new();
    let mut put = |k: &str, v: &str| {
        if let Some(slot) = env.iter_mut().find(|(ek, _)| ek == k) {
            slot.1 = v.to_string();
        } else {
            env.push((k.to_string(), v.to_string()));
        }
    };
    let pairs = |l: &Option<Vec<KeyValuePair>>| -> Vec<(String, String)> {
        l.iter()
            .flatten()
            .filter_map(|kv| {
                kv.name
                    .clone()
                    .map(|n| (n, kv.value.clone().unwrap_or_default()))
            })
            .collect()
    };
    for (k, v) in pairs(&def.environment) {
        put(&k, &v);
    }
    if let Some(o) = ov {
        for (k, v) in pairs(&o.environment) {
            put(&k, &v);
        }
    }
    for (k, v) in &ctx.extra_env {
        put(k, v);
    }
    c.env = env.into_iter().map(|(k, v)| format!("{k}={v}")).collect();

    c.working_dir = str_field(def, "workingDirectory").map(str::to_string);
    c.user = str_field(def, "user").map(str::to_string);
    c.hostname = str_field(def, "hostname").map(str::to_string);
    c.tty = bool_field(def, "pseudoTerminal");
    c.open_stdin = bool_field(def, "interactive");

    // Labels: dockerLabels, then the agent's (which win).
    if let Some(Value::Object(m)) = def.extra.get("dockerLabels") {
        for (k, v) in m {
            if let Some(v) = v.as_str() {
                c.labels.insert(k.clone(), v.to_string());
            }
        }
    }
    c.labels.extend(agent_labels(ctx.assignment, &name));
    c.labels.extend(ctx.extra_labels.clone());

    c.stop_timeout = Some(
        def.stop_timeout
            .filter(|t| *t >= 0)
            .map(|t| t as u64)
            .unwrap_or(DEFAULT_STOP_TIMEOUT),
    );

    if let Some(hc) = &def.health_check {
        c.healthcheck = Some(health_config(hc.command.clone(), hc, &name)?);
    }

    let mut h = HostConfig {
        network_mode: ctx.engine_network.clone(),
        ..HostConfig::default()
    };
    let cpu = ov.and_then(|o| o.cpu).or(def.cpu).unwrap_or(0);
    h.cpu_shares = if cpu <= 0 {
        MIN_CPU_SHARES
    } else {
        (cpu as u64).max(MIN_CPU_SHARES)
    };
    if let Some(m) = ov.and_then(|o| o.memory).or(def.memory) {
        if m > 0 {
            h.memory = m * MIB;
        }
    }
    if let Some(m) = ov
        .and_then(|o| o.memory_reservation)
        .or(def.memory_reservation)
    {
        if m > 0 {
            h.memory_reservation = m * MIB;
        }
    }
    h.readonly_rootfs = bool_field(def, "readonlyRootFilesystem");
    h.privileged = bool_field(def, "privileged");
    h.dns = string_list(def.extra.get("dnsServers"), "dnsServers")?;
    h.dns_search = string_list(def.extra.get("dnsSearchDomains"), "dnsSearchDomains")?;
    if let Some(Value::Array(hosts)) = def.extra.get("extraHosts") {
        for e in hosts {
            let host = e.get("hostname").and_then(Value::as_str);
            let ip = e.get("ipAddress").and_then(Value::as_str);
            match (host, ip) {
                (Some(hn), Some(ip)) => h.extra_hosts.push(format!("{hn}:{ip}")),
                _ => {
                    return Err(format!(
                        "container {name}: extraHosts entries need hostname and ipAddress"
                    ))
                }
            }
        }
    }
    if ctx.net == NetMode::Awsvpc {
        for (f, set) in [
            ("hostname", c.hostname.is_some()),
            ("dnsServers", !h.dns.is_empty()),
            ("dnsSearchDomains", !h.dns_search.is_empty()),
            ("extraHosts", !h.extra_hosts.is_empty()),
        ] {
            if set {
                return Err(format!(
                    "container {name}: {f} is not supported with the awsvpc network mode"
                ));
            }
        }
    }
    if let Some(Value::Array(ulimits)) = def.extra.get("ulimits") {
        for u in ulimits {
            let n = u.get("name").and_then(Value::as_str);
            let soft = u.get("softLimit").and_then(Value::as_i64);
            let hard = u.get("hardLimit").and_then(Value::as_i64);
            match (n, soft, hard) {
                (Some(n), Some(s), Some(hd)) if s >= 0 && hd >= 0 => h.ulimits.push(Ulimit {
                    name: n.to_string(),
                    soft: s as u64,
                    hard: hd as u64,
                }),
                _ => {
                    return Err(format!(
                        "container {name}: ulimits entries need name, softLimit and hardLimit"
                    ))
                }
            }
        }
    }
    if let Some(lp) = def.extra.get("linuxParameters").filter(|v| !v.is_null()) {
        linux_parameters(lp, &mut h, &name)?;
    }

    // Mounts.
    let mut binds = Vec::new();
    for mp in def.mount_points.iter().flatten() {
        binds.push(bind_of(mp, ctx.volumes, &name, None)?);
    }
    for vf in def.volumes_from.iter().flatten() {
        let src = vf.source_container.as_deref().unwrap_or_default();
        let other = ctx
            .assignment
            .task_definition
            .container_definitions
            .iter()
            .find(|d| d.name.as_deref() == Some(src))
            .ok_or_else(|| {
                format!("container {name}: volumesFrom names an unknown container {src:?}")
            })?;
        for mp in other.mount_points.iter().flatten() {
            binds.push(bind_of(mp, ctx.volumes, &name, vf.read_only)?);
        }
    }
    h.binds = binds;

    // Ports.
    for pm in def.port_mappings.iter().flatten() {
        if pm.container_port_range.is_some() {
            return Err(field_err("portMappings.containerPortRange"));
        }
        let Some(cp) = pm.container_port.filter(|p| (1..=65535).contains(p)) else {
            return Err(format!(
                "container {name}: a port mapping has no valid containerPort"
            ));
        };
        let proto = pm.protocol.clone().unwrap_or_else(|| "tcp".into());
        if proto != "tcp" && proto != "udp" {
            return Err(format!(
                "container {name}: port mapping protocol {proto:?} is not supported"
            ));
        }
        let key = format!("{cp}/{proto}");
        c.exposed_ports
            .insert(key.clone(), Value::Object(Default::default()));
        if ctx.net == NetMode::Bridge {
            let host = assigned_host_port(&ctx.assignment.host_ports, &name, cp as u16, &proto)
                .or(pm.host_port.filter(|p| *p > 0).map(|p| p as u16))
                .unwrap_or(0);
            h.port_bindings.entry(key).or_default().push(PortBinding {
                host_ip: String::new(),
                host_port: if host == 0 {
                    String::new()
                } else {
                    host.to_string()
                },
            });
        }
    }
    c.host_config = h;
    Ok(c)
}

/// The host port the scheduler reserved for a mapping.
pub fn assigned_host_port(
    ports: &[AssignedHostPort],
    container: &str,
    container_port: u16,
    proto: &str,
) -> Option<u16> {
    ports
        .iter()
        .find(|p| {
            p.container_name == container
                && p.container_port == container_port
                && p.protocol.eq_ignore_ascii_case(proto)
        })
        .map(|p| p.host_port)
        .filter(|p| *p > 0)
}

fn bind_of(
    mp: &berth_api::shapes::taskdefs::MountPoint,
    volumes: &BTreeMap<String, VolumeSource>,
    name: &str,
    read_only_override: Option<bool>,
) -> Result<String, String> {
    let vol = mp.source_volume.as_deref().unwrap_or_default();
    let src = volumes
        .get(vol)
        .ok_or_else(|| format!("container {name}: mountPoints names an unknown volume {vol:?}"))?;
    let dst = mp
        .container_path
        .as_deref()
        .filter(|p| p.starts_with('/'))
        .ok_or_else(|| {
            format!("container {name}: mount point of {vol} needs an absolute containerPath")
        })?;
    let ro = read_only_override.or(mp.read_only).unwrap_or(false);
    Ok(format!(
        "{}:{dst}{}",
        src.bind_source(),
        if ro { ":ro" } else { "" }
    ))
}

/// `healthCheck` (seconds) -> the engine's health config (nanoseconds), with ECS's defaults
/// (interval 30 s, timeout 5 s, 3 retries, no start period).
pub fn health_config(
    command: Vec<String>,
    hc: &berth_api::shapes::taskdefs::HealthCheck,
    name: &str,
) -> Result<HealthConfig, String> {
    match command.first().map(String::as_str) {
        Some("CMD") | Some("CMD-SHELL") | Some("NONE") => {}
        _ => {
            return Err(format!(
                "container {name}: healthCheck.command must start with CMD or CMD-SHELL"
            ))
        }
    }
    let s = |v: Option<i64>, d: i64| (v.filter(|x| *x >= 0).unwrap_or(d) as u64) * 1_000_000_000;
    Ok(HealthConfig {
        test: command,
        interval: s(hc.interval, 30),
        timeout: s(hc.timeout, 5),
        start_period: s(hc.start_period, 0),
        retries: hc.retries.filter(|r| *r > 0).unwrap_or(3) as u32,
    })
}

fn linux_parameters(lp: &Value, h: &mut HostConfig, name: &str) -> Result<(), String> {
    for f in ["devices", "maxSwap", "swappiness"] {
        if present(lp.get(f)) {
            return Err(format!(
                "container {name}: linuxParameters.{f} is not supported by the Berth agent"
            ));
        }
    }
    if let Some(caps) = lp.get("capabilities").filter(|v| !v.is_null()) {
        let norm = |c: String| {
            let c = c.to_ascii_uppercase();
            if c == "ALL" || c.starts_with("CAP_") {
                c
            } else {
                format!("CAP_{c}")
            }
        };
        h.cap_add = string_list(caps.get("add"), "linuxParameters.capabilities.add")?
            .into_iter()
            .map(norm)
            .collect();
        h.cap_drop = string_list(caps.get("drop"), "linuxParameters.capabilities.drop")?
            .into_iter()
            .map(norm)
            .collect();
    }
    if lp.get("initProcessEnabled").and_then(Value::as_bool) == Some(true) {
        h.init = true;
    }
    if let Some(shm) = lp.get("sharedMemorySize").and_then(Value::as_i64) {
        if shm > 0 {
            h.shm_size = shm * MIB;
        }
    }
    if let Some(Value::Array(t)) = lp.get("tmpfs") {
        for m in t {
            let path = m
                .get("containerPath")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("container {name}: a tmpfs mount needs containerPath"))?;
            let mut opts = string_list(m.get("mountOptions"), "tmpfs.mountOptions")?;
            if let Some(size) = m.get("size").and_then(Value::as_i64) {
                opts.push(format!("size={size}m"));
            }
            h.tmpfs.insert(path.to_string(), opts.join(","));
        }
    }
    Ok(())
}

/// Task-level fields Berth does not support (errors name the field).
pub fn check_task_definition(td: &TaskDefinition) -> Result<(), String> {
    let unsupported = [
        ("pidMode", td.pid_mode.is_some()),
        ("ipcMode", td.ipc_mode.is_some()),
        ("proxyConfiguration", td.proxy_configuration.is_some()),
        (
            "inferenceAccelerators",
            td.inference_accelerators
                .as_ref()
                .is_some_and(|v| !v.is_empty()),
        ),
    ];
    for (f, set) in unsupported {
        if set {
            return Err(format!(
                "task definition field {f} is not supported by the Berth agent"
            ));
        }
    }
    if td.container_definitions.is_empty() {
        return Err("the task definition has no containers".into());
    }
    Ok(())
}

/// Whether a container definition is essential (the default).
pub fn is_essential(def: &ContainerDefinition) -> bool {
    def.essential.unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::shapes::tasks::{Task, TaskOverride};
    use serde_json::json;

    fn assignment(td: Value) -> TaskAssignment {
        let td: TaskDefinition = serde_json::from_value(td).unwrap();
        TaskAssignment {
            cluster: "c1".into(),
            task: Task {
                task_arn: "arn:aws:ecs:r:1:task/c1/abc123".into(),
                desired_status: "RUNNING".into(),
                ..Task::default()
            },
            task_definition: td,
            host_ports: vec![AssignedHostPort {
                container_name: "web".into(),
                container_port: 80,
                host_port: 8080,
                protocol: "tcp".into(),
            }],
        }
    }

    fn td(containers: Value) -> Value {
        json!({"taskDefinitionArn": "arn:td", "family": "fam", "revision": 3, "status": "ACTIVE",
               "containerDefinitions": containers,
               "volumes": [{"name": "data"}, {"name": "hostv", "host": {"sourcePath": "/srv"}},
                           {"name": "sh", "dockerVolumeConfiguration": {"scope": "shared"}}]})
    }

    fn ctx<'a>(
        a: &'a TaskAssignment,
        vols: &'a BTreeMap<String, VolumeSource>,
        net: NetMode,
    ) -> SpecContext<'a> {
        SpecContext {
            assignment: a,
            net,
            volumes: vols,
            engine_network: net.as_str().into(),
            extra_env: vec![(
                "ECS_CONTAINER_METADATA_URI_V4".into(),
                "http://x/v4/t".into(),
            )],
            extra_labels: BTreeMap::new(),
        }
    }

    #[test]
    fn names_and_labels_follow_the_ecs_agent() {
        assert_eq!(task_id("arn:aws:ecs:r:1:task/c1/abc"), "abc");
        assert_eq!(
            engine_name("fam", 3, "web", "arn:aws:ecs:r:1:task/c1/abc"),
            "ecs-fam-3-web-abc"
        );
        assert_eq!(
            engine_name("fam", 3, PAUSE_CONTAINER, "arn:x/abc"),
            "ecs-fam-3-internalecspause-abc"
        );
    }

    #[test]
    fn maps_a_full_container_definition() {
        let mut a = assignment(td(json!([{
            "name": "web", "image": "bb", "cpu": 256, "memory": 128, "memoryReservation": 64,
            "command": ["a"], "entryPoint": ["sh", "-c"],
            "environment": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
            "workingDirectory": "/w", "user": "1000", "hostname": "h",
            "dockerLabels": {"x": "y", "com.amazonaws.ecs.cluster": "fake"},
            "ulimits": [{"name": "nofile", "softLimit": 100, "hardLimit": 200}],
            "linuxParameters": {"capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
                                 "initProcessEnabled": true, "sharedMemorySize": 16,
                                 "tmpfs": [{"containerPath": "/t", "size": 8}]},
            "readonlyRootFilesystem": true, "privileged": false,
            "dnsServers": ["10.0.0.2"], "dnsSearchDomains": ["ex"],
            "extraHosts": [{"hostname": "db", "ipAddress": "10.0.0.9"}],
            "healthCheck": {"command": ["CMD-SHELL", "true"], "interval": 5, "retries": 2},
            "stopTimeout": 7,
            "mountPoints": [{"sourceVolume": "data", "containerPath": "/d"},
                            {"sourceVolume": "hostv", "containerPath": "/h", "readOnly": true},
                            {"sourceVolume": "sh", "containerPath": "/s"}],
            "portMappings": [{"containerPort": 80}, {"containerPort": 53, "protocol": "udp"}]
        }])));
        a.task.overrides = TaskOverride {
            container_overrides: vec![ContainerOverride {
                name: Some("web".into()),
                command: Some(vec!["b".into()]),
                environment: Some(vec![KeyValuePair {
                    name: Some("B".into()),
                    value: Some("3".into()),
                }]),
                memory: Some(256),
                ..Default::default()
            }],
            ..Default::default()
        };
        let vols = task_volumes(&a.task_definition, &a.task.task_arn).unwrap();
        assert_eq!(
            vols["data"],
            VolumeSource::TaskScoped("ecs-abc123-data".into())
        );
        assert_eq!(vols["sh"], VolumeSource::Shared("sh".into()));
        let def = a.task_definition.container_definitions[0].clone();
        let c = container_create(&def, &ctx(&a, &vols, NetMode::Bridge)).unwrap();
        assert_eq!(c.cmd, Some(vec!["b".to_string()]));
        assert_eq!(c.entrypoint, Some(vec!["sh".to_string(), "-c".to_string()]));
        assert_eq!(
            c.env,
            vec!["A=1", "B=3", "ECS_CONTAINER_METADATA_URI_V4=http://x/v4/t"]
        );
        assert_eq!(c.labels["x"], "y");
        assert_eq!(c.labels[LABEL_CLUSTER], "c1");
        assert_eq!(c.labels[LABEL_VERSION], "3");
        assert_eq!(c.stop_timeout, Some(7));
        let hc = c.healthcheck.unwrap();
        assert_eq!(hc.interval, 5_000_000_000);
        assert_eq!(hc.timeout, 5_000_000_000);
        assert_eq!(hc.retries, 2);
        let h = c.host_config;
        assert_eq!(h.cpu_shares, 256);
        assert_eq!(h.memory, 256 * MIB);
        assert_eq!(h.memory_reservation, 64 * MIB);
        assert_eq!(h.cap_add, vec!["CAP_NET_ADMIN"]);
        assert_eq!(h.cap_drop, vec!["ALL"]);
        assert!(h.init && h.readonly_rootfs);
        assert_eq!(h.shm_size, 16 * MIB);
        assert_eq!(h.tmpfs["/t"], "size=8m");
        assert_eq!(h.extra_hosts, vec!["db:10.0.0.9"]);
        assert_eq!(h.binds, vec!["ecs-abc123-data:/d", "/srv:/h:ro", "sh:/s"]);
        assert_eq!(h.port_bindings["80/tcp"][0].host_port, "8080");
        assert_eq!(h.port_bindings["53/udp"][0].host_port, "");
        assert_eq!(h.ulimits[0].soft, 100);
    }

    #[test]
    fn defaults_and_refusals() {
        let a = assignment(td(json!([{"name": "w", "image": "bb", "cpu": 0,
                                         "volumesFrom": [{"sourceContainer": "v", "readOnly": true}]},
                                        {"name": "v", "image": "bb",
                                         "mountPoints": [{"sourceVolume": "data", "containerPath": "/d"}]}])));
        let vols = task_volumes(&a.task_definition, &a.task.task_arn).unwrap();
        let def = a.task_definition.container_definitions[0].clone();
        let c = container_create(&def, &ctx(&a, &vols, NetMode::Bridge)).unwrap();
        assert_eq!(c.host_config.cpu_shares, MIN_CPU_SHARES);
        assert_eq!(c.stop_timeout, Some(DEFAULT_STOP_TIMEOUT));
        assert_eq!(c.host_config.binds, vec!["ecs-abc123-data:/d:ro"]);

        for (bad, field) in [
            (
                json!({"name": "w", "image": "bb", "logConfiguration": {"logDriver": "awslogs"}}),
                "awslogs",
            ),
            (
                json!({"name": "w", "image": "bb", "linuxParameters": {"devices": [{"hostPath": "/dev/x"}]}}),
                "linuxParameters.devices",
            ),
            (
                json!({"name": "w", "image": "bb", "mountPoints": [{"sourceVolume": "nope", "containerPath": "/x"}]}),
                "unknown volume",
            ),
        ] {
            let a = assignment(td(json!([bad])));
            let def = a.task_definition.container_definitions[0].clone();
            let e = container_create(&def, &ctx(&a, &vols, NetMode::Bridge)).unwrap_err();
            assert!(e.contains(field), "{e}");
        }
        let a = assignment(td(json!([{"name": "w", "image": "bb", "hostname": "x"}])));
        let def = a.task_definition.container_definitions[0].clone();
        let e = container_create(&def, &ctx(&a, &vols, NetMode::Awsvpc)).unwrap_err();
        assert!(e.contains("hostname") && e.contains("awsvpc"), "{e}");
        let mut t: TaskDefinition = serde_json::from_value(td(json!([]))).unwrap();
        assert!(check_task_definition(&t).is_err());
        t.network_mode = Some("nat".into());
        assert!(network_mode(&t).unwrap_err().contains("nat"));
        t.network_mode = None;
        assert_eq!(network_mode(&t).unwrap(), NetMode::Bridge);
    }
}
