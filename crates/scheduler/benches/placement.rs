//! `placement`: placements per second for the RunTask-sized request (10 tasks,
//! spread(attribute:ecs.availability-zone) + binpack(memory) + memberOf) on clusters of 1,000,
//! 5,000 and 10,000 realistic instances 50% filled, and at 5,000 instances 80% and 90% filled.
//! Throughput is in placements (criterion elements). Figures: docs/benchmarks.md.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

#[path = "cluster.rs"]
mod cluster;

fn placement(c: &mut Criterion) {
    let req = cluster::run_task_request();
    let mut group = c.benchmark_group("placement");
    group.throughput(Throughput::Elements(u64::from(req.count)));
    for (n, fill) in [
        (1_000, 0.5),
        (5_000, 0.5),
        (10_000, 0.5),
        (5_000, 0.8),
        (5_000, 0.9),
    ] {
        let view = cluster::view(n, fill);
        let mut seed = 0u64;
        let out = berth_scheduler::place(&view, &req, seed).expect("valid request");
        assert_eq!(out.unplaced, 0, "benchmark cluster must fit the request");
        let id = BenchmarkId::new(format!("run_task_10/fill{}", (fill * 100.0) as u32), n);
        group.bench_with_input(id, &view, |b, view| {
            b.iter(|| {
                seed += 1;
                black_box(berth_scheduler::place(view, &req, seed).unwrap())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, placement);
criterion_main!(benches);
