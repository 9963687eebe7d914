//! Measures the control plane's start path in a fresh process: open a store holding 100,000
//! ~1.5 KiB values and read them all. A child process fills the store and is then either
//! closed cleanly (`clean`) or SIGKILLed (`crash`, so the open must recover the file first).
//!
//! `cargo run --release -p berth-store --example start_time -- clean|crash [quick-repair]`

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

use berth_store::{Op, RangeRequest, RedbOptions, RedbStore, Store, Txn};

const KEYS: usize = 100_000;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("clean");
    let options = RedbOptions {
        quick_repair: args.iter().any(|a| a == "quick-repair"),
        cache_size: std::env::var("CACHE_MIB")
            .map(|v| v.parse::<usize>().unwrap() << 20)
            .unwrap_or(RedbOptions::default().cache_size),
        ..RedbOptions::default()
    };
    if mode == "fill" {
        let store = RedbStore::open_with(&args[2], options).unwrap();
        for chunk in 0..KEYS / 1000 {
            let mut txn = Txn::new();
            for i in chunk * 1000..(chunk + 1) * 1000 {
                let mut value = format!(
                    "{{\"taskArn\":\"arn:aws:ecs:us-east-1:123456789012:task/demo/{i:032}\""
                )
                .into_bytes();
                value.resize(1536, b'x');
                txn = txn.and_then(Op::put(format!("tasks/{i:06}"), value));
            }
            store.txn(txn).await.unwrap();
        }
        if args.iter().any(|a| a == "crash") {
            println!("filled");
            std::thread::sleep(std::time::Duration::from_secs(120));
        }
        drop(store);
        println!("filled");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut fill_args = vec!["fill".to_string(), dir.path().display().to_string()];
    fill_args.extend(args[1..].iter().cloned());
    let mut child = Command::new(&args[0])
        .args(&fill_args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(lines.next().unwrap().unwrap().contains("filled"));
    if mode == "crash" {
        child.kill().unwrap();
    }
    child.wait().unwrap();
    let size = std::fs::metadata(dir.path().join("store.redb"))
        .unwrap()
        .len();
    for attempt in 0..3 {
        let start = Instant::now();
        let store = RedbStore::open_with(dir.path(), options.clone()).unwrap();
        let opened = start.elapsed();
        // Read in pages (PAGE=n, each dropped after use, as a loader that builds its own
        // state would) or all at once.
        let page: Option<usize> = std::env::var("PAGE").ok().map(|v| v.parse().unwrap());
        let mut count = 0;
        let mut start_after = None;
        loop {
            let response = store
                .range(RangeRequest {
                    prefix: "tasks/".into(),
                    start_after: start_after.take(),
                    limit: page,
                })
                .await
                .unwrap();
            count += response.kvs.len();
            start_after = response.kvs.last().map(|kv| kv.key.clone());
            if !response.more {
                break;
            }
        }
        let read = start.elapsed();
        assert_eq!(count, KEYS);
        drop(store);
        println!(
            "{mode} quick_repair={} open #{attempt} (file {} MiB): open {:.0} ms, open + read {count} values {:.0} ms",
            options.quick_repair,
            size >> 20,
            opened.as_secs_f64() * 1000.0,
            read.as_secs_f64() * 1000.0
        );
    }
}
