//! `berth stats`: Docker's resource usage table. CPU % comes from two consecutive samples as
//! Docker computes it: `(cpu delta / system delta) * online cpus * 100`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Result};
use berth_engine_client::client::Filters;
use berth_engine_client::{ContainerStats, EngineClient};
use clap::Args;
use futures_util::StreamExt;

use crate::format::{bytes_size, human_size, short_id, Table};
use crate::outln;

/// `berth stats`.
#[derive(Debug, Clone, Args)]
pub struct StatsArgs {
    /// Show all containers (default shows just running).
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Disable streaming stats and only pull the first result.
    #[arg(long = "no-stream")]
    pub no_stream: bool,
    /// Don't truncate output.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    #[arg(value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// One row of the table, from the latest sample and the one before.
#[derive(Debug, Clone, Default)]
pub struct Row {
    pub id: String,
    pub name: String,
    pub cpu_percent: f64,
    pub mem_usage: u64,
    pub mem_limit: u64,
    pub pids: u64,
    pub block_read: u64,
    pub block_write: u64,
}

/// Docker's CPU percentage from two samples.
pub fn cpu_percent(prev: Option<&ContainerStats>, cur: &ContainerStats) -> f64 {
    let Some(prev) = prev else { return 0.0 };
    let cpu_delta = cur.cpu_total_ns as f64 - prev.cpu_total_ns as f64;
    let sys_delta = cur.system_cpu_ns as f64 - prev.system_cpu_ns as f64;
    let cpus = if cur.online_cpus == 0 {
        1.0
    } else {
        cur.online_cpus as f64
    };
    if sys_delta > 0.0 && cpu_delta > 0.0 {
        cpu_delta / sys_delta * cpus * 100.0
    } else {
        0.0
    }
}

impl Row {
    fn from_samples(prev: Option<&ContainerStats>, cur: &ContainerStats) -> Row {
        Row {
            id: cur.id.clone(),
            name: cur.name.trim_start_matches('/').to_string(),
            cpu_percent: cpu_percent(prev, cur),
            mem_usage: cur.memory_usage,
            mem_limit: cur.memory_limit,
            pids: cur.pids_current,
            block_read: cur.block_read,
            block_write: cur.block_write,
        }
    }

    fn cells(&self, no_trunc: bool) -> Vec<String> {
        let mem_pct = if self.mem_limit > 0 {
            self.mem_usage as f64 / self.mem_limit as f64 * 100.0
        } else {
            0.0
        };
        vec![
            if no_trunc {
                self.id.clone()
            } else {
                short_id(&self.id)
            },
            self.name.clone(),
            format!("{:.2}%", self.cpu_percent),
            format!(
                "{} / {}",
                bytes_size(self.mem_usage as f64),
                bytes_size(self.mem_limit as f64)
            ),
            format!("{mem_pct:.2}%"),
            "0B / 0B".to_string(),
            format!(
                "{} / {}",
                human_size(self.block_read as f64),
                human_size(self.block_write as f64)
            ),
            self.pids.to_string(),
        ]
    }
}

/// Renders rows as Docker's stats table.
pub fn render(rows: &[Row], no_trunc: bool) -> String {
    let mut t = Table::new(&[
        "CONTAINER ID",
        "NAME",
        "CPU %",
        "MEM USAGE / LIMIT",
        "MEM %",
        "NET I/O",
        "BLOCK I/O",
        "PIDS",
    ]);
    for r in rows {
        t.row(r.cells(no_trunc));
    }
    t.render()
}

async fn two_samples(client: &EngineClient, id: &str) -> Result<Row> {
    let mut stream = client.stats_stream(id).await?;
    let first = match stream.next().await {
        Some(s) => s?,
        None => bail!("no stats for container {id}"),
    };
    let second = tokio::time::timeout(Duration::from_secs(3), stream.next()).await;
    Ok(match second {
        Ok(Some(Ok(s))) => Row::from_samples(Some(&first), &s),
        _ => Row::from_samples(None, &first),
    })
}

/// `berth stats`.
pub async fn stats(client: &EngineClient, args: StatsArgs) -> Result<i32> {
    let ids: Vec<String> = if args.containers.is_empty() {
        client
            .list_containers(args.all, &Filters::new())
            .await?
            .into_iter()
            .map(|c| c.id)
            .collect()
    } else {
        args.containers.clone()
    };
    if args.no_stream {
        let results =
            futures_util::future::join_all(ids.iter().map(|id| two_samples(client, id))).await;
        let mut rows = Vec::new();
        let mut code = 0;
        for r in results {
            match r {
                Ok(row) => rows.push(row),
                Err(e) => {
                    crate::errln!("{e:#}");
                    code = 1;
                }
            }
        }
        outln!("{}", render(&rows, args.no_trunc).trim_end());
        return Ok(code);
    }

    let state: Arc<Mutex<HashMap<String, Row>>> = Arc::new(Mutex::new(HashMap::new()));
    for id in &ids {
        let client = client.clone();
        let id = id.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let Ok(mut stream) = client.stats_stream(&id).await else {
                return;
            };
            let mut prev: Option<ContainerStats> = None;
            while let Some(Ok(s)) = stream.next().await {
                let row = Row::from_samples(prev.as_ref(), &s);
                if let Ok(mut m) = state.lock() {
                    m.insert(id.clone(), row);
                }
                prev = Some(s);
            }
        });
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::signal::ctrl_c() => return Ok(0),
        }
        let rows: Vec<Row> = match state.lock() {
            Ok(m) => ids.iter().filter_map(|id| m.get(id).cloned()).collect(),
            Err(_) => Vec::new(),
        };
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        if write!(out, "\x1b[2J\x1b[H{}", render(&rows, args.no_trunc)).is_err()
            || out.flush().is_err()
        {
            return Ok(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_from_two_samples() {
        let a = ContainerStats {
            cpu_total_ns: 1_000_000_000,
            system_cpu_ns: 100_000_000_000,
            online_cpus: 4,
            ..Default::default()
        };
        let b = ContainerStats {
            cpu_total_ns: 1_500_000_000,
            system_cpu_ns: 104_000_000_000,
            online_cpus: 4,
            ..Default::default()
        };
        assert!((cpu_percent(Some(&a), &b) - 50.0).abs() < 1e-9);
        assert_eq!(cpu_percent(None, &b), 0.0);
    }

    #[test]
    fn row_cells() {
        let s = ContainerStats {
            id: "0123456789abcdef".into(),
            name: "/web".into(),
            memory_usage: 1536 * 1024,
            memory_limit: 64 * 1024 * 1024,
            pids_current: 3,
            block_read: 4_260_000,
            ..Default::default()
        };
        let r = Row::from_samples(None, &s);
        assert_eq!(
            r.cells(false),
            vec![
                "0123456789ab",
                "web",
                "0.00%",
                "1.5MiB / 64MiB",
                "2.34%",
                "0B / 0B",
                "4.26MB / 0B",
                "3"
            ]
        );
    }
}
