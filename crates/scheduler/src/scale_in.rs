//! Scale-in: which running tasks of a service to stop, by the same strategies read backwards.
//!
//! `spread` stops from the attribute value (or instance) holding the most of the given tasks,
//! so the survivors stay balanced; `binpack` stops on the instance with the most remaining
//! cpu/memory, so the survivors stay packed; `random` is seeded. Ties go to the next strategy,
//! then to the seed.

use crate::error::SchedulerError;
use crate::place::{compile_strategies, Buckets};
use crate::request::{BinpackField, PlacementStrategy, MAX_STRATEGIES};
use crate::util::mix;
use crate::view::{ClusterView, Resources};

/// A running task that may be stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RunningTask {
    /// Index of its instance in the view.
    pub instance: usize,
    /// What it reserves (given back when it stops).
    pub reservation: Resources,
}

/// Chooses `count` of `tasks` to stop, returned as indices into `tasks` in stop order.
/// Tasks on instances outside the view are ignored (stopped first, since they are already gone).
pub fn select_tasks_to_stop(
    view: &ClusterView,
    tasks: &[RunningTask],
    strategy: &[PlacementStrategy],
    count: usize,
    seed: u64,
) -> Result<Vec<usize>, SchedulerError> {
    use crate::place::Strat;
    let (strats, levels) = compile_strategies(view, strategy)?;
    let n = strats.len();
    let mut buckets: Vec<Buckets> = levels
        .iter()
        .map(|_| Buckets::new(view.strings.len()))
        .collect();
    let mut task_bucket: Vec<[u32; MAX_STRATEGIES]> = Vec::with_capacity(tasks.len());
    let mut on_instance = vec![0u32; view.len()];
    let mut released = vec![Resources::default(); view.len()];
    for t in tasks {
        let mut b = [0u32; MAX_STRATEGIES];
        if let Some(inst) = view.instances.get(t.instance) {
            on_instance[t.instance] += 1;
            for (l, bk) in buckets.iter_mut().enumerate() {
                b[l] = bk.bucket(view, inst, levels[l]);
                bk.counts[b[l] as usize] += 1;
            }
        }
        task_bucket.push(b);
    }
    let mut stopped = vec![false; tasks.len()];
    let mut order = Vec::with_capacity(count.min(tasks.len()));
    while order.len() < count.min(tasks.len()) {
        let mut best: Option<(usize, [u64; MAX_STRATEGIES + 1])> = None;
        for (i, t) in tasks.iter().enumerate() {
            if stopped[i] {
                continue;
            }
            let mut k = [0u64; MAX_STRATEGIES + 1];
            match view.instances.get(t.instance) {
                None => k = [u64::MAX; MAX_STRATEGIES + 1],
                Some(inst) => {
                    for (l, slot) in k.iter_mut().enumerate().take(n) {
                        *slot = match strats[l] {
                            Strat::Binpack(BinpackField::Cpu) => {
                                u64::from(inst.remaining.cpu) + u64::from(released[t.instance].cpu)
                            }
                            Strat::Binpack(BinpackField::Memory) => {
                                u64::from(inst.remaining.memory)
                                    + u64::from(released[t.instance].memory)
                            }
                            Strat::SpreadInstance => u64::from(on_instance[t.instance]),
                            Strat::SpreadAttr(level) => {
                                buckets[level].counts[task_bucket[i][level] as usize]
                            }
                            Strat::Random => mix(seed ^ 0x5EED, i as u64, order.len() as u64),
                        };
                    }
                    k[n] = mix(seed, i as u64, u64::MAX);
                }
            }
            if best.as_ref().is_none_or(|(_, bk)| k[..=n] > bk[..=n]) {
                best = Some((i, k));
            }
        }
        let Some((i, _)) = best else { break };
        stopped[i] = true;
        order.push(i);
        let t = tasks[i];
        if t.instance < view.len() {
            on_instance[t.instance] -= 1;
            let r = &mut released[t.instance];
            r.cpu = r.cpu.saturating_add(t.reservation.cpu);
            r.memory = r.memory.saturating_add(t.reservation.memory);
            for (l, bk) in buckets.iter_mut().enumerate() {
                bk.counts[task_bucket[i][l] as usize] -= 1;
            }
        }
    }
    Ok(order)
}
