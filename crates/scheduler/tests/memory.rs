//! Memory per instance in the view, measured by a counting global allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

#[path = "../benches/cluster.rs"]
mod cluster;

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: defers to the system allocator and only counts bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn a_realistic_instance_takes_under_2_kib() {
    for fill in [0.5, 0.9] {
        let n = 5_000;
        let specs = cluster::specs(n, fill);
        let before = LIVE.load(Ordering::Relaxed);
        let view = berth_scheduler::ClusterView::from_specs(specs.clone());
        let bytes = LIVE.load(Ordering::Relaxed) - before;
        let per = bytes as f64 / n as f64;
        let tasks: u32 = view.instances().map(|i| i.running_tasks_count()).sum();
        println!(
            "fill {fill}: {per:.0} bytes per instance ({} attributes, {:.1} tasks per instance)",
            specs[0].attributes.len(),
            f64::from(tasks) / n as f64
        );
        assert!(per < 2048.0, "{per} bytes per instance");
        // The indexes a request builds and the view keeps: the columns of the spread and
        // memberOf attributes, the instances running the request's group.
        let req = cluster::run_task_request();
        let before_place = LIVE.load(Ordering::Relaxed);
        drop(berth_scheduler::place(&view, &req, 1).unwrap());
        let index = (LIVE.load(Ordering::Relaxed) - before_place) as f64 / n as f64;
        println!("fill {fill}: {index:.0} bytes per instance of indexes after a request");
        assert!(per + index < 2048.0, "{} bytes per instance", per + index);
        drop(view);
    }
}
