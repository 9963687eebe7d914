//! Measures write latency at a steady rate, the store's share of RunTask's p99: each write
//! is one transaction shaped like a RunTask (a new ~3 KiB task record under a random id, the container
//! instance's ~2 KiB record and the cluster's ~1 KiB record rewritten), issued open-loop at
//! RATE per second for SECONDS into a store warmed up by WARMUP writes (default 40,000, written
//! as fast as it takes them and not measured: a running store's files have grown already); prints p50/p99/p99.9/max and how many
//! writes took longer than 10 ms, so stalls (checkpoints) show.
//!
//! `cargo run --release -p berth-store --example write_latency -- DIR`
//! Env: RATE (default 1000), VALUE_PERCENT (100: record sizes as above), SECONDS (30), CACHE_MIB, WAL_MAX_MIB, WRITEBACK_MS, APPLY_MS
//! (the store's defaults), TASK_KEYS (`random`, the default, or `ordered`: task ids that grow
//! with time, as the server's do since stop 16).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_store::{Op, RedbOptions, RedbStore, Store, Txn};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Bytes written to the machine's disks so far (`/sys/block/*/stat`, loop and ram devices
/// left out): what reached the devices, whoever wrote it (run on a quiet machine).
fn written_bytes() -> u64 {
    let Ok(blocks) = std::fs::read_dir("/sys/block") else {
        return 0;
    };
    blocks
        .flatten()
        .filter(|b| {
            let name = b.file_name().to_string_lossy().into_owned();
            !name.starts_with("loop") && !name.starts_with("ram")
        })
        .filter_map(|b| std::fs::read_to_string(b.path().join("stat")).ok())
        .filter_map(|stat| stat.split_whitespace().nth(6)?.parse::<u64>().ok())
        .sum::<u64>()
        * 512
}

/// A JSON record of `len` bytes shaped like the server's (ARNs with random ids, field names
/// repeated), which compresses about as well as a real task record (~4x).
fn value(tag: &str, n: u64, len: usize) -> Vec<u8> {
    use std::fmt::Write;
    let mut seed = n.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut out = format!("{{\"{tag}\":{n},\"items\":[");
    while out.len() < len {
        let _ = write!(
            out,
            "{{\"arn\":\"arn:aws:ecs:us-east-1:123456789012:{tag}/demo/{:016x}{:016x}\",\"name\":\"c{:08x}\",\"status\":\"RUNNING\",\"cpu\":{},\"memory\":{},\"createdAt\":{}.{:03}}},",
            next(),
            next(),
            next() as u32,
            next() % 4096,
            next() % 8192,
            1_700_000_000 + next() % 1_000_000,
            next() % 1000
        );
    }
    let mut v = out.into_bytes();
    v.truncate(len);
    v
}

/// One RunTask-shaped transaction: task `n`'s new record, its container instance's and the
/// cluster's records rewritten (record sizes in `scale` percent).
fn runtask_txn(n: u64, scale: usize, ordered: bool) -> Txn {
    let size = |len: usize| len * scale / 100;
    let id = if ordered {
        n
    } else {
        n.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    };
    Txn::new()
        .and_then(Op::put(
            format!("tasks/demo/{id:016x}"),
            value("task", n, size(3072)),
        ))
        .and_then(Op::put(
            format!("instances/demo/{:03}", n % 100),
            value("instance", n, size(2048)),
        ))
        .and_then(Op::put("clusters/demo", value("cluster", n, 1024)))
}

#[tokio::main]
async fn main() {
    let dir = std::env::args().nth(1).expect("usage: write_latency DIR");
    let rate: u64 = env_or("RATE", 1000);
    // Value sizes in percent of a RunTask's records (to see what smaller records would give).
    let scale: usize = env_or("VALUE_PERCENT", 100);
    let seconds: u64 = env_or("SECONDS", 30);
    let defaults = RedbOptions::default();
    let options = RedbOptions {
        cache_size: env_or("CACHE_MIB", defaults.cache_size >> 20) << 20,
        wal_max_bytes: env_or("WAL_MAX_MIB", defaults.wal_max_bytes >> 20) << 20,
        writeback_interval: match env_or(
            "WRITEBACK_MS",
            defaults
                .writeback_interval
                .map_or(0, |d| d.as_millis() as u64),
        ) {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        },
        apply_delay: Duration::from_millis(env_or(
            "APPLY_MS",
            defaults.apply_delay.as_millis() as u64,
        )),
        ..defaults
    };
    println!(
        "rate {rate}/s for {seconds} s, cache {} MiB, wal_max {} MiB, writeback {:?}, apply delay {:?}",
        options.cache_size >> 20,
        options.wal_max_bytes >> 20,
        options.writeback_interval,
        options.apply_delay
    );
    let store = Arc::new(RedbStore::open_with(&dir, options).expect("open store"));
    // Warm-up: the first writes grow the log files and redb's file, which a running store
    // has done long ago; they are written as fast as the store takes them and not measured.
    let warmup: u64 = env_or("WARMUP", 40_000);
    let ordered = match std::env::var("TASK_KEYS").as_deref() {
        Ok("ordered") => true,
        Ok("random") | Err(_) => false,
        Ok(other) => panic!("TASK_KEYS must be random or ordered, not {other}"),
    };
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..64 {
        let store = store.clone();
        writers.spawn(async move {
            for n in (w..warmup).step_by(64) {
                store
                    .txn(runtask_txn(u64::MAX - n, 100, ordered))
                    .await
                    .expect("write");
            }
        });
    }
    writers.join_all().await;
    let latencies = Arc::new(Mutex::new(Vec::with_capacity((rate * seconds) as usize)));
    let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut handles = Vec::new();
    let start = Instant::now();
    let written_before = written_bytes();
    for n in 0..rate * seconds {
        tick.tick().await;
        let (store, latencies) = (store.clone(), latencies.clone());
        handles.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let txn = runtask_txn(n, scale, ordered);
            store.txn(txn).await.expect("write");
            latencies.lock().unwrap().push(t0.elapsed());
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let took = start.elapsed();
    let written = written_bytes() - written_before;
    let mut l = latencies.lock().unwrap().clone();
    l.sort();
    let at = |q: f64| l[((l.len() as f64 * q) as usize).min(l.len() - 1)];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{} writes in {:.1} s: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.1} ms, over 10 ms: {}, {:.1} KiB written per write",
        l.len(),
        took.as_secs_f64(),
        ms(at(0.50)),
        ms(at(0.99)),
        ms(at(0.999)),
        ms(*l.last().unwrap()),
        l.iter().filter(|d| **d > Duration::from_millis(10)).count(),
        written as f64 / 1024.0 / l.len() as f64
    );
}
