//! Request validation with ECS's limits and error codes. Pure functions, no I/O.
//!
//! Parameter-shape problems (counts, enums, names) are `InvalidParameterException`; problems in
//! the content of a task definition's container definitions are `ClientException`, as ECS
//! answers them.

use std::collections::{HashMap, HashSet};

use crate::shapes::{ContainerDefinition, RegisterTaskDefinitionRequest, Tag};
use crate::EcsError;

/// ECS's limit on `RunTask` `count`.
pub const MAX_RUN_TASK_COUNT: i64 = 10;
/// ECS's limit on the tasks of one `DescribeTasks`.
pub const MAX_DESCRIBE_TASKS: usize = 100;
/// ECS's limit on the clusters of one `DescribeClusters`.
pub const MAX_DESCRIBE_CLUSTERS: usize = 100;
/// ECS's limit on the container instances of one `DescribeContainerInstances`.
pub const MAX_DESCRIBE_INSTANCES: usize = 100;
/// ECS's limit on the containers of one task definition.
pub const MAX_CONTAINERS: usize = 10;
/// ECS's limit on tags per resource.
pub const MAX_TAGS: usize = 50;
/// ECS's limit on the task definitions of one `DeleteTaskDefinitions`.
pub const MAX_DELETE_TASK_DEFINITIONS: usize = 10;
/// ECS's limit on `StartTask` container instances.
pub const MAX_START_TASK_INSTANCES: usize = 10;
/// ECS's limit on the attributes of one `PutAttributes`/`DeleteAttributes`.
pub const MAX_ATTRIBUTES_PER_CALL: usize = 10;

/// Whether `s` is an ECS name: 1 to 255 letters, digits, hyphens and underscores.
pub fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Checks a cluster (or other resource) name.
pub fn name(kind: &str, s: &str) -> Result<(), EcsError> {
    if is_name(s) {
        Ok(())
    } else {
        Err(EcsError::invalid(format!(
            "invalid {kind} name `{s}`: use 1 to 255 letters, digits, hyphens and underscores"
        )))
    }
}

/// Checks the number of items of a batch call.
pub fn batch(what: &str, len: usize, min: usize, max: usize) -> Result<(), EcsError> {
    if len < min || len > max {
        return Err(EcsError::invalid(format!(
            "{what} must have between {min} and {max} items, got {len}"
        )));
    }
    Ok(())
}

/// The `RunTask` count: 1 to 10, default 1.
pub fn run_task_count(count: Option<i64>) -> Result<u32, EcsError> {
    match count.unwrap_or(1) {
        n @ 1..=MAX_RUN_TASK_COUNT => Ok(n as u32),
        n => Err(EcsError::invalid(format!(
            "count must be between 1 and {MAX_RUN_TASK_COUNT}, got {n}"
        ))),
    }
}

/// Checks tags: at most 50, keys 1..=128 characters not starting with `aws:`, values up to 256.
pub fn tags(tags: &[Tag]) -> Result<(), EcsError> {
    if tags.len() > MAX_TAGS {
        return Err(EcsError::invalid(format!(
            "too many tags: {} given, the limit is {MAX_TAGS}",
            tags.len()
        )));
    }
    for t in tags {
        let key = t.key.as_deref().unwrap_or("");
        if key.is_empty() || key.chars().count() > 128 {
            return Err(EcsError::invalid(format!(
                "invalid tag key `{key}`: keys are 1 to 128 characters"
            )));
        }
        if key.to_ascii_lowercase().starts_with("aws:") {
            return Err(EcsError::invalid(format!(
                "invalid tag key `{key}`: the aws: prefix is reserved"
            )));
        }
        if t.value.as_deref().unwrap_or("").chars().count() > 256 {
            return Err(EcsError::invalid(format!(
                "invalid value for tag `{key}`: values are at most 256 characters"
            )));
        }
    }
    Ok(())
}

/// Merges `new` tags into `existing` (same key: replaced).
pub fn merge_tags(existing: &mut Vec<Tag>, new: &[Tag]) {
    for t in new {
        match existing.iter_mut().find(|e| e.key == t.key) {
            Some(e) => e.value = t.value.clone(),
            None => existing.push(t.clone()),
        }
    }
}

/// Checks a value against an enum's allowed spellings.
pub fn one_of(what: &str, value: &str, allowed: &[&str]) -> Result<(), EcsError> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(EcsError::invalid(format!(
            "invalid {what} `{value}`: use one of {}",
            allowed.join(", ")
        )))
    }
}

/// Checks cluster settings (`containerInsights` = `enabled`/`disabled`/`enhanced`).
pub fn cluster_settings(settings: &[crate::shapes::ClusterSetting]) -> Result<(), EcsError> {
    for s in settings {
        one_of(
            "cluster setting name",
            s.name.as_deref().unwrap_or(""),
            &["containerInsights"],
        )?;
        one_of(
            "containerInsights value",
            s.value.as_deref().unwrap_or(""),
            &["enabled", "disabled", "enhanced"],
        )?;
    }
    Ok(())
}

/// Task-level CPU: units (`"1024"`) or vCPUs (`"1 vCPU"`, `"0.5 vcpu"`), as units.
pub fn task_cpu(s: &str) -> Result<u32, EcsError> {
    let bad = || {
        EcsError::client(format!(
            "invalid task cpu `{s}`: use CPU units (\"1024\") or vCPUs (\"1 vCPU\")"
        ))
    };
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let units = if let Some(v) = lower.strip_suffix("vcpu") {
        let v: f64 = v.trim().parse().map_err(|_| bad())?;
        (v * 1024.0).round()
    } else {
        t.parse::<u32>().map_err(|_| bad())? as f64
    };
    if !(128.0..=196_608.0).contains(&units) {
        return Err(EcsError::client(format!(
            "invalid task cpu `{s}`: it must be between 128 units (0.125 vCPU) and 196608 units"
        )));
    }
    Ok(units as u32)
}

/// Task-level memory: MiB (`"512"`) or GB (`"1 GB"`, `"2GB"`), as MiB.
pub fn task_memory(s: &str) -> Result<u32, EcsError> {
    let bad = || {
        EcsError::client(format!(
            "invalid task memory `{s}`: use MiB (\"512\") or GB (\"1 GB\")"
        ))
    };
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let mib = if let Some(v) = lower.strip_suffix("gb") {
        let v: f64 = v.trim().parse().map_err(|_| bad())?;
        (v * 1024.0).round()
    } else {
        t.parse::<u32>().map_err(|_| bad())? as f64
    };
    if !(6.0..=4_194_304.0).contains(&mib) {
        return Err(EcsError::client(format!(
            "invalid task memory `{s}`: it must be at least 6 MiB"
        )));
    }
    Ok(mib as u32)
}

/// Whether (cpu units, memory MiB) is one of Fargate's combinations.
fn fargate_combination(cpu: u32, memory: u32) -> bool {
    let (lo, hi, step) = match cpu {
        256 => return matches!(memory, 512 | 1024 | 2048),
        512 => (1024, 4096, 1024),
        1024 => (2048, 8192, 1024),
        2048 => (4096, 16384, 1024),
        4096 => (8192, 30720, 1024),
        8192 => (16384, 61440, 4096),
        16384 => (32768, 122880, 8192),
        _ => return false,
    };
    (lo..=hi).contains(&memory) && memory.is_multiple_of(step)
}

const NETWORK_MODES: &[&str] = &["bridge", "host", "awsvpc", "none"];
const COMPATIBILITIES: &[&str] = &["EC2", "FARGATE", "EXTERNAL", "MANAGED_INSTANCES"];
const CONDITIONS: &[&str] = &["START", "COMPLETE", "SUCCESS", "HEALTHY"];

fn range(what: &str, container: &str, v: Option<i64>, lo: i64, hi: i64) -> Result<(), EcsError> {
    match v {
        Some(v) if v < lo || v > hi => Err(EcsError::client(format!(
            "invalid {what} {v} for container `{container}`: it must be between {lo} and {hi}"
        ))),
        _ => Ok(()),
    }
}

/// Validates a `RegisterTaskDefinition` request and normalizes it the way ECS reports the
/// definition back: `networkMode` defaults to `bridge`, port mappings get their protocol (and,
/// in `awsvpc`/`host` mode, their host port), `essential` defaults to true, task-level
/// `cpu`/`memory` become plain numbers.
pub fn task_definition(req: &mut RegisterTaskDefinitionRequest) -> Result<(), EcsError> {
    if !is_name(&req.family) {
        return Err(EcsError::client(format!(
            "invalid family `{}`: use 1 to 255 letters, digits, hyphens and underscores",
            req.family
        )));
    }
    if let Some(t) = &req.tags {
        tags(t)?;
    }
    let mode = req.network_mode.clone().unwrap_or_else(|| "bridge".into());
    one_of("networkMode", &mode, NETWORK_MODES)?;
    req.network_mode = Some(mode.clone());
    if let Some(p) = &req.pid_mode {
        one_of("pidMode", p, &["host", "task"])?;
    }
    if let Some(p) = &req.ipc_mode {
        one_of("ipcMode", p, &["host", "task", "none"])?;
    }
    let compat = req.requires_compatibilities.clone().unwrap_or_default();
    for c in &compat {
        one_of("requiresCompatibilities value", c, COMPATIBILITIES)?;
    }
    let cpu = req.cpu.as_deref().map(task_cpu).transpose()?;
    let memory = req.memory.as_deref().map(task_memory).transpose()?;
    req.cpu = cpu.map(|c| c.to_string());
    req.memory = memory.map(|m| m.to_string());
    if compat.iter().any(|c| c == "FARGATE") {
        if mode != "awsvpc" {
            return Err(EcsError::client(
                "fargate requires networkMode awsvpc".to_string(),
            ));
        }
        match (cpu, memory) {
            (Some(c), Some(m)) if fargate_combination(c, m) => {}
            (Some(c), Some(m)) => {
                return Err(EcsError::client(format!(
                    "no fargate configuration exists for cpu {c} and memory {m}"
                )))
            }
            _ => {
                return Err(EcsError::client(
                    "fargate requires task-level cpu and memory".to_string(),
                ))
            }
        }
    }

    // Volumes.
    let mut volume_names = HashSet::new();
    for v in req.volumes.iter().flatten() {
        let n = v.get("name").and_then(|n| n.as_str()).unwrap_or("");
        if !is_name(n) {
            return Err(EcsError::client(format!(
                "invalid volume name `{n}`: use 1 to 255 letters, digits, hyphens and underscores"
            )));
        }
        if !volume_names.insert(n.to_owned()) {
            return Err(EcsError::client(format!("duplicate volume name `{n}`")));
        }
    }

    // Placement constraints.
    let constraints = req.placement_constraints.as_deref().unwrap_or(&[]);
    if constraints.len() > berth_scheduler::MAX_CONSTRAINTS {
        return Err(EcsError::invalid(format!(
            "too many placement constraints: {} given, the limit is {}",
            constraints.len(),
            berth_scheduler::MAX_CONSTRAINTS
        )));
    }
    for c in constraints {
        let kind = c.kind.as_deref().unwrap_or("");
        if kind != "memberOf" {
            return Err(EcsError::client(format!(
                "invalid task definition placement constraint type `{kind}`: only memberOf is allowed"
            )));
        }
        let e = c.expression.as_deref().unwrap_or("");
        berth_scheduler::parse(e)?;
    }

    containers(
        &mut req.container_definitions,
        &mode,
        memory.is_some(),
        &volume_names,
    )
}

/// `secrets` (each with a name and a valueFrom) and `repositoryCredentials` (with a
/// credentialsParameter) of one container.
fn secret_references(c: &ContainerDefinition, n: &str) -> Result<(), EcsError> {
    let text = |v: Option<&serde_json::Value>| {
        v.and_then(serde_json::Value::as_str)
            .is_some_and(|s| !s.is_empty())
    };
    if let Some(secrets) = c.extra.get("secrets").filter(|v| !v.is_null()) {
        let list = secrets.as_array().ok_or_else(|| {
            EcsError::client(format!("secrets of container `{n}` must be a list"))
        })?;
        for s in list {
            if !text(s.get("name")) || !text(s.get("valueFrom")) {
                return Err(EcsError::client(format!(
                    "each secret of container `{n}` needs a name and a valueFrom"
                )));
            }
        }
    }
    if let Some(r) = c
        .extra
        .get("repositoryCredentials")
        .filter(|v| !v.is_null())
    {
        if !text(r.get("credentialsParameter")) {
            return Err(EcsError::client(format!(
                "repositoryCredentials of container `{n}` needs a credentialsParameter"
            )));
        }
    }
    Ok(())
}

fn containers(
    defs: &mut [ContainerDefinition],
    mode: &str,
    task_memory: bool,
    volumes: &HashSet<String>,
) -> Result<(), EcsError> {
    if defs.is_empty() || defs.len() > MAX_CONTAINERS {
        return Err(EcsError::client(format!(
            "a task definition needs 1 to {MAX_CONTAINERS} container definitions, got {}",
            defs.len()
        )));
    }
    let mut names: HashMap<String, usize> = HashMap::new();
    for (i, c) in defs.iter().enumerate() {
        let n = c.name.as_deref().unwrap_or("");
        if !is_name(n) {
            return Err(EcsError::client(format!(
                "invalid container name `{n}`: use 1 to 255 letters, digits, hyphens and underscores"
            )));
        }
        if names.insert(n.to_owned(), i).is_some() {
            return Err(EcsError::client(format!("duplicate container name `{n}`")));
        }
    }
    let mut host_ports: HashSet<(i64, String)> = HashSet::new();
    for c in defs.iter_mut() {
        let n = c.name.clone().unwrap_or_default();
        match c.image.as_deref() {
            None | Some("") => {
                return Err(EcsError::client(format!(
                    "container `{n}` has no image: set image"
                )))
            }
            Some(i) if i.len() > 255 || i.chars().any(char::is_whitespace) => {
                return Err(EcsError::client(format!(
                    "invalid image `{i}` for container `{n}`"
                )))
            }
            _ => {}
        }
        range("cpu", &n, c.cpu, 0, 196_608)?;
        if let Some(m) = c.memory {
            if m < 6 {
                return Err(EcsError::client(format!(
                    "invalid memory {m} for container `{n}`: the minimum is 6 MiB"
                )));
            }
        }
        if let Some(r) = c.memory_reservation {
            if r < 4 {
                return Err(EcsError::client(format!(
                    "invalid memoryReservation {r} for container `{n}`: the minimum is 4 MiB"
                )));
            }
        }
        if let (Some(m), Some(r)) = (c.memory, c.memory_reservation) {
            if r > m {
                return Err(EcsError::client(format!(
                    "invalid memory settings for container `{n}`: memory ({m}) must be greater than or equal to memoryReservation ({r})"
                )));
            }
        }
        if !task_memory && c.memory.is_none() && c.memory_reservation.is_none() {
            return Err(EcsError::client(format!(
                "invalid setting for container `{n}`: at least one of memory or memoryReservation must be specified (or set task-level memory)"
            )));
        }
        range("startTimeout", &n, c.start_timeout, 0, i64::from(i32::MAX))?;
        range("stopTimeout", &n, c.stop_timeout, 0, i64::from(i32::MAX))?;
        if c.essential.is_none() {
            c.essential = Some(true);
        }
        for pm in c.port_mappings.iter_mut().flatten() {
            let proto = pm.protocol.clone().unwrap_or_else(|| "tcp".into());
            if proto != "tcp" && proto != "udp" {
                return Err(EcsError::client(format!(
                    "invalid protocol `{proto}` in a port mapping of container `{n}`: use tcp or udp"
                )));
            }
            pm.protocol = Some(proto.clone());
            match (pm.container_port, pm.container_port_range.as_deref()) {
                (None, None) => {
                    return Err(EcsError::client(format!(
                        "a port mapping of container `{n}` has no containerPort"
                    )))
                }
                (Some(p), _) if !(1..=65535).contains(&p) => {
                    return Err(EcsError::client(format!(
                        "invalid containerPort {p} for container `{n}`: use 1 to 65535"
                    )))
                }
                _ => {}
            }
            if let Some(h) = pm.host_port {
                if !(0..=65535).contains(&h) {
                    return Err(EcsError::client(format!(
                        "invalid hostPort {h} for container `{n}`: use 0 to 65535"
                    )));
                }
            }
            if mode == "awsvpc" || mode == "host" {
                match (pm.host_port, pm.container_port) {
                    (Some(h), Some(p)) if h != 0 && h != p => {
                        return Err(EcsError::client(format!(
                            "container `{n}`: when networkMode is {mode}, hostPort must be omitted or equal containerPort ({p}), got {h}"
                        )))
                    }
                    (_, Some(p)) => pm.host_port = Some(p),
                    _ => {}
                }
            } else if mode == "none" {
                return Err(EcsError::client(format!(
                    "container `{n}` maps ports but networkMode is none"
                )));
            }
            if let Some(h) = pm.host_port.filter(|h| *h != 0) {
                if !host_ports.insert((h, proto.clone())) {
                    return Err(EcsError::client(format!(
                        "host port {h}/{proto} is mapped more than once in the task definition"
                    )));
                }
            }
        }
        for l in c.links.iter().flatten() {
            if mode != "bridge" {
                return Err(EcsError::client(format!(
                    "container `{n}` has links, which need networkMode bridge"
                )));
            }
            let target = l.split(':').next().unwrap_or("");
            if !names.contains_key(target) || target == n {
                return Err(EcsError::client(format!(
                    "container `{n}` links to unknown container `{target}`"
                )));
            }
        }
        for vf in c.volumes_from.iter().flatten() {
            let s = vf.source_container.as_deref().unwrap_or("");
            if !names.contains_key(s) || s == n {
                return Err(EcsError::client(format!(
                    "container `{n}` takes volumes from unknown container `{s}`"
                )));
            }
        }
        for mp in c.mount_points.iter().flatten() {
            let s = mp.source_volume.as_deref().unwrap_or("");
            if !volumes.contains(s) {
                return Err(EcsError::client(format!(
                    "container `{n}` mounts unknown volume `{s}`: declare it in volumes"
                )));
            }
            if mp.container_path.as_deref().unwrap_or("").is_empty() {
                return Err(EcsError::client(format!(
                    "a mount point of container `{n}` has no containerPath"
                )));
            }
        }
        if let Some(h) = &c.health_check {
            if h.command.is_empty() {
                return Err(EcsError::client(format!(
                    "the health check of container `{n}` has no command"
                )));
            }
            range("healthCheck interval", &n, h.interval, 5, 300)?;
            range("healthCheck timeout", &n, h.timeout, 2, 60)?;
            range("healthCheck retries", &n, h.retries, 1, 10)?;
            range("healthCheck startPeriod", &n, h.start_period, 0, 300)?;
        }
        secret_references(c, &n)?;
    }
    if !defs.iter().any(|c| c.essential == Some(true)) {
        return Err(EcsError::client(
            "a task definition needs at least one essential container".to_string(),
        ));
    }
    // dependsOn: known targets, valid conditions, no cycles.
    for c in defs.iter() {
        let n = c.name.as_deref().unwrap_or("");
        for d in c.depends_on.iter().flatten() {
            one_of("dependsOn condition", &d.condition, CONDITIONS)?;
            let Some(&t) = names.get(&d.container_name) else {
                return Err(EcsError::client(format!(
                    "container `{n}` depends on unknown container `{}`",
                    d.container_name
                )));
            };
            if d.container_name == n {
                return Err(EcsError::client(format!(
                    "container `{n}` depends on itself"
                )));
            }
            let target = &defs[t];
            if d.condition == "HEALTHY" && target.health_check.is_none() {
                return Err(EcsError::client(format!(
                    "container `{n}` depends on `{}` being HEALTHY, but it has no healthCheck",
                    d.container_name
                )));
            }
            if (d.condition == "COMPLETE" || d.condition == "SUCCESS")
                && target.essential == Some(true)
            {
                return Err(EcsError::client(format!(
                    "container `{n}` depends on essential container `{}` with condition {}: only non-essential containers can be waited on to exit",
                    d.container_name, d.condition
                )));
            }
        }
    }
    // Cycle check: depth-first search with colours.
    fn visit(
        i: usize,
        defs: &[ContainerDefinition],
        names: &HashMap<String, usize>,
        colour: &mut [u8],
    ) -> Result<(), EcsError> {
        if colour[i] == 2 {
            return Ok(());
        }
        if colour[i] == 1 {
            return Err(EcsError::client(format!(
                "container dependencies form a cycle through `{}`",
                defs[i].name.as_deref().unwrap_or("")
            )));
        }
        colour[i] = 1;
        for d in defs[i].depends_on.iter().flatten() {
            if let Some(&t) = names.get(&d.container_name) {
                visit(t, defs, names, colour)?;
            }
        }
        colour[i] = 2;
        Ok(())
    }
    let mut colour = vec![0u8; defs.len()];
    for i in 0..defs.len() {
        visit(i, defs, &names, &mut colour)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(v: serde_json::Value) -> RegisterTaskDefinitionRequest {
        serde_json::from_value(v).unwrap()
    }

    fn web() -> serde_json::Value {
        json!({"family": "web", "containerDefinitions": [
            {"name": "web", "image": "nginx", "memory": 128, "portMappings": [{"containerPort": 80, "hostPort": 8080}]}
        ]})
    }

    #[test]
    fn names() {
        assert!(is_name("a-b_C9"));
        assert!(!is_name(""));
        assert!(!is_name("a b"));
        assert!(!is_name(&"a".repeat(256)));
        assert!(is_name(&"a".repeat(255)));
        assert_eq!(
            name("cluster", "x y").unwrap_err().code(),
            "InvalidParameterException"
        );
    }

    #[test]
    fn counts_and_batches() {
        assert_eq!(run_task_count(None).unwrap(), 1);
        assert_eq!(run_task_count(Some(10)).unwrap(), 10);
        assert!(run_task_count(Some(11)).is_err());
        assert!(run_task_count(Some(0)).is_err());
        assert!(batch("tasks", 101, 1, 100).is_err());
        assert!(batch("tasks", 0, 1, 100).is_err());
        assert!(batch("tasks", 100, 1, 100).is_ok());
    }

    #[test]
    fn tag_rules() {
        let t = |k: &str, v: &str| Tag {
            key: Some(k.into()),
            value: Some(v.into()),
        };
        assert!(tags(&[t("a", "b")]).is_ok());
        assert!(tags(&[t("", "b")]).is_err());
        assert!(tags(&[t("aws:x", "b")]).is_err());
        assert!(tags(&[t(&"k".repeat(129), "b")]).is_err());
        let many: Vec<Tag> = (0..51).map(|i| t(&format!("k{i}"), "v")).collect();
        assert!(tags(&many).is_err());
        let mut existing = vec![t("a", "1")];
        merge_tags(&mut existing, &[t("a", "2"), t("b", "3")]);
        assert_eq!(existing, vec![t("a", "2"), t("b", "3")]);
    }

    #[test]
    fn task_level_cpu_and_memory() {
        assert_eq!(task_cpu("1024").unwrap(), 1024);
        assert_eq!(task_cpu("1 vCPU").unwrap(), 1024);
        assert_eq!(task_cpu("0.25 vcpu").unwrap(), 256);
        assert!(task_cpu("64").is_err());
        assert!(task_cpu("lots").is_err());
        assert_eq!(task_memory("512").unwrap(), 512);
        assert_eq!(task_memory("2 GB").unwrap(), 2048);
        assert_eq!(task_memory("1GB").unwrap(), 1024);
        assert!(task_memory("x").is_err());
        assert!(fargate_combination(256, 512));
        assert!(!fargate_combination(256, 4096));
        assert!(fargate_combination(1024, 3072));
    }

    #[test]
    fn normalizes_a_valid_definition() {
        let mut r = req(web());
        task_definition(&mut r).unwrap();
        assert_eq!(r.network_mode.as_deref(), Some("bridge"));
        let c = &r.container_definitions[0];
        assert_eq!(c.essential, Some(true));
        let pm = &c.port_mappings.as_ref().unwrap()[0];
        assert_eq!(pm.protocol.as_deref(), Some("tcp"));
        assert_eq!(pm.host_port, Some(8080));
    }

    #[test]
    fn awsvpc_host_ports_follow_container_ports() {
        let mut r = req(
            json!({"family": "f", "networkMode": "awsvpc", "containerDefinitions": [
            {"name": "a", "image": "x", "memory": 64, "portMappings": [{"containerPort": 80}]}]}),
        );
        task_definition(&mut r).unwrap();
        let pm = &r.container_definitions[0].port_mappings.as_ref().unwrap()[0];
        assert_eq!(pm.host_port, Some(80));
        let mut r = req(
            json!({"family": "f", "networkMode": "awsvpc", "containerDefinitions": [
            {"name": "a", "image": "x", "memory": 64, "portMappings": [{"containerPort": 80, "hostPort": 81}]}]}),
        );
        assert!(task_definition(&mut r).is_err());
    }

    fn rejects(v: serde_json::Value, needle: &str) {
        let mut r = req(v);
        let e = task_definition(&mut r).unwrap_err();
        assert!(
            e.to_string().contains(needle),
            "{e} does not mention {needle}"
        );
    }

    #[test]
    fn rejects_incomplete_secret_references() {
        let td = |extra: serde_json::Value| {
            let mut c = json!({"name": "a", "image": "x", "memory": 64});
            c.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            json!({"family": "f", "containerDefinitions": [c]})
        };
        rejects(
            td(json!({"secrets": [{"name": "A"}]})),
            "name and a valueFrom",
        );
        rejects(td(json!({"secrets": {"name": "A"}})), "must be a list");
        rejects(
            td(json!({"repositoryCredentials": {}})),
            "credentialsParameter",
        );
        let mut ok = req(td(json!({
            "secrets": [{"name": "A", "valueFrom": "/p"}],
            "repositoryCredentials": {"credentialsParameter": "arn:aws:secretsmanager:r:1:secret:s"}
        })));
        task_definition(&mut ok).unwrap();
    }

    #[test]
    fn rejects_invalid_definitions() {
        rejects(
            json!({"family": "bad name", "containerDefinitions": [{"name": "a", "image": "x", "memory": 64}]}),
            "family",
        );
        rejects(
            json!({"family": "f", "containerDefinitions": []}),
            "1 to 10",
        );
        rejects(
            json!({"family": "f", "containerDefinitions": [{"name": "a", "memory": 64}]}),
            "no image",
        );
        rejects(
            json!({"family": "f", "containerDefinitions": [{"name": "a", "image": "x"}]}),
            "memoryReservation",
        );
        rejects(
            json!({"family": "f", "containerDefinitions": [{"name": "a", "image": "x", "memory": 64, "memoryReservation": 128}]}),
            "greater than or equal",
        );
        rejects(
            json!({"family": "f", "containerDefinitions": [{"name": "a", "image": "x", "memory": 64}, {"name": "a", "image": "y", "memory": 64}]}),
            "duplicate container name",
        );
        rejects(
            json!({"family": "f", "networkMode": "weird", "containerDefinitions": [{"name": "a", "image": "x", "memory": 64}]}),
            "networkMode",
        );
        rejects(
            json!({"family": "f", "requiresCompatibilities": ["MOON"], "containerDefinitions": [{"name": "a", "image": "x", "memory": 64}]}),
            "requiresCompatibilities",
        );
        rejects(
            json!({"family": "f", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256", "memory": "4096", "containerDefinitions": [{"name": "a", "image": "x"}]}),
            "fargate configuration",
        );
        rejects(
            json!({"family": "f", "requiresCompatibilities": ["FARGATE"], "containerDefinitions": [{"name": "a", "image": "x", "memory": 64}]}),
            "awsvpc",
        );
        rejects(
            json!({"family": "f", "containerDefinitions": [{"name": "a", "image": "x", "memory": 64, "essential": false}]}),
            "essential",
        );
        rejects(
            json!({"family": "f", "containerDefinitions": [{"name": "a", "image": "x", "memory": 64, "dependsOn": [{"containerName": "b", "condition": "START"}]}]}),
            "unknown container",
        );
        rejects(
            json!({"family": "f", "containerDefinitions": [
            {"name": "a", "image": "x", "memory": 64, "dependsOn": [{"containerName": "b", "condition": "HEALTHY"}]},
            {"name": "b", "image": "x", "memory": 64}]}),
            "healthCheck",
        );
        rejects(
            json!({"family": "f", "containerDefinitions": [
            {"name": "a", "image": "x", "memory": 64, "dependsOn": [{"containerName": "b", "condition": "START"}]},
            {"name": "b", "image": "x", "memory": 64, "dependsOn": [{"containerName": "a", "condition": "START"}]}]}),
            "cycle",
        );
        rejects(
            json!({"family": "f", "containerDefinitions": [
            {"name": "a", "image": "x", "memory": 64, "dependsOn": [{"containerName": "b", "condition": "SUCCESS"}]},
            {"name": "b", "image": "x", "memory": 64}]}),
            "essential container",
        );
        rejects(
            json!({"family": "f", "containerDefinitions": [
            {"name": "a", "image": "x", "memory": 64, "portMappings": [{"containerPort": 80, "hostPort": 80}]},
            {"name": "b", "image": "x", "memory": 64, "portMappings": [{"containerPort": 81, "hostPort": 80}]}]}),
            "more than once",
        );
        rejects(
            json!({"family": "f", "containerDefinitions": [{"name": "a", "image": "x", "memory": 64, "portMappings": [{"containerPort": 70000}]}]}),
            "containerPort",
        );
        rejects(
            json!({"family": "f", "containerDefinitions": [{"name": "a", "image": "x", "memory": 64, "portMappings": [{"containerPort": 80, "protocol": "sctp"}]}]}),
            "protocol",
        );
        rejects(
            json!({"family": "f", "containerDefinitions": [{"name": "a", "image": "x", "memory": 64, "mountPoints": [{"sourceVolume": "v", "containerPath": "/d"}]}]}),
            "unknown volume",
        );
        rejects(
            json!({"family": "f", "networkMode": "host", "containerDefinitions": [{"name": "a", "image": "x", "memory": 64, "links": ["b"]}, {"name": "b", "image": "x", "memory": 64}]}),
            "links",
        );
        rejects(
            json!({"family": "f", "containerDefinitions": [{"name": "a", "image": "x", "memory": 64, "healthCheck": {"command": ["CMD", "true"], "interval": 1}}]}),
            "interval",
        );
        rejects(
            json!({"family": "f", "placementConstraints": [{"type": "distinctInstance"}], "containerDefinitions": [{"name": "a", "image": "x", "memory": 64}]}),
            "memberOf",
        );
        rejects(
            json!({"family": "f", "placementConstraints": [{"type": "memberOf", "expression": "attribute:x =="}], "containerDefinitions": [{"name": "a", "image": "x", "memory": 64}]}),
            "expression",
        );
    }

    #[test]
    fn unknown_fields_round_trip() {
        let v = json!({"name": "a", "image": "x", "memory": 64, "ulimits": [{"name": "nofile", "softLimit": 1, "hardLimit": 2}], "dockerLabels": {"k": "v"}});
        let c: ContainerDefinition = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(serde_json::to_value(&c).unwrap(), v);
    }
}
