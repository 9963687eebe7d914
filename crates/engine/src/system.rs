//! Stats, top, disk usage and pruning.

use std::collections::HashSet;
use std::sync::Arc;

use berth_engine_client::{
    ContainerStats, ContainerUsage, DiskUsage, PruneReport, TopResponse, VolumeUsage,
};
use berth_runtime::cgroups::Cgroup;

use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::volumes::dir_size;

/// Total host CPU time in nanoseconds (all cpus), from /proc/stat.
fn system_cpu_ns() -> u64 {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: u64 = text
        .lines()
        .next()
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .filter_map(|v| v.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    ticks * 1_000_000_000 / hz
}

fn host_memory() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

impl Engine {
    pub fn stats(&self, key: &str) -> Result<ContainerStats> {
        let rec = self.record(key)?;
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1);
        let mut out = ContainerStats {
            id: rec.id.clone(),
            name: format!("/{}", rec.name),
            read: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            system_cpu_ns: system_cpu_ns(),
            online_cpus: cpus,
            memory_limit: host_memory(),
            ..Default::default()
        };
        if rec.state.running {
            let s = Cgroup::new(&rec.cgroup_path()).stats();
            out.cpu_total_ns = s.cpu_total_ns;
            out.memory_usage = s.memory_usage;
            if let Some(l) = s.memory_limit {
                out.memory_limit = l.min(out.memory_limit.max(1));
            }
            out.pids_current = s.pids_current;
            out.pids_limit = s.pids_limit.unwrap_or(0);
            out.block_read = s.block_read;
            out.block_write = s.block_write;
        }
        Ok(out)
    }

    pub async fn top(&self, key: &str) -> Result<TopResponse> {
        let rec = self.record(key)?;
        if !rec.state.running {
            return Err(EngineError::Conflict(format!(
                "container {key} is not running"
            )));
        }
        let pids: HashSet<String> = Cgroup::new(&rec.cgroup_path())
            .pids()
            .into_iter()
            .map(|p| p.to_string())
            .collect();
        let output = tokio::process::Command::new("ps")
            .arg("-ef")
            .output()
            .await
            .map_err(|e| EngineError::Internal(format!("cannot run ps: {e}")))?;
        let text = String::from_utf8_lossy(&output.stdout);
        let mut lines = text.lines();
        let header = lines.next().unwrap_or_default();
        let titles: Vec<String> = header.split_whitespace().map(str::to_string).collect();
        let ncols = titles.len().max(1);
        let pid_col = titles.iter().position(|t| t == "PID").unwrap_or(1);
        let processes = lines
            .filter_map(|l| {
                let mut cols: Vec<String> = l
                    .splitn(ncols, char::is_whitespace)
                    .map(str::to_string)
                    .collect();
                // splitn with runs of spaces: re-split robustly keeping the command whole.
                let words: Vec<&str> = l.split_whitespace().collect();
                if words.len() >= ncols {
                    cols = words[..ncols - 1].iter().map(|s| s.to_string()).collect();
                    cols.push(words[ncols - 1..].join(" "));
                }
                pids.contains(cols.get(pid_col)?).then_some(cols)
            })
            .collect();
        Ok(TopResponse { titles, processes })
    }

    fn images_in_use(&self) -> HashSet<String> {
        self.records().into_iter().map(|r| r.image_id).collect()
    }

    fn volumes_in_use(&self) -> HashSet<String> {
        self.records()
            .into_iter()
            .flat_map(|r| {
                r.mounts
                    .into_iter()
                    .filter(|m| m.kind == "volume")
                    .map(|m| m.name)
            })
            .collect()
    }

    pub fn volume_in_use_by(&self, name: &str) -> Vec<String> {
        self.records()
            .into_iter()
            .filter(|r| {
                r.mounts
                    .iter()
                    .any(|m| m.kind == "volume" && m.name == name)
            })
            .map(|r| r.id)
            .collect()
    }

    pub fn image_in_use_by(&self, image_id: &str) -> Vec<String> {
        self.records()
            .into_iter()
            .filter(|r| r.image_id == image_id)
            .map(|r| r.id)
            .collect()
    }

    pub fn disk_usage(&self) -> Result<DiskUsage> {
        let records = self.records();
        let mut images: Vec<_> = self.images.list()?.iter().map(|i| i.summary()).collect();
        for img in &mut images {
            img.containers = records.iter().filter(|r| r.image_id == img.id).count() as i64;
        }
        let containers = records
            .iter()
            .map(|r| ContainerUsage {
                id: r.id.clone(),
                names: vec![format!("/{}", r.name)],
                image: r.config.image.clone(),
                state: r.state.status.clone(),
                size_rw: dir_size(&self.paths.container(&r.id).join("upper")) as i64,
            })
            .collect();
        let in_use = self.volumes_in_use();
        let volumes = self
            .volumes
            .list()
            .into_iter()
            .map(|v| VolumeUsage {
                size: self.volumes.size(&v.name) as i64,
                ref_count: records
                    .iter()
                    .filter(|r| r.mounts.iter().any(|m| m.name == v.name))
                    .count() as i64,
                name: v.name,
            })
            .collect::<Vec<_>>();
        let _ = in_use;
        Ok(DiskUsage {
            layers_size: self.images.layers_size()?,
            images,
            containers,
            volumes,
        })
    }

    pub async fn prune_containers(self: &Arc<Self>) -> Result<PruneReport> {
        let mut report = PruneReport::default();
        for rec in self.records() {
            if rec.state.running || rec.state.restarting {
                continue;
            }
            let size = dir_size(&self.paths.container(&rec.id).join("upper"));
            if self.remove(&rec.id, false, false).await.is_ok() {
                report.containers_deleted.push(rec.id);
                report.space_reclaimed += size;
            }
        }
        Ok(report)
    }

    pub async fn prune_images(self: &Arc<Self>, all: bool) -> Result<PruneReport> {
        let in_use = self.images_in_use();
        let engine = self.clone();
        let report = tokio::task::spawn_blocking(move || engine.images.prune(&in_use, all))
            .await
            .map_err(EngineError::internal)??;
        for id in &report.images_deleted {
            self.events
                .publish("image", "delete", id, Default::default());
        }
        Ok(report)
    }

    pub fn prune_volumes(&self) -> Result<PruneReport> {
        let in_use = self.volumes_in_use();
        let mut report = PruneReport::default();
        for v in self.volumes.list() {
            if in_use.contains(&v.name) {
                continue;
            }
            let size = self.volumes.size(&v.name);
            if self.volumes.remove(&v.name).is_ok() {
                self.events
                    .publish("volume", "destroy", &v.name, Default::default());
                report.volumes_deleted.push(v.name);
                report.space_reclaimed += size;
            }
        }
        Ok(report)
    }
}
