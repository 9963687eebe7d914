//! RedbStore benchmarks: single-writer put latency, group-commit throughput of 64 concurrent
//! writers, a 1,000-key range, and opening a store of 100,000 ~1.5 KiB values and reading
//! them all (the control plane's start). Run with `cargo bench -p berth-store`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_store::{Op, RangeRequest, RedbStore, Store, Txn};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A ~1.5 KiB value, like a task record.
fn task_value(i: usize) -> Vec<u8> {
    let mut value =
        format!("{{\"taskArn\":\"arn:aws:ecs:us-east-1:123456789012:task/demo/{i:032}\"")
            .into_bytes();
    value.resize(1536, b'x');
    value
}

fn put_latency(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path()).unwrap();
    let mut i = 0usize;
    c.bench_function("redb/put 1.5KiB, one writer", |b| {
        b.iter(|| {
            i += 1;
            rt.block_on(store.put(&format!("tasks/{}", i % 10_000), task_value(i)))
                .unwrap()
        })
    });
}

fn concurrent_txns(c: &mut Criterion) {
    const TASKS: usize = 64;
    const PER_TASK: usize = 20;
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(RedbStore::open(dir.path()).unwrap());
    let mut group = c.benchmark_group("redb/64 concurrent writers");
    group.throughput(Throughput::Elements((TASKS * PER_TASK) as u64));
    group.sample_size(20);
    // Each transaction is RunTask-like: create a task key if missing and update a counter.
    let mut round = 0usize;
    group.bench_function("create-if-missing txn + put, 1.5KiB", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                round += 1;
                let start = Instant::now();
                rt.block_on(async {
                    let mut handles = Vec::with_capacity(TASKS);
                    for task in 0..TASKS {
                        let store = store.clone();
                        handles.push(tokio::spawn(async move {
                            for n in 0..PER_TASK {
                                let key = format!("tasks/{round}/{task}/{n}");
                                let response = store
                                    .txn(
                                        Txn::new()
                                            .when(berth_store::Compare::missing(&key))
                                            .and_then(Op::put(&key, task_value(n)))
                                            .and_then(Op::put(
                                                format!("instances/{task}"),
                                                key.clone(),
                                            )),
                                    )
                                    .await
                                    .unwrap();
                                assert!(response.succeeded);
                            }
                        }));
                    }
                    for handle in handles {
                        handle.await.unwrap();
                    }
                });
                total += start.elapsed();
            }
            total
        })
    });
    group.finish();
}

fn range_1000(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path()).unwrap();
    rt.block_on(async {
        for chunk in 0..10 {
            let mut txn = Txn::new();
            for i in chunk * 1000..(chunk + 1) * 1000 {
                txn = txn.and_then(Op::put(format!("tasks/{i:06}"), task_value(i)));
            }
            store.txn(txn).await.unwrap();
        }
    });
    let mut group = c.benchmark_group("redb/range");
    group.throughput(Throughput::Elements(1000));
    group.bench_function("1,000 of 10,000 keys, 1.5KiB", |b| {
        b.iter(|| {
            let response = rt
                .block_on(store.range(RangeRequest {
                    prefix: "tasks/".into(),
                    start_after: Some("tasks/004999".into()),
                    limit: Some(1000),
                }))
                .unwrap();
            assert_eq!(response.kvs.len(), 1000);
        })
    });
    group.finish();
}

fn open_and_read_100k(c: &mut Criterion) {
    const KEYS: usize = 100_000;
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    {
        let store = RedbStore::open(dir.path()).unwrap();
        rt.block_on(async {
            for chunk in 0..KEYS / 1000 {
                let mut txn = Txn::new();
                for i in chunk * 1000..(chunk + 1) * 1000 {
                    txn = txn.and_then(Op::put(format!("tasks/{i:06}"), task_value(i)));
                }
                store.txn(txn).await.unwrap();
            }
        });
    }
    let mut group = c.benchmark_group("redb/start");
    group.sample_size(10);
    for page in [None, Some(1000usize)] {
        let name = match page {
            None => "one range".to_string(),
            Some(n) => format!("pages of {n}"),
        };
        group.bench_with_input(
            BenchmarkId::new("open + read 100,000 x 1.5KiB", name),
            &page,
            |b, page| {
                b.iter(|| {
                    rt.block_on(async {
                        let store = RedbStore::open(dir.path()).unwrap();
                        let mut count = 0;
                        let mut start_after = None;
                        loop {
                            let response = store
                                .range(RangeRequest {
                                    prefix: "tasks/".into(),
                                    start_after: start_after.take(),
                                    limit: *page,
                                })
                                .await
                                .unwrap();
                            count += response.kvs.len();
                            start_after = response.kvs.last().map(|kv| kv.key.clone());
                            if !response.more {
                                break;
                            }
                        }
                        assert_eq!(count, KEYS);
                    })
                })
            },
        );
    }
    group.finish();
}

criterion_group!(
    benches,
    put_latency,
    concurrent_txns,
    range_1000,
    open_and_read_100k
);
criterion_main!(benches);
