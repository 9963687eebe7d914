//! What the host offers the scheduler: CPU units (cores x 1024), memory (MiB minus a reserve),
//! the ports ECS reserves, and the instance attributes (os, architecture, capabilities, the
//! user's). Pure functions of their inputs, plus readers of /proc.

use berth_api::shapes::common::{Attribute, ResourceAmount};

/// Ports ECS reserves on every instance.
pub const RESERVED_PORTS: [&str; 5] = ["22", "2375", "2376", "51678", "51679"];
/// Memory kept for the host and the agent, MiB.
pub const MEMORY_RESERVE_MIB: i64 = 256;

/// Online CPUs of the host.
pub fn host_cpus() -> i64 {
    std::thread::available_parallelism()
        .map(|n| n.get() as i64)
        .unwrap_or(1)
}

/// `MemTotal` of /proc/meminfo, MiB.
pub fn host_memory_mib() -> i64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| parse_memtotal_kib(&s))
        .map(|kib| kib / 1024)
        .unwrap_or(0)
}

fn parse_memtotal_kib(meminfo: &str) -> Option<i64> {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// The registered resources of a host with `cpus` CPUs and `memory_mib` MiB.
pub fn total_resources(cpus: i64, memory_mib: i64) -> Vec<ResourceAmount> {
    vec![
        ResourceAmount::integer("CPU", cpus * 1024),
        ResourceAmount::integer("MEMORY", (memory_mib - MEMORY_RESERVE_MIB).max(0)),
        ResourceAmount::string_set(
            "PORTS",
            RESERVED_PORTS.iter().map(|p| p.to_string()).collect(),
        ),
        ResourceAmount::string_set("PORTS_UDP", Vec::new()),
    ]
}

/// Parses `k=v,k2=v2` (a bare `k` has no value).
pub fn parse_attributes(s: &str) -> Result<Vec<(String, Option<String>)>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = match part.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim().to_string())),
            None => (part, None),
        };
        if k.is_empty() {
            return Err(format!("invalid attribute {part:?}: use name=value"));
        }
        out.push((k.to_string(), v));
    }
    Ok(out)
}

/// The instance's attributes: ECS's standard ones, then the user's (which win).
pub fn attributes(user: &[(String, Option<String>)]) -> Vec<Attribute> {
    let mut out: Vec<Attribute> = vec![
        Attribute::new("ecs.os-type", Some("linux")),
        Attribute::new("ecs.cpu-architecture", Some("x86_64")),
        Attribute::new("ecs.capability.container-health-check", None),
        Attribute::new("ecs.capability.container-ordering", None),
        Attribute::new("ecs.capability.task-eni", None),
        Attribute::new("ecs.capability.docker-plugin.local", None),
        Attribute::new(
            "com.amazonaws.ecs.capability.logging-driver.json-file",
            None,
        ),
        Attribute::new("com.amazonaws.ecs.capability.logging-driver.none", None),
        Attribute::new("com.amazonaws.ecs.capability.task-iam-role", None),
        Attribute::new("ecs.capability.task-cpu-mem-limit", None),
        Attribute::new("ecs.capability.increased-task-cpu-limit", None),
    ];
    for minor in 17..=43 {
        out.push(Attribute::new(
            format!("com.amazonaws.ecs.capability.docker-remote-api.1.{minor}"),
            None,
        ));
    }
    for (k, v) in user {
        out.retain(|a| &a.name != k);
        out.push(Attribute::new(k, v.as_deref()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_and_attributes() {
        assert_eq!(
            parse_memtotal_kib("MemTotal:  2048000 kB\nMemFree: 1 kB\n"),
            Some(2048000)
        );
        let r = total_resources(2, 2000);
        assert_eq!(r[0].integer_value, Some(2048));
        assert_eq!(r[1].integer_value, Some(2000 - MEMORY_RESERVE_MIB));
        let user = parse_attributes("ecs.availability-zone=az1, gpu").unwrap();
        assert_eq!(user[1], ("gpu".to_string(), None));
        assert!(parse_attributes("=x").is_err());
        let attrs = attributes(&user);
        assert!(attrs
            .iter()
            .any(|a| a.name == "ecs.availability-zone" && a.value.as_deref() == Some("az1")));
        assert!(attrs
            .iter()
            .any(|a| a.name == "com.amazonaws.ecs.capability.docker-remote-api.1.43"));
    }
}
