//! Test harness for end-to-end tests: a real `berth engine` on a private socket and data
//! directory, the real CLI, and images built at test time from Debian's busybox-static.
//! Everything is cleaned up on drop, even when the test fails.

#![allow(dead_code)]

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BERTH: &str = env!("CARGO_BIN_EXE_berth");

pub struct TestEngine {
    pub root: PathBuf,
    pub sock: PathBuf,
    /// This engine's link/nftables prefix (`--network-prefix`): every link and the nftables
    /// table it creates carry it, so cleanup removes exactly what this engine made.
    pub net_prefix: String,
    /// Subnet of this engine's default `bridge` network.
    pub bridge_subnet: String,
    /// Extra environment of the daemon (e.g. `BERTH_REGISTRY_MIRRORS`).
    env: Vec<(String, String)>,
    child: Option<Child>,
    /// Released before cleanup, so the last engine removes the shared cgroups.
    cgroup_user: Option<CgroupUser>,
}

/// A random number from the clock, the pid and a counter (no rand dependency in tests).
fn random_u64() -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::BuildHasher;
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    RandomState::new().hash_one((
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst),
        std::time::SystemTime::now(),
    ))
}

/// A /24 in 10.64.0.0/10 that no route of the host covers now (parallel tests pick at random;
/// a clash makes `network create` fail loudly rather than share a subnet).
pub fn free_subnet() -> String {
    let routes = Command::new("ip")
        .args(["-4", "route", "show", "table", "all"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    loop {
        let r = random_u64();
        let (a, b) = (64 + (r % 64) as u8, ((r >> 8) % 256) as u8);
        let net = format!("10.{a}.{b}.");
        if !routes.contains(&net) {
            return format!("{net}0/24");
        }
    }
}

/// Links of the host whose name starts with `prefix`.
pub fn links_with_prefix(prefix: &str) -> Vec<String> {
    std::fs::read_dir("/sys/class/net")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the nftables table `inet NAME` exists.
pub fn nft_table_exists(name: &str) -> bool {
    Command::new("nft")
        .args(["list", "table", "inet", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Deletes every link and the nftables table of an engine's network prefix.
pub fn cleanup_network(prefix: &str) {
    for l in links_with_prefix(prefix) {
        let _ = Command::new("ip").args(["link", "del", &l]).output();
    }
    if nft_table_exists(prefix) {
        let _ = Command::new("nft")
            .args(["delete", "table", "inet", prefix])
            .output();
    }
}

fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst),
        Instant::now().elapsed().as_nanos() % 1000
    )
}

impl TestEngine {
    /// Starts an engine with a fresh root.
    pub fn start() -> Self {
        Self::start_with_env(&[])
    }

    /// Starts an engine with a fresh root and extra daemon environment.
    #[allow(dead_code)]
    pub fn start_with_env(env: &[(&str, &str)]) -> Self {
        let root = std::env::temp_dir().join(unique("berth-test"));
        std::fs::create_dir_all(&root).unwrap();
        let sock = root.join("engine.sock");
        let mut engine = Self {
            root,
            sock,
            net_prefix: format!("bt{:04x}", random_u64() & 0xffff),
            bridge_subnet: free_subnet(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            child: None,
            cgroup_user: Some(CgroupUser::new()),
        };
        engine.spawn_daemon();
        engine
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.sock.display())
    }

    pub fn spawn_daemon(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join("engine.log"))
            .unwrap();
        let child = Command::new(BERTH)
            .args(["-H", &self.host(), "--root"])
            .arg(self.root.join("data"))
            .arg("engine")
            .env("BERTH_NETWORK_PREFIX", &self.net_prefix)
            .env("BERTH_DEFAULT_BRIDGE_SUBNET", &self.bridge_subnet)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn berth engine");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if std::os::unix::net::UnixStream::connect(&self.sock).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("engine did not come up: {}", self.engine_log());
    }

    /// Stops the daemon (SIGKILL when `crash`), leaving containers running.
    pub fn stop_daemon(&mut self, crash: bool) {
        if let Some(mut child) = self.child.take() {
            let sig = if crash { libc::SIGKILL } else { libc::SIGTERM };
            // SAFETY: signalling our own child process.
            unsafe { libc::kill(child.id() as i32, sig) };
            let _ = child.wait();
        }
        if crash {
            let _ = std::fs::remove_file(&self.sock);
        }
    }

    pub fn engine_log(&self) -> String {
        std::fs::read_to_string(self.root.join("engine.log")).unwrap_or_default()
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(BERTH);
        c.args(["-H", &self.host(), "--root"])
            .arg(self.root.join("data"));
        c.stdin(Stdio::null());
        c
    }

    /// Runs the CLI and returns its output.
    pub fn berth(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run berth")
    }

    /// Runs the CLI, asserts success, returns trimmed stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.berth(args);
        assert!(
            out.status.success(),
            "berth {args:?} failed ({:?}):\nstdout: {}\nstderr: {}\nengine log:\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.engine_log()
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn inspect(&self, id: &str, format: &str) -> String {
        self.ok(&["inspect", "--format", format, id])
    }

    /// Imports a busybox image under `tag`.
    pub fn import_busybox(&self, tag: &str) {
        let dir = self.root.join(unique("rootfs"));
        busybox_rootfs(&dir);
        self.ok(&["image", "import", dir.to_str().unwrap(), "--tag", tag]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Polls `f` until it returns true or `timeout` passes.
    pub fn eventually(&self, timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if f() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "timed out waiting for {what}\nengine log:\n{}",
            self.engine_log()
        );
    }
}

impl Drop for TestEngine {
    fn drop(&mut self) {
        if self.child.is_none() {
            self.spawn_daemon_quiet();
        }
        let ids = self.berth(&["ps", "-aq"]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            let _ = self.berth(&["rm", "-f", id]);
        }
        self.stop_daemon(false);
        self.cgroup_user = None;
        cleanup_root(&self.root);
        cleanup_network(&self.net_prefix);
    }
}

impl TestEngine {
    fn spawn_daemon_quiet(&mut self) {
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.spawn_daemon())).is_err() {
            self.child = None;
        }
    }
}

/// Kills monitors and containers left under `root`, unmounts everything below it, removes
/// the cgroups of its containers, and deletes it.
/// A lock every live test engine holds shared; see [`remove_shared_cgroups_if_last`].
const CGROUP_LOCK: &str = "/tmp/berth-test-cgroups.lock";

fn cgroup_lock_file() -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(CGROUP_LOCK)
        .expect("open the test cgroup lock")
}

/// Holds [`CGROUP_LOCK`] shared for as long as it lives (one per test engine).
pub struct CgroupUser(#[allow(dead_code)] std::fs::File);

impl CgroupUser {
    pub fn new() -> Self {
        let f = cgroup_lock_file();
        // SAFETY: flock on a descriptor we own.
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&f), libc::LOCK_SH) };
        CgroupUser(f)
    }
}

/// Removes the shared parent cgroups (`/sys/fs/cgroup/*/berth`) when no other test engine is
/// alive (the exclusive lock is free): removing one while another engine creates a container
/// under it makes that create fail with ENOENT.
fn remove_shared_cgroups_if_last() {
    let f = cgroup_lock_file();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
    // SAFETY: flock on a descriptor we own; released when `f` closes.
    if unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return;
    }
    for ctrl in [
        "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd",
        "unified", "",
    ] {
        let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup").join(ctrl).join("berth"));
    }
}

pub fn cleanup_root(root: &Path) {
    let root_str = root.display().to_string();
    let containers = root.join("data/containers");
    let ids: Vec<String> = std::fs::read_dir(&containers)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    // Monitors of this root.
    if let Ok(procs) = std::fs::read_dir("/proc") {
        for p in procs.flatten() {
            let Ok(pid) = p.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&root_str) {
                // SAFETY: killing a leftover test process.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
    for id in &ids {
        for ctrl in [
            "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd",
            "unified", "",
        ] {
            let cg = Path::new("/sys/fs/cgroup")
                .join(ctrl)
                .join("berth")
                .join(id);
            if cg.exists() {
                if let Ok(procs) = std::fs::read_to_string(cg.join("cgroup.procs")) {
                    for pid in procs
                        .split_whitespace()
                        .filter_map(|p| p.parse::<i32>().ok())
                    {
                        // SAFETY: killing a leftover container process of this test.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
                let _ = std::fs::remove_dir(&cg);
            }
        }
    }
    remove_shared_cgroups_if_last();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&root_str))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let c = std::ffi::CString::new(p).unwrap();
        // SAFETY: unmounting a test mount point below our own temp root.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
    let _ = std::fs::remove_dir_all(root);
}

/// A minimal root filesystem: static busybox with its applets, passwd/group files.
pub fn busybox_rootfs(dir: &Path) {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("busybox-static is installed");
    for d in [
        "bin",
        "etc",
        "tmp",
        "root",
        "proc",
        "sys",
        "dev",
        "home/user",
        "var/www",
    ] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::copy(busybox, dir.join("bin/busybox")).unwrap();
    let list = Command::new(busybox).arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).split_whitespace() {
        if applet != "busybox" {
            let _ = symlink("busybox", dir.join("bin").join(applet));
        }
    }
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("etc/group"),
        "root:x:0:\nuser:x:1000:\nstaff:x:50:user\nnogroup:x:65534:\n",
    )
    .unwrap();
    std::fs::set_permissions(
        dir.join("tmp"),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .unwrap();
}
