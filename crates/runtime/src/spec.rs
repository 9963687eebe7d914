//! `SpecInput` -> OCI runtime spec (`oci_spec::runtime::Spec`) with Docker's defaults.
//!
//! The engine decides *what* to run (command, user, mounts, limits, security options) and
//! describes it as a [`SpecInput`]; [`build_spec`] turns that into the spec that youki's
//! libcontainer executes, filling in what `docker run` would:
//!
//! - namespaces: pid, network (new, joined by path, or none for host networking), ipc, uts,
//!   mount, cgroup;
//! - process: no terminal, the user's uid/gid/groups, `RLIMIT_NOFILE` 1048576 unless a
//!   ulimit overrides it, capabilities from [`crate::capabilities::resolve`] (bounding,
//!   effective and permitted; inheritable and ambient empty), `noNewPrivileges`,
//!   `oomScoreAdj` 0;
//! - mounts, in Docker's order: `/proc`, `/dev`, `/dev/pts`, `/sys`, `/sys/fs/cgroup`,
//!   `/dev/mqueue`, `/dev/shm`, then the user's mounts sorted parents-first. A user mount on
//!   the destination of a default mount replaces it (a user `/dev` replaces every `/dev/*`
//!   default too);
//! - the device cgroup: deny everything, then allow Docker's default device set. The device
//!   nodes themselves (`/dev/null`, `zero`, `full`, `random`, `urandom`, `tty`, the
//!   `ptmx -> pts/ptmx` symlink and the `fd`, `stdin`, `stdout`, `stderr` symlinks) are
//!   created by libcontainer, so `linux.devices` stays empty;
//! - masked and read-only paths under `/proc` and `/sys`;
//! - namespaced sysctls only (`kernel.msg*`, `kernel.sem`, `kernel.shm*`, `fs.mqueue.*`,
//!   and `net.*` unless the container uses the host's network);
//! - Docker's default seccomp profile ([`crate::seccomp::default_profile`]).
//!
//! Privileged containers get every capability, no seccomp, no masked or read-only paths,
//! a writable `/sys` and `/sys/fs/cgroup`, and access to every device in the device cgroup.
//!
//! Every field of the input is validated: a bad value gives a [`SpecError`] naming it,
//! never a panic.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Capabilities, LinuxCapabilities, LinuxCpu, LinuxDeviceCgroup, LinuxDeviceType, LinuxMemory,
    LinuxNamespace, LinuxNamespaceType, LinuxPids, LinuxResources, Mount, PosixRlimit,
    PosixRlimitBuilder, PosixRlimitType, Process, Root, Spec, User,
};
use serde::{Deserialize, Serialize};

use crate::{capabilities, seccomp};

/// `ociVersion` written into every spec.
pub const OCI_VERSION: &str = "1.2.0";
/// Size of `/dev/shm` when the input does not say (Docker's 64 MiB).
pub const DEFAULT_SHM_SIZE: u64 = 64 * 1024 * 1024;
/// `RLIMIT_NOFILE` (soft and hard) when no ulimit overrides it, as Docker's daemon sets it.
pub const DEFAULT_NOFILE: u64 = 1_048_576;
/// CFS period used when only a quota is given (100 ms, in microseconds).
pub const DEFAULT_CPU_PERIOD: u64 = 100_000;
/// Smallest memory limit Docker accepts (6 MiB).
pub const MIN_MEMORY_LIMIT: i64 = 6 * 1024 * 1024;

/// Paths hidden from unprivileged containers (Docker's list).
pub const MASKED_PATHS: [&str; 11] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths made read-only in unprivileged containers (Docker's list).
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// IPC sysctls a container may set (it always has its own IPC namespace).
const IPC_SYSCTLS: [&str; 8] = [
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// Ulimit names accepted in [`UlimitInput::name`] (as `docker run --ulimit` spells them).
pub const ULIMIT_NAMES: [&str; 16] = [
    "as",
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// Why a [`SpecInput`] could not be turned into a spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("unknown capability {0:?}: use a Linux capability name such as CAP_NET_ADMIN, or ALL")]
    UnknownCapability(String),
    #[error("no command given: the process needs at least one argument")]
    EmptyArgs,
    #[error("invalid environment variable {0:?}: expected KEY=VALUE")]
    InvalidEnv(String),
    #[error("working directory {0:?} is not an absolute path")]
    RelativeCwd(String),
    #[error("rootfs path {0:?} is not an absolute path")]
    RelativeRootfs(PathBuf),
    #[error("mount destination {0:?} is not an absolute path")]
    RelativeMountDestination(String),
    #[error("invalid mount destination {destination:?}: {reason}")]
    InvalidMountDestination {
        destination: String,
        reason: &'static str,
    },
    #[error("duplicate mount point {0:?}")]
    DuplicateMountDestination(String),
    #[error("bind mount source {0:?} is not an absolute path")]
    RelativeBindSource(String),
    #[error("unknown ulimit name {0:?}: expected one of as, core, cpu, data, fsize, locks, memlock, msgqueue, nice, nofile, nproc, rss, rtprio, rttime, sigpending, stack")]
    UnknownUlimit(String),
    #[error("ulimit {name}: soft limit {soft} is greater than hard limit {hard}")]
    UlimitSoftAboveHard { name: String, soft: u64, hard: u64 },
    #[error("sysctl {0:?} is not namespaced and cannot be set in a container")]
    SysctlNotNamespaced(String),
    #[error("sysctl {0:?} cannot be set when the container uses the host's network")]
    SysctlHostNetwork(String),
    #[error("invalid {what} {value}: {reason}")]
    InvalidResource {
        what: &'static str,
        value: i128,
        reason: &'static str,
    },
    #[error("invalid hostname {0:?}: {1}")]
    InvalidHostname(String, &'static str),
    #[error("network namespace path {0:?} is not an absolute path")]
    RelativeNetnsPath(PathBuf),
    #[error("internal error while building the runtime spec: {0}")]
    Internal(String),
}

/// Network namespace of the container.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum NetworkMode {
    /// A new, empty network namespace (the engine wires it up).
    #[default]
    New,
    /// The host's network namespace (`--network host`).
    Host,
    /// Join the network namespace at this path (e.g. `/proc/<pid>/ns/net` or a bind-mounted
    /// namespace file).
    Path(PathBuf),
}

/// Kind of a user mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum MountKind {
    /// Bind mount of a host path (bind mounts, named volumes, engine-managed files).
    #[default]
    Bind,
    /// A fresh tmpfs.
    Tmpfs,
}

/// One user mount.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MountInput {
    /// Absolute path inside the container.
    pub destination: String,
    /// Absolute host path for binds; ignored for tmpfs.
    pub source: String,
    pub kind: MountKind,
    pub readonly: bool,
    /// Extra mount options, e.g. `size=64m`, `mode=1777`, `exec`, `rshared`.
    pub options: Vec<String>,
}

/// One resource limit (`--ulimit nofile=1024:2048`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UlimitInput {
    /// `nofile`, `nproc`, ... (see [`ULIMIT_NAMES`]); `RLIMIT_` prefix and any case accepted.
    pub name: String,
    pub soft: u64,
    pub hard: u64,
}

/// Everything the engine decided about a container, in engine terms.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct SpecInput {
    /// Process arguments (entrypoint + cmd, already resolved).
    pub args: Vec<String>,
    /// `KEY=VALUE` entries.
    pub env: Vec<String>,
    /// Absolute working directory; empty means `/`.
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    /// Empty means no hostname is set.
    pub hostname: String,
    /// Absolute path of the prepared (already mounted) rootfs.
    pub rootfs: PathBuf,
    pub readonly_rootfs: bool,
    /// User mounts (binds, volumes, tmpfs, and the engine's /etc/hosts, /etc/hostname and
    /// /etc/resolv.conf binds).
    pub mounts: Vec<MountInput>,
    /// Capability names, with or without `CAP_`, any case; `ALL` allowed.
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub privileged: bool,
    /// Bytes; `-1` means unlimited.
    pub memory_limit: Option<i64>,
    /// Bytes (soft limit).
    pub memory_reservation: Option<i64>,
    pub cpu_shares: Option<u64>,
    /// Microseconds per period; `-1` means unlimited.
    pub cpu_quota: Option<i64>,
    /// Microseconds; defaults to 100000 when a quota is given.
    pub cpu_period: Option<u64>,
    /// `0` or negative means unlimited.
    pub pids_limit: Option<i64>,
    pub network: NetworkMode,
    /// e.g. `/berth/<id>`; empty lets the runtime choose.
    pub cgroups_path: String,
    pub ulimits: Vec<UlimitInput>,
    pub sysctls: BTreeMap<String, String>,
    /// Size of `/dev/shm` in bytes; `None` or `0` means 64 MiB.
    pub shm_size: Option<u64>,
    /// The engine passes `true` by default (as `docker run` does for Berth).
    pub no_new_privileges: bool,
    /// `true` = Docker's default profile, `false` = unconfined.
    pub seccomp: bool,
    /// Give the process a pseudo-terminal (`-t`); the runtime needs a console socket then.
    pub terminal: bool,
}

impl SpecInput {
    /// An input with the engine's defaults: cwd `/`, no-new-privileges and the default
    /// seccomp profile on, everything else empty.
    pub fn new(args: Vec<String>, rootfs: impl Into<PathBuf>) -> Self {
        SpecInput {
            args,
            cwd: "/".to_string(),
            rootfs: rootfs.into(),
            no_new_privileges: true,
            seccomp: true,
            terminal: false,
            ..Default::default()
        }
    }
}

/// Builds the OCI runtime spec for `input` (see the module docs for the defaults applied).
pub fn build_spec(input: &SpecInput) -> Result<Spec, SpecError> {
    let caps = capabilities::resolve(&input.cap_add, &input.cap_drop, input.privileged)?;

    let mut spec = Spec::default();
    spec.set_version(OCI_VERSION.to_string());
    spec.set_process(Some(build_process(input, &caps)?));
    spec.set_root(Some(build_root(input)?));
    spec.set_hostname(build_hostname(&input.hostname)?);
    spec.set_domainname(None);
    spec.set_mounts(Some(build_mounts(input)?));
    spec.set_annotations(None);
    spec.set_hooks(None);

    let mut linux = oci_spec::runtime::Linux::default();
    linux.set_namespaces(Some(build_namespaces(&input.network)?));
    linux.set_resources(Some(build_resources(input)?));
    linux.set_cgroups_path(if input.cgroups_path.is_empty() {
        None
    } else {
        Some(PathBuf::from(&input.cgroups_path))
    });
    linux.set_sysctl(build_sysctls(&input.sysctls, &input.network)?);
    linux.set_devices(None);
    linux.set_uid_mappings(None);
    linux.set_gid_mappings(None);
    linux.set_rootfs_propagation(None);
    linux.set_mount_label(None);
    if input.privileged {
        linux.set_masked_paths(None);
        linux.set_readonly_paths(None);
    } else {
        linux.set_masked_paths(Some(MASKED_PATHS.iter().map(|p| p.to_string()).collect()));
        linux.set_readonly_paths(Some(READONLY_PATHS.iter().map(|p| p.to_string()).collect()));
    }
    linux.set_seccomp(if input.seccomp && !input.privileged {
        Some(seccomp::default_profile(&caps))
    } else {
        None
    });
    spec.set_linux(Some(linux));
    Ok(spec)
}

fn build_process(input: &SpecInput, caps: &[String]) -> Result<Process, SpecError> {
    if input.args.is_empty() {
        return Err(SpecError::EmptyArgs);
    }
    for entry in &input.env {
        match entry.split_once('=') {
            Some((key, _)) if !key.is_empty() && !key.contains('\0') => {}
            _ => return Err(SpecError::InvalidEnv(entry.clone())),
        }
    }
    let cwd = if input.cwd.is_empty() {
        "/"
    } else {
        input.cwd.as_str()
    };
    if !cwd.starts_with('/') {
        return Err(SpecError::RelativeCwd(cwd.to_string()));
    }

    let mut user = User::default();
    user.set_uid(input.uid);
    user.set_gid(input.gid);
    user.set_additional_gids(if input.additional_gids.is_empty() {
        None
    } else {
        Some(input.additional_gids.clone())
    });

    let set: Capabilities = caps
        .iter()
        .map(|c| capabilities::to_oci(c))
        .collect::<Result<_, _>>()?;
    let mut capabilities = LinuxCapabilities::default();
    capabilities.set_bounding(Some(set.clone()));
    capabilities.set_effective(Some(set.clone()));
    capabilities.set_permitted(Some(set));
    capabilities.set_inheritable(Some(HashSet::new()));
    capabilities.set_ambient(Some(HashSet::new()));

    let mut process = Process::default();
    process.set_terminal(Some(input.terminal));
    process.set_console_size(None);
    process.set_user(user);
    process.set_args(Some(input.args.clone()));
    process.set_env(Some(input.env.clone()));
    process.set_cwd(PathBuf::from(cwd));
    process.set_capabilities(Some(capabilities));
    process.set_rlimits(Some(build_rlimits(&input.ulimits)?));
    // libcontainer loads seccomp *before* dropping capabilities when this is unset and
    // right before exec when it is set; `Some(false)` would make it load the filter late
    // without no_new_privs and fail, so "off" is expressed as `None`.
    process.set_no_new_privileges(if input.no_new_privileges {
        Some(true)
    } else {
        None
    });
    process.set_oom_score_adj(Some(0));
    process.set_apparmor_profile(None);
    process.set_selinux_label(None);
    Ok(process)
}

fn rlimit_type(name: &str) -> Result<PosixRlimitType, SpecError> {
    let lower = name.trim().to_ascii_lowercase();
    let bare = lower.strip_prefix("rlimit_").unwrap_or(&lower);
    Ok(match bare {
        "as" => PosixRlimitType::RlimitAs,
        "core" => PosixRlimitType::RlimitCore,
        "cpu" => PosixRlimitType::RlimitCpu,
        "data" => PosixRlimitType::RlimitData,
        "fsize" => PosixRlimitType::RlimitFsize,
        "locks" => PosixRlimitType::RlimitLocks,
        "memlock" => PosixRlimitType::RlimitMemlock,
        "msgqueue" => PosixRlimitType::RlimitMsgqueue,
        "nice" => PosixRlimitType::RlimitNice,
        "nofile" => PosixRlimitType::RlimitNofile,
        "nproc" => PosixRlimitType::RlimitNproc,
        "rss" => PosixRlimitType::RlimitRss,
        "rtprio" => PosixRlimitType::RlimitRtprio,
        "rttime" => PosixRlimitType::RlimitRttime,
        "sigpending" => PosixRlimitType::RlimitSigpending,
        "stack" => PosixRlimitType::RlimitStack,
        _ => return Err(SpecError::UnknownUlimit(name.to_string())),
    })
}

fn rlimit(typ: PosixRlimitType, soft: u64, hard: u64) -> Result<PosixRlimit, SpecError> {
    PosixRlimitBuilder::default()
        .typ(typ)
        .soft(soft)
        .hard(hard)
        .build()
        .map_err(|e| SpecError::Internal(e.to_string()))
}

/// The calling process's hard RLIMIT_NOFILE.
fn current_hard_nofile() -> u64 {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(_, hard)| hard)
        .unwrap_or(DEFAULT_NOFILE)
}

fn build_rlimits(ulimits: &[UlimitInput]) -> Result<Vec<PosixRlimit>, SpecError> {
    // Raising a hard limit needs CAP_SYS_RESOURCE, which a sandboxed engine may lack: never
    // ask for more than the engine's own hard limit.
    let nofile = DEFAULT_NOFILE.min(current_hard_nofile());
    let mut out = vec![rlimit(PosixRlimitType::RlimitNofile, nofile, nofile)?];
    for u in ulimits {
        let typ = rlimit_type(&u.name)?;
        if u.soft > u.hard {
            return Err(SpecError::UlimitSoftAboveHard {
                name: u.name.clone(),
                soft: u.soft,
                hard: u.hard,
            });
        }
        let r = rlimit(typ, u.soft, u.hard)?;
        match out.iter_mut().find(|e| e.typ() == typ) {
            Some(existing) => *existing = r,
            None => out.push(r),
        }
    }
    Ok(out)
}

fn build_root(input: &SpecInput) -> Result<Root, SpecError> {
    if !input.rootfs.is_absolute() {
        return Err(SpecError::RelativeRootfs(input.rootfs.clone()));
    }
    let mut root = Root::default();
    root.set_path(input.rootfs.clone());
    root.set_readonly(Some(input.readonly_rootfs));
    Ok(root)
}

fn build_hostname(hostname: &str) -> Result<Option<String>, SpecError> {
    if hostname.is_empty() {
        return Ok(None);
    }
    if hostname.len() > 64 {
        return Err(SpecError::InvalidHostname(
            hostname.to_string(),
            "longer than 64 characters",
        ));
    }
    if hostname
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '/')
    {
        return Err(SpecError::InvalidHostname(
            hostname.to_string(),
            "contains whitespace, control characters or '/'",
        ));
    }
    Ok(Some(hostname.to_string()))
}

fn build_namespaces(network: &NetworkMode) -> Result<Vec<LinuxNamespace>, SpecError> {
    fn ns(typ: LinuxNamespaceType, path: Option<PathBuf>) -> LinuxNamespace {
        let mut n = LinuxNamespace::default();
        n.set_typ(typ);
        n.set_path(path);
        n
    }
    let mut out = vec![ns(LinuxNamespaceType::Pid, None)];
    match network {
        NetworkMode::New => out.push(ns(LinuxNamespaceType::Network, None)),
        NetworkMode::Host => {}
        NetworkMode::Path(p) => {
            if !p.is_absolute() {
                return Err(SpecError::RelativeNetnsPath(p.clone()));
            }
            out.push(ns(LinuxNamespaceType::Network, Some(p.clone())));
        }
    }
    out.push(ns(LinuxNamespaceType::Ipc, None));
    out.push(ns(LinuxNamespaceType::Uts, None));
    out.push(ns(LinuxNamespaceType::Mount, None));
    out.push(ns(LinuxNamespaceType::Cgroup, None));
    Ok(out)
}

fn mount(destination: &str, typ: &str, source: &str, options: &[&str]) -> Mount {
    let mut m = Mount::default();
    m.set_destination(PathBuf::from(destination));
    m.set_typ(Some(typ.to_string()));
    m.set_source(Some(PathBuf::from(source)));
    m.set_options(Some(options.iter().map(|o| o.to_string()).collect()));
    m
}

/// Docker's default mounts, in Docker's order.
fn default_mounts(privileged: bool, shm_size: u64) -> Vec<Mount> {
    let sys_ro = if privileged { "rw" } else { "ro" };
    let shm_size = format!("size={shm_size}");
    vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", sys_ro],
        ),
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", sys_ro],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", &shm_size],
        ),
    ]
}

/// Cleans an absolute container path: collapses `//` and `.`, rejects `..` and `/`.
fn clean_destination(raw: &str) -> Result<String, SpecError> {
    if !raw.starts_with('/') {
        return Err(SpecError::RelativeMountDestination(raw.to_string()));
    }
    let mut parts = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(SpecError::InvalidMountDestination {
                    destination: raw.to_string(),
                    reason: "must not contain '..'",
                })
            }
            p if p.contains('\0') => {
                return Err(SpecError::InvalidMountDestination {
                    destination: raw.to_string(),
                    reason: "contains a NUL byte",
                })
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err(SpecError::InvalidMountDestination {
            destination: raw.to_string(),
            reason: "cannot mount over the container's root",
        });
    }
    Ok(format!("/{}", parts.join("/")))
}

const PROPAGATION: [&str; 8] = [
    "private",
    "rprivate",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "unbindable",
    "runbindable",
];

fn user_mount(m: &MountInput, destination: &str) -> Result<Mount, SpecError> {
    let mut out = Mount::default();
    out.set_destination(PathBuf::from(destination));
    match m.kind {
        MountKind::Bind => {
            if !Path::new(&m.source).is_absolute() {
                return Err(SpecError::RelativeBindSource(m.source.clone()));
            }
            let bind = if m.options.iter().any(|o| o == "bind") {
                "bind"
            } else {
                "rbind"
            };
            let propagation = m
                .options
                .iter()
                .find(|o| PROPAGATION.contains(&o.as_str()))
                .map(String::as_str)
                .unwrap_or("rprivate");
            let mut options = vec![
                bind.to_string(),
                propagation.to_string(),
                if m.readonly { "ro" } else { "rw" }.to_string(),
            ];
            options.extend(
                m.options
                    .iter()
                    .filter(|o| {
                        !matches!(o.as_str(), "bind" | "rbind" | "ro" | "rw")
                            && !PROPAGATION.contains(&o.as_str())
                    })
                    .cloned(),
            );
            out.set_typ(Some("bind".to_string()));
            out.set_source(Some(PathBuf::from(&m.source)));
            out.set_options(Some(options));
        }
        MountKind::Tmpfs => {
            let mut options: Vec<String> = ["nosuid", "nodev", "noexec"]
                .iter()
                .map(|o| o.to_string())
                .collect();
            if m.readonly {
                options.push("ro".to_string());
            }
            options.extend(m.options.iter().cloned());
            out.set_typ(Some("tmpfs".to_string()));
            out.set_source(Some(PathBuf::from("tmpfs")));
            out.set_options(Some(options));
        }
    }
    Ok(out)
}

fn build_mounts(input: &SpecInput) -> Result<Vec<Mount>, SpecError> {
    let mut user = Vec::with_capacity(input.mounts.len());
    let mut seen = HashSet::new();
    for m in &input.mounts {
        let destination = clean_destination(&m.destination)?;
        if !seen.insert(destination.clone()) {
            return Err(SpecError::DuplicateMountDestination(destination));
        }
        user.push((destination.clone(), user_mount(m, &destination)?));
    }
    // Parents before children (`/data` before `/data/cache`), otherwise input order.
    user.sort_by_key(|(d, _)| d.matches('/').count());

    let user_dev = seen.contains("/dev");
    let shm = match input.shm_size {
        Some(0) | None => DEFAULT_SHM_SIZE,
        Some(n) => n,
    };
    let mut out: Vec<Mount> = default_mounts(input.privileged, shm)
        .into_iter()
        .filter(|m| {
            let d = m.destination().to_string_lossy();
            let replaced = seen.contains(d.as_ref());
            let under_user_dev = user_dev && d.starts_with("/dev/");
            !replaced && !under_user_dev
        })
        .collect();
    out.extend(user.into_iter().map(|(_, m)| m));
    Ok(out)
}

fn device(
    typ: LinuxDeviceType,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> LinuxDeviceCgroup {
    let mut d = LinuxDeviceCgroup::default();
    d.set_allow(true);
    d.set_typ(Some(typ));
    d.set_major(major);
    d.set_minor(minor);
    d.set_access(Some(access.to_string()));
    d
}

/// The device cgroup rules: deny all, then Docker's default set (or everything when
/// privileged).
fn device_rules(privileged: bool) -> Vec<LinuxDeviceCgroup> {
    let mut all = LinuxDeviceCgroup::default();
    all.set_access(Some("rwm".to_string()));
    if privileged {
        all.set_allow(true);
        return vec![all];
    }
    all.set_allow(false);
    use LinuxDeviceType::{B, C};
    vec![
        all,
        device(C, None, None, "m"),         // mknod any char device
        device(B, None, None, "m"),         // mknod any block device
        device(C, Some(1), Some(3), "rwm"), // /dev/null
        device(C, Some(1), Some(5), "rwm"), // /dev/zero
        device(C, Some(1), Some(7), "rwm"), // /dev/full
        device(C, Some(1), Some(8), "rwm"), // /dev/random
        device(C, Some(1), Some(9), "rwm"), // /dev/urandom
        device(C, Some(5), Some(0), "rwm"), // /dev/tty
        device(C, Some(5), Some(1), "rwm"), // /dev/console
        device(C, Some(5), Some(2), "rwm"), // /dev/ptmx
        device(C, Some(136), None, "rwm"),  // /dev/pts/*
    ]
}

fn invalid(what: &'static str, value: impl Into<i128>, reason: &'static str) -> SpecError {
    SpecError::InvalidResource {
        what,
        value: value.into(),
        reason,
    }
}

fn build_resources(input: &SpecInput) -> Result<LinuxResources, SpecError> {
    let mut res = LinuxResources::default();
    res.set_devices(Some(device_rules(input.privileged)));

    // Memory: 0 means "not set", -1 means unlimited (as in Docker).
    let limit = match input.memory_limit {
        None | Some(0) => None,
        Some(-1) => Some(-1),
        Some(v) if v < 0 => return Err(invalid("memory limit", v, "must be positive or -1")),
        Some(v) if v < MIN_MEMORY_LIMIT => {
            return Err(invalid(
                "memory limit",
                v,
                "the minimum memory limit is 6MiB (6291456 bytes)",
            ))
        }
        Some(v) => Some(v),
    };
    let reservation = match input.memory_reservation {
        None | Some(0) => None,
        Some(v) if v < 0 => return Err(invalid("memory reservation", v, "must not be negative")),
        Some(v) => Some(v),
    };
    if let (Some(l), Some(r)) = (limit, reservation) {
        if l > 0 && r > l {
            return Err(invalid(
                "memory reservation",
                r,
                "must not be greater than the memory limit",
            ));
        }
    }
    if limit.is_some() || reservation.is_some() {
        let mut memory = LinuxMemory::default();
        memory.set_limit(limit);
        memory.set_reservation(reservation);
        res.set_memory(Some(memory));
    }

    // CPU: 0 means "not set"; a quota without a period gets the 100ms default period.
    let shares = match input.cpu_shares {
        None | Some(0) => None,
        Some(v) => Some(v),
    };
    let quota = match input.cpu_quota {
        None | Some(0) => None,
        Some(-1) => Some(-1),
        Some(v) if v < 1000 => {
            return Err(invalid(
                "cpu quota",
                v,
                "must be at least 1000 microseconds (1ms), or -1 for unlimited",
            ))
        }
        Some(v) => Some(v),
    };
    let period = match input.cpu_period {
        None | Some(0) => quota.map(|_| DEFAULT_CPU_PERIOD),
        Some(v) if !(1000..=1_000_000).contains(&v) => {
            return Err(invalid(
                "cpu period",
                v,
                "must be between 1000 and 1000000 microseconds",
            ))
        }
        Some(v) => Some(v),
    };
    if shares.is_some() || quota.is_some() || period.is_some() {
        let mut cpu = LinuxCpu::default();
        cpu.set_shares(shares);
        cpu.set_quota(quota);
        cpu.set_period(period);
        res.set_cpu(Some(cpu));
    }

    if let Some(p) = input.pids_limit {
        let mut pids = LinuxPids::default();
        pids.set_limit(if p <= 0 { -1 } else { p });
        res.set_pids(Some(pids));
    }
    Ok(res)
}

fn build_sysctls(
    sysctls: &BTreeMap<String, String>,
    network: &NetworkMode,
) -> Result<Option<HashMap<String, String>>, SpecError> {
    if sysctls.is_empty() {
        return Ok(None);
    }
    let mut out = HashMap::with_capacity(sysctls.len());
    for (key, value) in sysctls {
        let normalized = key.trim().replace('/', ".");
        if normalized.is_empty() || normalized.contains("..") || normalized.contains('\0') {
            return Err(SpecError::SysctlNotNamespaced(key.clone()));
        }
        if IPC_SYSCTLS.contains(&normalized.as_str()) || normalized.starts_with("fs.mqueue.") {
            // fine: the container always has its own IPC namespace
        } else if normalized.starts_with("net.") {
            if *network == NetworkMode::Host {
                return Err(SpecError::SysctlHostNetwork(key.clone()));
            }
        } else {
            return Err(SpecError::SysctlNotNamespaced(key.clone()));
        }
        out.insert(normalized, value.clone());
    }
    Ok(Some(out))
}
