//! Reads a container's cgroup: resource usage for `stats` and the OOM-kill counter that tells
//! whether the kernel killed the container for exceeding its memory limit. Works on cgroup v1
//! (one hierarchy per controller under /sys/fs/cgroup/<controller>) and on the unified v2
//! hierarchy.

use std::path::{Path, PathBuf};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Which cgroup layout the host uses for resource controllers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    V1,
    V2,
}

/// Detects the host's cgroup layout: v2 when /sys/fs/cgroup itself is the unified hierarchy.
pub fn version() -> CgroupVersion {
    if Path::new(CGROUP_ROOT).join("cgroup.controllers").exists() {
        CgroupVersion::V2
    } else {
        CgroupVersion::V1
    }
}

/// On a cgroup v2 host, creates the parent of a container's cgroup (`/berth` for `/berth/<id>`),
/// tolerating a concurrent creator. libcontainer's v2 manager checks for each directory and then
/// creates it, so two containers started at once by different engines could both find the
/// shared parent missing and one would fail with EEXIST; with the parent made here first,
/// libcontainer only creates the container's own leaf (and still enables the controllers on
/// the way down). On v1 libcontainer creates each controller's directories itself, cpuset's
/// with its inherited cpus and mems, so nothing is done there.
pub fn ensure_parent(path: &str) -> std::io::Result<()> {
    if version() != CgroupVersion::V2 {
        return Ok(());
    }
    match Path::new(path.trim_start_matches('/')).parent() {
        // create_dir_all treats a directory that appears meanwhile as success.
        Some(parent) if !parent.as_os_str().is_empty() => {
            std::fs::create_dir_all(Path::new(CGROUP_ROOT).join(parent))
        }
        _ => Ok(()),
    }
}

/// Usage figures of one cgroup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupStats {
    pub cpu_total_ns: u64,
    pub memory_usage: u64,
    /// `None` when unlimited.
    pub memory_limit: Option<u64>,
    pub pids_current: u64,
    /// `None` when unlimited.
    pub pids_limit: Option<u64>,
    pub block_read: u64,
    pub block_write: u64,
}

/// A container's cgroup, by its path relative to the hierarchy roots (e.g. `/berth/<id>`).
#[derive(Debug, Clone)]
pub struct Cgroup {
    path: String,
    version: CgroupVersion,
}

impl Cgroup {
    pub fn new(path: &str) -> Self {
        Self {
            path: path.trim_start_matches('/').to_string(),
            version: version(),
        }
    }

    fn file(&self, controller: &str, name: &str) -> PathBuf {
        match self.version {
            CgroupVersion::V1 => Path::new(CGROUP_ROOT)
                .join(controller)
                .join(&self.path)
                .join(name),
            CgroupVersion::V2 => Path::new(CGROUP_ROOT).join(&self.path).join(name),
        }
    }

    fn read_u64(&self, controller: &str, name: &str) -> Option<u64> {
        read_trimmed(&self.file(controller, name)).and_then(|s| s.parse().ok())
    }

    /// How many times the kernel's OOM killer killed a process of this cgroup.
    pub fn oom_kills(&self) -> u64 {
        let (controller, name) = match self.version {
            CgroupVersion::V1 => ("memory", "memory.oom_control"),
            CgroupVersion::V2 => ("", "memory.events"),
        };
        read_trimmed(&self.file(controller, name))
            .map(|text| keyed_value(&text, "oom_kill"))
            .unwrap_or(0)
    }

    /// Current usage; missing controllers read as zero.
    pub fn stats(&self) -> CgroupStats {
        match self.version {
            CgroupVersion::V1 => self.stats_v1(),
            CgroupVersion::V2 => self.stats_v2(),
        }
    }

    fn stats_v1(&self) -> CgroupStats {
        let limit = self
            .read_u64("memory", "memory.limit_in_bytes")
            .filter(|l| *l < (1u64 << 62));
        let usage = self
            .read_u64("memory", "memory.usage_in_bytes")
            .unwrap_or(0);
        // Docker reports usage minus page cache (total_inactive_file).
        let inactive = read_trimmed(&self.file("memory", "memory.stat"))
            .map(|t| keyed_value(&t, "total_inactive_file"))
            .unwrap_or(0);
        let (read, write) = read_trimmed(&self.file("blkio", "blkio.throttle.io_service_bytes"))
            .map(|t| blkio_v1(&t))
            .unwrap_or((0, 0));
        CgroupStats {
            cpu_total_ns: self.read_u64("cpuacct", "cpuacct.usage").unwrap_or(0),
            memory_usage: usage.saturating_sub(inactive),
            memory_limit: limit,
            pids_current: self.read_u64("pids", "pids.current").unwrap_or(0),
            pids_limit: self.read_u64("pids", "pids.max"),
            block_read: read,
            block_write: write,
        }
    }

    fn stats_v2(&self) -> CgroupStats {
        let cpu_usec = read_trimmed(&self.file("", "cpu.stat"))
            .map(|t| keyed_value(&t, "usage_usec"))
            .unwrap_or(0);
        let inactive = read_trimmed(&self.file("", "memory.stat"))
            .map(|t| keyed_value(&t, "inactive_file"))
            .unwrap_or(0);
        let (read, write) = read_trimmed(&self.file("", "io.stat"))
            .map(|t| io_v2(&t))
            .unwrap_or((0, 0));
        CgroupStats {
            cpu_total_ns: cpu_usec * 1000,
            memory_usage: self
                .read_u64("", "memory.current")
                .unwrap_or(0)
                .saturating_sub(inactive),
            memory_limit: self.read_u64("", "memory.max"),
            pids_current: self.read_u64("", "pids.current").unwrap_or(0),
            pids_limit: self.read_u64("", "pids.max"),
            block_read: read,
            block_write: write,
        }
    }

    /// Removes the cgroup's directory in every hierarchy it lives in (each v1 controller, or
    /// the v2 tree). A directory that is not there is fine; the first other failure is
    /// returned (EBUSY while a process is still in it).
    pub fn remove(&self) -> std::io::Result<()> {
        let rmdir = |dir: PathBuf| match std::fs::remove_dir(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
        match self.version {
            CgroupVersion::V2 => rmdir(Path::new(CGROUP_ROOT).join(&self.path)),
            CgroupVersion::V1 => {
                for entry in std::fs::read_dir(CGROUP_ROOT)?.flatten() {
                    // Real hierarchies only: `cpu,cpuacct`'s aliases are symlinks.
                    if entry.file_type().is_ok_and(|t| t.is_dir()) {
                        rmdir(entry.path().join(&self.path))?;
                    }
                }
                Ok(())
            }
        }
    }

    /// Pids of every process in the cgroup.
    pub fn pids(&self) -> Vec<i32> {
        let file = match self.version {
            CgroupVersion::V1 => self.file("pids", "cgroup.procs"),
            CgroupVersion::V2 => self.file("", "cgroup.procs"),
        };
        read_trimmed(&file)
            .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }
}

fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Value of `key` in a `key value` per line file (memory.stat, memory.events, oom_control).
fn keyed_value(text: &str, key: &str) -> u64 {
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Sums `Read`/`Write` lines of blkio.throttle.io_service_bytes.
fn blkio_v1(text: &str) -> (u64, u64) {
    let (mut read, mut write) = (0, 0);
    for line in text.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        if let [_, op, value] = parts[..] {
            let v: u64 = value.parse().unwrap_or(0);
            match op {
                "Read" => read += v,
                "Write" => write += v,
                _ => {}
            }
        }
    }
    (read, write)
}

/// Sums `rbytes=`/`wbytes=` of io.stat.
fn io_v2(text: &str) -> (u64, u64) {
    let (mut read, mut write) = (0, 0);
    for field in text.split_whitespace() {
        if let Some(v) = field.strip_prefix("rbytes=") {
            read += v.parse().unwrap_or(0);
        } else if let Some(v) = field.strip_prefix("wbytes=") {
            write += v.parse().unwrap_or(0);
        }
    }
    (read, write)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_oom_control_and_events() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 2";
        assert_eq!(keyed_value(v1, "oom_kill"), 2);
        let v2 = "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\noom_group_kill 0";
        assert_eq!(keyed_value(v2, "oom_kill"), 1);
        assert_eq!(keyed_value(v2, "missing"), 0);
    }

    #[test]
    fn sums_block_io() {
        let v1 = "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:16 Read 100\nTotal 12388";
        assert_eq!(blkio_v1(v1), (4196, 8192));
        let v2 = "8:0 rbytes=10 wbytes=20 rios=1 wios=2\n8:16 rbytes=5 wbytes=0";
        assert_eq!(io_v2(v2), (15, 20));
    }
}
