//! From a create request and its image to a container record (create time), and from a record
//! to an OCI bundle the monitor can run (start time). Pure policy plus file writes in the
//! container's own directory; no processes are started here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use berth_engine_client::{
    ContainerConfig, ContainerCreate, HealthConfig, ImageConfig, MountPoint,
};
use berth_runtime::spec::{MountInput, MountKind, NetworkMode, SpecInput, UlimitInput};

use crate::error::{EngineError, Result};
use crate::record::ContainerRecord;
use crate::rootfs::find_in_layers;

pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const MIN_MEMORY: i64 = 6 * 1024 * 1024;

/// Merges the image's config with the request into the container's effective config.
pub fn effective_config(
    req: &ContainerCreate,
    image: &ImageConfig,
    id: &str,
) -> Result<ContainerConfig> {
    let entrypoint = match &req.entrypoint {
        Some(e) => e.clone(),
        None => image.entrypoint.clone(),
    };
    // Docker: overriding the entrypoint drops the image's Cmd unless a Cmd is given.
    let cmd = match (&req.cmd, &req.entrypoint) {
        (Some(c), _) => c.clone(),
        (None, Some(_)) => Vec::new(),
        (None, None) => image.cmd.clone(),
    };
    if entrypoint.is_empty() && cmd.is_empty() {
        return Err(EngineError::Invalid(
            "no command specified: the image has no Cmd or Entrypoint; give a command after the image name".into(),
        ));
    }
    let mut env = merge_env(&image.env, &req.env);
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, DEFAULT_PATH.to_string());
    }
    let host_network = req.host_config.network_mode == "host";
    let hostname = match &req.hostname {
        Some(h) if !h.is_empty() => {
            validate_hostname(h)?;
            h.clone()
        }
        _ if host_network => nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| id[..12].to_string()),
        _ => id[..12].to_string(),
    };
    if !env.iter().any(|e| e.starts_with("HOSTNAME=")) {
        env.push(format!("HOSTNAME={hostname}"));
    }
    // Docker: a terminal gets TERM=xterm unless the image or the user set TERM.
    if req.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    let mut labels = image.labels.clone();
    labels.extend(req.labels.clone());
    let working_dir = req
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| image.working_dir.clone());
    if !working_dir.is_empty() && !working_dir.starts_with('/') {
        return Err(EngineError::Invalid(format!(
            "the working directory {working_dir:?} is invalid: it needs to be an absolute path"
        )));
    }
    let stop_signal = req
        .stop_signal
        .clone()
        .filter(|s| !s.is_empty())
        .or_else(|| Some(image.stop_signal.clone()).filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "SIGTERM".into());
    parse_signal(&stop_signal)?;
    Ok(ContainerConfig {
        hostname,
        user: req
            .user
            .clone()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| image.user.clone()),
        env,
        cmd,
        entrypoint,
        working_dir: if working_dir.is_empty() {
            "/".into()
        } else {
            working_dir
        },
        image: req.image.clone(),
        labels,
        stop_signal,
        stop_timeout: req.stop_timeout.unwrap_or(10),
        exposed_ports: {
            let mut p = image.exposed_ports.clone();
            for k in req.exposed_ports.keys() {
                let k = if k.contains('/') {
                    k.clone()
                } else {
                    format!("{k}/tcp")
                };
                p.insert(k, serde_json::json!({}));
            }
            p
        },
        healthcheck: merge_health(req.healthcheck.as_ref(), image.healthcheck.as_ref()),
        tty: req.tty,
        open_stdin: req.open_stdin,
        stdin_once: req.stdin_once,
    })
}

/// Image env overridden key by key by the request's env.
pub fn merge_env(base: &[String], overrides: &[String]) -> Vec<String> {
    let mut out: Vec<String> = base.to_vec();
    for kv in overrides {
        let key = kv.split('=').next().unwrap_or(kv);
        out.retain(|e| e.split('=').next().unwrap_or(e) != key);
        out.push(kv.clone());
    }
    out
}

/// Docker's field-by-field merge of a run-time health check over the image's.
fn merge_health(req: Option<&HealthConfig>, image: Option<&HealthConfig>) -> Option<HealthConfig> {
    let mut merged = image.cloned().unwrap_or_default();
    if let Some(r) = req {
        if !r.test.is_empty() {
            merged.test = r.test.clone();
        }
        if r.interval != 0 {
            merged.interval = r.interval;
        }
        if r.timeout != 0 {
            merged.timeout = r.timeout;
        }
        if r.start_period != 0 {
            merged.start_period = r.start_period;
        }
        if r.retries != 0 {
            merged.retries = r.retries;
        }
    }
    match merged.test.first().map(String::as_str) {
        None | Some("NONE") => None,
        _ => Some(merged),
    }
}

fn validate_hostname(h: &str) -> Result<()> {
    let ok = h.len() <= 64
        && h.split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    if ok {
        Ok(())
    } else {
        Err(EngineError::Invalid(format!("invalid hostname {h:?}")))
    }
}

/// Parses `SIGTERM`, `TERM`, `term` or `15`.
pub fn parse_signal(s: &str) -> Result<nix::sys::signal::Signal> {
    use std::str::FromStr;
    let bad = || EngineError::Invalid(format!("invalid signal: {s}"));
    if let Ok(n) = s.parse::<i32>() {
        return nix::sys::signal::Signal::try_from(n).map_err(|_| bad());
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    nix::sys::signal::Signal::from_str(&name).map_err(|_| bad())
}

/// Validates resources and policies of the request's host config.
pub fn validate_host_config(req: &ContainerCreate) -> Result<()> {
    let hc = &req.host_config;
    if hc.memory != 0 && hc.memory < MIN_MEMORY {
        return Err(EngineError::Invalid(
            "minimum memory limit allowed is 6MB".into(),
        ));
    }
    if hc.memory_reservation < 0 || hc.memory < 0 {
        return Err(EngineError::Invalid(
            "memory values cannot be negative".into(),
        ));
    }
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get() as i64)
        .unwrap_or(1);
    if hc.nano_cpus < 0
        || (hc.nano_cpus > 0 && hc.nano_cpus < 10_000_000)
        || hc.nano_cpus > cpus * 1_000_000_000
    {
        return Err(EngineError::Invalid(format!(
            "range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available"
        )));
    }
    match hc.network_mode.as_str() {
        "" | "none" | "host" | "default" => {}
        other if other.starts_with("container:") => {
            if other.len() == "container:".len() {
                return Err(EngineError::Invalid(
                    "network mode container: needs a container name or id".into(),
                ));
            }
            if !hc.port_bindings.is_empty() || hc.publish_all_ports {
                return Err(EngineError::Invalid(
                    "conflicting options: port publishing and the container network mode".into(),
                ));
            }
            if !hc.dns.is_empty() || !hc.dns_search.is_empty() || !hc.extra_hosts.is_empty() {
                return Err(EngineError::Invalid(
                    "conflicting options: dns and the container network mode".into(),
                ));
            }
        }
        // `bridge` or a user-defined network: checked against the networks at create.
        _ => {}
    }
    if !hc.port_bindings.is_empty() {
        if crate::networking::bridge_network(&hc.network_mode).is_none() {
            return Err(EngineError::Invalid(
                "published ports need a bridge network: add --network bridge (or a network name)"
                    .into(),
            ));
        }
        for key in hc.port_bindings.keys() {
            crate::ports::container_port(key)?;
        }
        for b in hc.port_bindings.values().flatten() {
            crate::ports::host_addr(b)?;
        }
    }
    let rp = &hc.restart_policy;
    match rp.name.as_str() {
        "" | "no" | "always" | "unless-stopped" | "on-failure" => {}
        other => {
            return Err(EngineError::Invalid(format!(
                "invalid restart policy {other:?}: use no, always, unless-stopped or on-failure[:max-retries]"
            )))
        }
    }
    if rp.maximum_retry_count > 0 && rp.name != "on-failure" {
        return Err(EngineError::Invalid(format!(
            "maximum retry count cannot be used with restart policy {:?}",
            rp.name
        )));
    }
    if hc.auto_remove && !matches!(rp.name.as_str(), "" | "no") {
        return Err(EngineError::Invalid(
            "conflicting options: cannot combine --restart and --rm".into(),
        ));
    }
    Ok(())
}

/// Parsed `-v SRC:DST[:MODE]`.
#[derive(Debug, Clone, PartialEq)]
pub struct BindSpec {
    pub source: String,
    pub destination: String,
    pub readonly: bool,
    pub is_volume: bool,
}

pub fn parse_bind(spec: &str) -> Result<BindSpec> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, destination, mode) = match parts[..] {
        // `-v /path`: an anonymous volume, named at create time.
        [d] if d.starts_with('/') => ("", d, ""),
        [s, d] => (s, d, ""),
        [s, d, m] => (s, d, m),
        _ => {
            return Err(EngineError::Invalid(format!(
                "invalid volume specification {spec:?}: expected SOURCE:DESTINATION[:ro|rw]"
            )))
        }
    };
    if !destination.starts_with('/') {
        return Err(EngineError::Invalid(format!(
            "invalid volume specification {spec:?}: the destination {destination:?} must be an absolute path"
        )));
    }
    let mut readonly = false;
    for opt in mode.split(',').filter(|o| !o.is_empty()) {
        match opt {
            "ro" => readonly = true,
            "rw" => readonly = false,
            "z" | "Z" | "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave"
            | "nocopy" | "consistent" | "cached" | "delegated" => {}
            other => {
                return Err(EngineError::Invalid(format!(
                    "invalid volume specification {spec:?}: unknown mode {other:?}"
                )))
            }
        }
    }
    let is_volume = !source.starts_with('/');
    if is_volume && !source.is_empty() && !crate::volumes::valid_volume_name(source) {
        return Err(EngineError::Invalid(format!(
            "invalid volume specification {spec:?}: {source:?} is neither an absolute host path nor a valid volume name"
        )));
    }
    Ok(BindSpec {
        source: source.to_string(),
        destination: destination.to_string(),
        readonly,
        is_volume,
    })
}

/// Resolves `user[:group]` (names or numbers) against the container's /etc/passwd and
/// /etc/group; returns uid, gid and supplementary groups.
pub fn resolve_user(user: &str, dir: &Path, layers: &[PathBuf]) -> Result<(u32, u32, Vec<u32>)> {
    if user.is_empty() {
        return Ok((0, 0, Vec::new()));
    }
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd = find_in_layers(dir, layers, "etc/passwd")
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    let groups = find_in_layers(dir, layers, "etc/group")
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    let entry = passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 4 && (f[0] == u || f[2] == u)).then(|| {
            (
                f[0].to_string(),
                f[2].parse::<u32>().ok(),
                f[3].parse::<u32>().ok(),
            )
        })
    });
    let (name, uid, mut gid) = match (u.parse::<u32>(), entry) {
        (_, Some((name, Some(uid), gid))) => (Some(name), uid, gid.unwrap_or(0)),
        (Ok(uid), _) => (None, uid, uid_default_gid(uid)),
        (Err(_), _) => {
            return Err(EngineError::Invalid(format!(
                "unable to find user {u}: no matching entries in passwd file"
            )))
        }
    };
    if let Some(g) = g {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => groups
                .lines()
                .find_map(|l| {
                    let f: Vec<&str> = l.split(':').collect();
                    (f.len() >= 3 && f[0] == g)
                        .then(|| f[2].parse::<u32>().ok())
                        .flatten()
                })
                .ok_or_else(|| {
                    EngineError::Invalid(format!(
                        "unable to find group {g}: no matching entries in group file"
                    ))
                })?,
        };
    }
    let additional = name
        .map(|n| {
            groups
                .lines()
                .filter_map(|l| {
                    let f: Vec<&str> = l.split(':').collect();
                    (f.len() >= 4 && f[3].split(',').any(|m| m == n))
                        .then(|| f[2].parse::<u32>().ok())
                        .flatten()
                })
                .filter(|g| *g != gid)
                .collect()
        })
        .unwrap_or_default();
    Ok((uid, gid, additional))
}

fn uid_default_gid(uid: u32) -> u32 {
    // Docker: a numeric uid without a passwd entry runs with gid 0... unless given.
    let _ = uid;
    0
}

/// Writes /etc/hosts, /etc/hostname and /etc/resolv.conf for the container into `dir`.
pub fn write_etc_files(dir: &Path, rec: &ContainerRecord) -> std::io::Result<()> {
    let host_network = rec.host_config.network_mode == "host";
    let hostname = &rec.config.hostname;
    let mut hosts = String::new();
    if host_network {
        hosts.push_str(&std::fs::read_to_string("/etc/hosts").unwrap_or_default());
    } else {
        hosts.push_str("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
        hosts.push_str("fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n");
        if rec.networks.is_empty() {
            hosts.push_str(&format!("127.0.1.1\t{hostname}\n"));
        }
        for a in &rec.networks {
            hosts.push_str(&format!("{}\t{hostname}\n", a.ip));
        }
    }
    for entry in &rec.host_config.extra_hosts {
        if let Some((h, ip)) = entry.split_once(':') {
            hosts.push_str(&format!("{ip}\t{h}\n"));
        }
    }
    // Written in place: the files are bind-mounted, a rename would not reach a running
    // container (`network connect` rewrites /etc/hosts).
    std::fs::write(dir.join("hosts"), hosts)?;
    std::fs::write(dir.join("hostname"), format!("{hostname}\n"))?;
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let mut resolv = resolv_conf(
        &host_resolv,
        &rec.host_config.dns,
        &rec.host_config.dns_search,
        host_network,
    );
    // User-defined networks: the engine's DNS on the gateway resolves container names and
    // forwards the rest (explicit --dns servers win, as in Docker).
    if let Some(a) = rec.networks.iter().find(|a| {
        a.network_name != berth_network::DEFAULT_NETWORK && rec.host_config.dns.is_empty()
    }) {
        resolv = resolv
            .lines()
            .filter(|l| !l.starts_with("nameserver"))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
            + &format!("nameserver {}\noptions ndots:0\n", a.gateway);
    }
    std::fs::write(dir.join("resolv.conf"), resolv)
}

/// `--network container:ID`: the container shares the target's /etc/hosts and resolv.conf
/// (copies of them; its own hostname file).
pub fn copy_etc_files(target_dir: &Path, dir: &Path, rec: &ContainerRecord) -> std::io::Result<()> {
    for f in ["hosts", "resolv.conf"] {
        std::fs::copy(target_dir.join(f), dir.join(f))?;
    }
    std::fs::write(dir.join("hostname"), format!("{}\n", rec.config.hostname))
}

/// The container's resolv.conf: explicit `--dns` servers, else the host's minus loopback
/// nameservers (unreachable from a private network namespace), else public fallbacks as Docker;
/// `--dns-search` replaces the host's search domains.
pub fn resolv_conf(host: &str, dns: &[String], search: &[String], host_network: bool) -> String {
    let mut out = String::new();
    let mut servers: Vec<String> = Vec::new();
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    for line in host.lines() {
        let t = line.trim();
        if let Some(ns) = t.strip_prefix("nameserver") {
            let ns = ns.trim();
            if host_network || !(ns.starts_with("127.") || ns == "::1") {
                servers.push(ns.to_string());
            }
        } else if (t.starts_with("search") || t.starts_with("domain")) && !search.is_empty() {
            // replaced by --dns-search
        } else if t.starts_with("search") || t.starts_with("options") || t.starts_with("domain") {
            out.push_str(t);
            out.push('\n');
        }
    }
    if !dns.is_empty() {
        servers = dns.to_vec();
    }
    if servers.is_empty() {
        servers = vec!["8.8.8.8".into(), "8.8.4.4".into()];
    }
    for s in servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    out
}

/// Everything the start path needs to build the OCI spec.
pub fn spec_input(
    rec: &ContainerRecord,
    dir: &Path,
    rootfs: &Path,
    volume_paths: &BTreeMap<String, PathBuf>,
) -> Result<SpecInput> {
    let hc = &rec.host_config;
    let mut args = rec.config.entrypoint.clone();
    args.extend(rec.config.cmd.iter().cloned());
    let mut mounts = Vec::new();
    for (file, dest) in [
        ("resolv.conf", "/etc/resolv.conf"),
        ("hostname", "/etc/hostname"),
        ("hosts", "/etc/hosts"),
    ] {
        mounts.push(MountInput {
            destination: dest.into(),
            source: dir.join(file).display().to_string(),
            kind: MountKind::Bind,
            readonly: false,
            options: Vec::new(),
        });
    }
    for b in &hc.binds {
        let bind = parse_bind(b)?;
        let source = if bind.is_volume {
            volume_paths
                .get(&bind.source)
                .ok_or_else(|| EngineError::NotFound(format!("no such volume: {}", bind.source)))?
                .display()
                .to_string()
        } else {
            bind.source.clone()
        };
        mounts.push(MountInput {
            destination: bind.destination,
            source,
            kind: MountKind::Bind,
            readonly: bind.readonly,
            options: Vec::new(),
        });
    }
    for (path, opts) in &hc.tmpfs {
        mounts.push(MountInput {
            destination: path.clone(),
            source: "tmpfs".into(),
            kind: MountKind::Tmpfs,
            readonly: false,
            options: opts
                .split(',')
                .filter(|o| !o.is_empty())
                .map(str::to_string)
                .collect(),
        });
    }
    let cpu_quota = (hc.nano_cpus > 0).then(|| hc.nano_cpus * 100_000 / 1_000_000_000);
    Ok(SpecInput {
        args,
        env: rec.config.env.clone(),
        cwd: rec.config.working_dir.clone(),
        uid: rec.uid,
        gid: rec.gid,
        additional_gids: rec.additional_gids.clone(),
        hostname: rec.config.hostname.clone(),
        rootfs: rootfs.to_path_buf(),
        readonly_rootfs: hc.readonly_rootfs,
        mounts,
        cap_add: hc.cap_add.clone(),
        cap_drop: hc.cap_drop.clone(),
        privileged: hc.privileged,
        memory_limit: (hc.memory > 0).then_some(hc.memory),
        memory_reservation: (hc.memory_reservation > 0).then_some(hc.memory_reservation),
        cpu_shares: (hc.cpu_shares > 0).then_some(hc.cpu_shares),
        cpu_quota,
        cpu_period: cpu_quota.map(|_| 100_000),
        pids_limit: hc.pids_limit.filter(|p| *p > 0),
        network: match rec.networks.first() {
            Some(a) => NetworkMode::Path(a.netns.clone()),
            None if hc.network_mode == "host" => NetworkMode::Host,
            None => NetworkMode::New,
        },
        cgroups_path: rec.cgroup_path(),
        ulimits: hc
            .ulimits
            .iter()
            .map(|u| UlimitInput {
                name: u.name.clone(),
                soft: u.soft,
                hard: u.hard,
            })
            .collect(),
        sysctls: hc.sysctls.clone(),
        shm_size: (hc.shm_size > 0).then_some(hc.shm_size as u64),
        no_new_privileges: true,
        seccomp: true,
        terminal: rec.config.tty,
    })
}

/// The mounts `inspect` shows.
pub fn mount_points(
    binds: &[String],
    tmpfs: &BTreeMap<String, String>,
    volumes_root: &Path,
) -> Result<Vec<MountPoint>> {
    let mut out = Vec::new();
    for b in binds {
        let bind = parse_bind(b)?;
        out.push(MountPoint {
            kind: if bind.is_volume { "volume" } else { "bind" }.into(),
            name: if bind.is_volume {
                bind.source.clone()
            } else {
                String::new()
            },
            source: if bind.is_volume {
                volumes_root
                    .join(&bind.source)
                    .join("_data")
                    .display()
                    .to_string()
            } else {
                bind.source.clone()
            },
            destination: bind.destination,
            mode: if bind.readonly { "ro" } else { "" }.into(),
            rw: !bind.readonly,
        });
    }
    for path in tmpfs.keys() {
        out.push(MountPoint {
            kind: "tmpfs".into(),
            destination: path.clone(),
            rw: true,
            ..Default::default()
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(entrypoint: &[&str], cmd: &[&str]) -> ImageConfig {
        ImageConfig {
            entrypoint: entrypoint.iter().map(|s| s.to_string()).collect(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            env: vec!["PATH=/bin".into(), "A=1".into()],
            ..Default::default()
        }
    }

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn entrypoint_override_drops_image_cmd() {
        let req = ContainerCreate {
            image: "x".into(),
            entrypoint: Some(vec!["/bin/echo".into()]),
            ..Default::default()
        };
        let c = effective_config(&req, &image(&["/entry"], &["arg"]), ID).unwrap();
        assert_eq!(c.entrypoint, vec!["/bin/echo"]);
        assert!(c.cmd.is_empty());
        let req = ContainerCreate {
            image: "x".into(),
            cmd: Some(vec!["other".into()]),
            env: vec!["A=2".into(), "B=3".into()],
            ..Default::default()
        };
        let c = effective_config(&req, &image(&["/entry"], &["arg"]), ID).unwrap();
        assert_eq!(c.entrypoint, vec!["/entry"]);
        assert_eq!(c.cmd, vec!["other"]);
        assert_eq!(
            c.env,
            vec!["PATH=/bin", "A=2", "B=3", "HOSTNAME=0123456789ab"]
        );
        assert_eq!(c.stop_signal, "SIGTERM");
        assert_eq!(c.hostname, "0123456789ab");
    }

    #[test]
    fn no_command_is_an_error() {
        let req = ContainerCreate {
            image: "x".into(),
            ..Default::default()
        };
        let err = effective_config(&req, &image(&[], &[]), ID).unwrap_err();
        assert!(err.to_string().contains("no command specified"));
    }

    #[test]
    fn health_merge_and_none() {
        let img = HealthConfig {
            test: vec!["CMD".into(), "true".into()],
            interval: 5,
            ..Default::default()
        };
        let req = HealthConfig {
            retries: 7,
            ..Default::default()
        };
        let m = merge_health(Some(&req), Some(&img)).unwrap();
        assert_eq!((m.interval, m.retries), (5, 7));
        let none = HealthConfig {
            test: vec!["NONE".into()],
            ..Default::default()
        };
        assert!(merge_health(Some(&none), Some(&img)).is_none());
    }

    #[test]
    fn binds_parse_and_reject() {
        let b = parse_bind("/data:/srv:ro").unwrap();
        assert!(b.readonly && !b.is_volume);
        let v = parse_bind("cache:/cache").unwrap();
        assert!(v.is_volume && !v.readonly);
        let anon = parse_bind("/data").unwrap();
        assert!(anon.is_volume && anon.source.is_empty());
        assert!(parse_bind("data").is_err());
        assert!(parse_bind("/data:relative").is_err());
        assert!(parse_bind("./rel:/x").is_err());
        assert!(parse_bind("/a:/b:bogus").is_err());
    }

    #[test]
    fn signals_parse_in_all_forms() {
        use nix::sys::signal::Signal;
        assert_eq!(parse_signal("SIGUSR1").unwrap(), Signal::SIGUSR1);
        assert_eq!(parse_signal("term").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("9").unwrap(), Signal::SIGKILL);
        assert!(parse_signal("SIGNOPE").is_err());
    }

    #[test]
    fn resolv_conf_drops_loopback() {
        let host = "nameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch example.org\n";
        let r = resolv_conf(host, &[], &[], false);
        assert!(r.contains("nameserver 10.0.0.2") && !r.contains("127.0.0.53"));
        assert!(r.contains("search example.org"));
        let r = resolv_conf("nameserver 127.0.0.1\n", &[], &[], false);
        assert!(r.contains("8.8.8.8"));
        let r = resolv_conf(host, &["1.1.1.1".into()], &[], false);
        assert!(r.contains("nameserver 1.1.1.1") && !r.contains("10.0.0.2"));
        let r = resolv_conf(host, &[], &["a.test".into(), "b.test".into()], false);
        assert!(r.contains("search a.test b.test\n") && !r.contains("example.org"));
    }

    #[test]
    fn users_resolve_from_passwd() {
        let dir = tempfile::tempdir().unwrap();
        let layer = dir.path().join("layer");
        std::fs::create_dir_all(layer.join("etc")).unwrap();
        std::fs::write(
            layer.join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nweb:x:1000:1000::/home/web:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            layer.join("etc/group"),
            "root:x:0:\nweb:x:1000:\nstaff:x:50:web\n",
        )
        .unwrap();
        let layers = vec![layer];
        assert_eq!(
            resolve_user("web", dir.path(), &layers).unwrap(),
            (1000, 1000, vec![50])
        );
        assert_eq!(
            resolve_user("1000:50", dir.path(), &layers).unwrap(),
            (1000, 50, vec![])
        );
        assert_eq!(
            resolve_user("4242", dir.path(), &layers).unwrap(),
            (4242, 0, vec![])
        );
        assert_eq!(
            resolve_user("web:staff", dir.path(), &layers).unwrap().1,
            50
        );
        assert!(resolve_user("nobody-here", dir.path(), &layers).is_err());
    }
}
