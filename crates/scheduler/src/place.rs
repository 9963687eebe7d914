//! Placement: filter instances, then choose per task by the strategy chain.
//!
//! [`place`]: one pass over the view per request resolves everything that cannot change while the
//! request is placed (status, agent, `requiresAttributes`, constraints that do not read
//! `runningTasksCount` or `task:group`, resources that are already too small), reading the view's
//! attribute columns and group index and memoising each `memberOf` attribute test per value
//! symbol. Candidates are grouped by spread bucket (one group per availability zone, say) and
//! each group keeps a binary heap on the candidates' own keys, so a task costs one look at every
//! group's top plus O(log n). [`place_scan`] is the plain reference (and serves `random`): the
//! same pass with per-instance attribute searches, then one scan over the candidates per task
//! keeping the lexicographically smallest key (strategy 1, ..., seeded tie-break, position).

use std::sync::Arc;

use crate::error::SchedulerError;
use crate::expr::{compile, parse, Cond, Dynamic, SymTest};
use crate::intern::Sym;
use crate::request::{
    BinpackField, PlacementConstraint, PlacementRequest, PlacementStrategy, SpreadField,
    MAX_CONSTRAINTS, MAX_STRATEGIES,
};
use crate::util::mix;
use crate::view::{ClusterView, InstanceStatus, Protocol, Resources, Slot as Instance, MISSING};

/// A host port given to a container of a placed task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// Index of the container in the task definition.
    pub container: u16,
    pub container_port: u16,
    pub host_port: u16,
    pub protocol: Protocol,
}

/// One placed task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// 0-based index of the task within the request.
    pub task_index: u32,
    /// Index of the instance in the view (see [`ClusterView::instance`]).
    pub instance: usize,
    /// Host ports assigned to the task's port mappings, in mapping order.
    pub host_ports: Vec<HostPort>,
}

/// Why an instance could not take a task, with ECS's reason strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FailureReason {
    /// The instance is not ACTIVE (DRAINING, REGISTERING, ...).
    NotActive,
    /// The agent is disconnected.
    Agent,
    /// A `requiresAttributes` entry is missing or has another value.
    MissingAttribute,
    /// A `memberOf` expression is false for the instance.
    MemberOf,
    /// The instance already runs a task of the group.
    DistinctInstance,
    Cpu,
    Memory,
    Ports,
}

impl FailureReason {
    /// The reason string as ECS reports it.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::NotActive => "INSTANCE NOT ACTIVE",
            FailureReason::Agent => "AGENT",
            FailureReason::MissingAttribute => "MISSING ATTRIBUTE",
            FailureReason::MemberOf => "CONSTRAINT: MemberOf placement constraint unsatisfied",
            FailureReason::DistinctInstance => {
                "CONSTRAINT: DistinctInstance placement constraint unsatisfied"
            }
            FailureReason::Cpu => "RESOURCE:CPU",
            FailureReason::Memory => "RESOURCE:MEMORY",
            FailureReason::Ports => "RESOURCE:PORTS",
        }
    }
}

impl std::fmt::Display for FailureReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How many instances failed a task for one reason (each instance counted once, for the first
/// check it failed in the order of [`FailureReason`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FailureCount {
    pub reason: FailureReason,
    pub instances: u32,
}

/// The decision for a request.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PlacementOutcome {
    pub placements: Vec<Placement>,
    /// Tasks that could not be placed (`count - placements.len()`).
    pub unplaced: u32,
    /// When `unplaced > 0`: why each instance could not take the first unplaced task.
    pub failures: Vec<FailureCount>,
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Strat {
    Binpack(BinpackField),
    SpreadInstance,
    /// Index into the spread levels.
    SpreadAttr(usize),
    Random,
}

#[derive(Clone, Copy, Debug)]
struct FixedPort {
    protocol: Protocol,
    port: u16,
    container: u16,
    container_port: u16,
}

#[derive(Clone, Copy, Debug)]
struct DynPort {
    protocol: Protocol,
    container: u16,
    container_port: u16,
}

/// A request resolved against a view.
pub(crate) struct Compiled<'v> {
    pub(crate) view: &'v ClusterView,
    pub(crate) need: Resources,
    fixed: Vec<FixedPort>,
    dynamic: Vec<DynPort>,
    /// (name, required value): `None` name or `Some(None)` value means no instance can match.
    required: Vec<(Option<Sym>, Option<Option<Sym>>)>,
    static_conds: Vec<Cond>,
    dynamic_conds: Vec<Cond>,
    distinct: bool,
    pub(crate) group: Option<Sym>,
    range: (u16, u16),
}

/// Resolves the strategy chain; spread attributes become levels with their attribute symbol.
pub(crate) fn compile_strategies(
    view: &ClusterView,
    strategy: &[PlacementStrategy],
) -> Result<(Vec<Strat>, Vec<Option<Sym>>), SchedulerError> {
    if strategy.len() > MAX_STRATEGIES {
        return Err(SchedulerError::InvalidStrategy {
            reason: format!(
                "{} strategies given; at most {MAX_STRATEGIES} are allowed",
                strategy.len()
            ),
        });
    }
    let mut strats = Vec::with_capacity(strategy.len());
    let mut levels = Vec::new();
    for s in strategy {
        strats.push(match s {
            PlacementStrategy::Binpack(f) => Strat::Binpack(*f),
            PlacementStrategy::Random => Strat::Random,
            PlacementStrategy::Spread(SpreadField::Instance) => Strat::SpreadInstance,
            PlacementStrategy::Spread(SpreadField::Attribute(name)) => {
                levels.push(view.strings.get(name));
                Strat::SpreadAttr(levels.len() - 1)
            }
        });
    }
    Ok((strats, levels))
}

impl<'v> Compiled<'v> {
    pub(crate) fn new(
        view: &'v ClusterView,
        req: &PlacementRequest,
    ) -> Result<Self, SchedulerError> {
        if req.constraints.len() > MAX_CONSTRAINTS {
            return Err(SchedulerError::InvalidConstraint {
                reason: format!(
                    "{} constraints given; at most {MAX_CONSTRAINTS} are allowed",
                    req.constraints.len()
                ),
            });
        }
        let (lo, hi) = req.dynamic_ports;
        if lo == 0 || lo > hi {
            return Err(SchedulerError::InvalidTask {
                reason: format!("dynamic port range {lo}-{hi} is empty or starts at 0"),
            });
        }
        let mut fixed = Vec::new();
        let mut dynamic = Vec::new();
        for (ci, c) in req.task.containers.iter().enumerate() {
            let container = u16::try_from(ci).map_err(|_| SchedulerError::InvalidTask {
                reason: "too many containers".into(),
            })?;
            for m in &c.port_mappings {
                if m.host_port == 0 {
                    dynamic.push(DynPort {
                        protocol: m.protocol,
                        container,
                        container_port: m.container_port,
                    });
                } else {
                    if fixed
                        .iter()
                        .any(|f: &FixedPort| f.port == m.host_port && f.protocol == m.protocol)
                    {
                        return Err(SchedulerError::InvalidTask {
                            reason: format!(
                                "host port {} ({:?}) is mapped twice",
                                m.host_port, m.protocol
                            ),
                        });
                    }
                    fixed.push(FixedPort {
                        protocol: m.protocol,
                        port: m.host_port,
                        container,
                        container_port: m.container_port,
                    });
                }
            }
        }
        let strings = &view.strings;
        let required = req
            .task
            .requires_attributes
            .iter()
            .map(|a| {
                (
                    strings.get(&a.name),
                    a.value.as_deref().map(|v| strings.get(v)),
                )
            })
            .collect();
        let mut static_conds = Vec::new();
        let mut dynamic_conds = Vec::new();
        let mut distinct = false;
        for c in &req.constraints {
            match c {
                PlacementConstraint::DistinctInstance => distinct = true,
                PlacementConstraint::MemberOf(text) => {
                    let cond = compile(&parse(text)?, strings, &req.group)?;
                    if cond.is_dynamic() {
                        dynamic_conds.push(cond);
                    } else {
                        static_conds.push(cond);
                    }
                }
            }
        }
        Ok(Compiled {
            view,
            need: req.task.reservation(),
            fixed,
            dynamic,
            required,
            static_conds,
            dynamic_conds,
            distinct,
            group: strings.get(&req.group),
            range: (lo, hi),
        })
    }

    /// The checks that cannot change during the request.
    fn static_check(&self, inst: &Instance) -> Result<(), FailureReason> {
        if inst.status != InstanceStatus::Active {
            return Err(FailureReason::NotActive);
        }
        if !inst.agent_connected {
            return Err(FailureReason::Agent);
        }
        for (name, value) in &self.required {
            let have = name.and_then(|n| self.view.attribute_sym(inst, n));
            let ok = match (have, value) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(h), Some(want)) => *want == Some(h),
            };
            if !ok {
                return Err(FailureReason::MissingAttribute);
            }
        }
        if self
            .static_conds
            .iter()
            .any(|c| !c.eval(self.view, inst, Dynamic::default()))
        {
            return Err(FailureReason::MemberOf);
        }
        Ok(())
    }

    /// The checks that depend on the state of the request.
    fn dynamic_check(
        &self,
        inst: &Instance,
        st: &CandState,
        extra: &[(Protocol, u16)],
    ) -> Result<(), FailureReason> {
        if self.distinct && st.group_here + st.placed > 0 {
            return Err(FailureReason::DistinctInstance);
        }
        let dynamic = Dynamic { placed: st.placed };
        if self
            .dynamic_conds
            .iter()
            .any(|c| !c.eval(self.view, inst, dynamic))
        {
            return Err(FailureReason::MemberOf);
        }
        if st.cpu < self.need.cpu {
            return Err(FailureReason::Cpu);
        }
        if st.mem < self.need.memory {
            return Err(FailureReason::Memory);
        }
        if !self.ports_fit(inst, extra) {
            return Err(FailureReason::Ports);
        }
        Ok(())
    }

    fn port_taken(
        &self,
        inst: &Instance,
        extra: &[(Protocol, u16)],
        protocol: Protocol,
        port: u16,
    ) -> bool {
        !self.view.port_free(inst, protocol, port) || extra.contains(&(protocol, port))
    }

    fn ports_fit(&self, inst: &Instance, extra: &[(Protocol, u16)]) -> bool {
        if self.fixed.is_empty() && self.dynamic.is_empty() {
            return true;
        }
        if self
            .fixed
            .iter()
            .any(|f| self.port_taken(inst, extra, f.protocol, f.port))
        {
            return false;
        }
        for protocol in [Protocol::Tcp, Protocol::Udp] {
            let wanted = self
                .dynamic
                .iter()
                .filter(|d| d.protocol == protocol)
                .count();
            if wanted == 0 {
                continue;
            }
            let (lo, hi) = self.range;
            let used = self.view.ports(inst, protocol);
            let start = used.partition_point(|&p| p < lo);
            let end = used.partition_point(|&p| p <= hi);
            let mut taken = end - start;
            taken += extra
                .iter()
                .filter(|(p, n)| {
                    *p == protocol
                        && (lo..=hi).contains(n)
                        && self.view.port_free(inst, protocol, *n)
                })
                .count();
            taken += self
                .fixed
                .iter()
                .filter(|f| f.protocol == protocol && (lo..=hi).contains(&f.port))
                .count();
            let size = usize::from(hi - lo) + 1;
            if size.saturating_sub(taken) < wanted {
                return false;
            }
        }
        true
    }

    /// Assigns host ports (fixed as asked, dynamic the lowest free in the range).
    fn assign_ports(&self, inst: &Instance, extra: &mut Vec<(Protocol, u16)>) -> Vec<HostPort> {
        let mut out = Vec::with_capacity(self.fixed.len() + self.dynamic.len());
        for f in &self.fixed {
            extra.push((f.protocol, f.port));
            out.push(HostPort {
                container: f.container,
                container_port: f.container_port,
                host_port: f.port,
                protocol: f.protocol,
            });
        }
        let mut next = [self.range.0, self.range.0];
        for d in &self.dynamic {
            let slot = &mut next[d.protocol as usize];
            let mut port = *slot;
            while self.port_taken(inst, extra, d.protocol, port) && port < self.range.1 {
                port += 1;
            }
            *slot = port.saturating_add(1);
            extra.push((d.protocol, port));
            out.push(HostPort {
                container: d.container,
                container_port: d.container_port,
                host_port: port,
                protocol: d.protocol,
            });
        }
        out
    }
}

#[derive(Clone, Copy, Debug)]
struct CandState {
    cpu: u32,
    mem: u32,
    placed: u32,
    group_here: u32,
}

#[derive(Clone, Copy, Debug)]
struct Cand {
    idx: u32,
    st: CandState,
    /// Index into the per-candidate extra-port lists, `u32::MAX` while none.
    extra: u32,
    buckets: [u32; MAX_STRATEGIES],
    tie: u64,
    alive: bool,
    /// Whether the task's host ports fit, refreshed after each placement on the candidate.
    ports_ok: bool,
}

/// Dense bucket numbering of attribute values for one spread level.
pub(crate) struct Buckets {
    by_sym: Vec<u32>,
    pub(crate) counts: Vec<u64>,
    missing: u32,
}

impl Buckets {
    pub(crate) fn new(symbols: usize) -> Self {
        Buckets {
            by_sym: vec![u32::MAX; symbols],
            counts: vec![0],
            missing: 0,
        }
    }

    pub(crate) fn bucket(&mut self, view: &ClusterView, inst: &Instance, attr: Option<Sym>) -> u32 {
        self.bucket_of(
            attr.and_then(|a| view.attribute_sym(inst, a))
                .map_or(MISSING, |v| v.0),
        )
    }

    /// The bucket of a value symbol read from a column ([`MISSING`]: no attribute).
    fn bucket_of(&mut self, value: u32) -> u32 {
        if value == MISSING {
            return self.missing;
        }
        let slot = &mut self.by_sym[value as usize];
        if *slot == u32::MAX {
            *slot = u32::try_from(self.counts.len()).unwrap_or(0);
            self.counts.push(0);
        }
        *slot
    }
}

/// The reference implementation of [`place`]: one pass over the view with per-instance attribute
/// searches, then one scan over all candidates per task. [`place`] must give exactly the same
/// outcome (a property test checks it); it also serves requests with a `random` strategy.
#[doc(hidden)]
pub fn place_scan(
    view: &ClusterView,
    req: &PlacementRequest,
    seed: u64,
) -> Result<PlacementOutcome, SchedulerError> {
    let c = Compiled::new(view, req)?;
    let (strats, levels) = compile_strategies(view, &req.strategy)?;
    let mut buckets: Vec<Buckets> = levels
        .iter()
        .map(|_| Buckets::new(view.strings.len()))
        .collect();

    let mut cands: Vec<Cand> = Vec::with_capacity(view.instances.len() / 2);
    for (i, inst) in view.instances.iter().enumerate() {
        let group_here = view.group_count_sym(inst, c.group);
        let mut b = [0u32; MAX_STRATEGIES];
        for (l, bk) in buckets.iter_mut().enumerate() {
            b[l] = bk.bucket(view, inst, levels[l]);
            bk.counts[b[l] as usize] += u64::from(group_here);
        }
        if c.static_check(inst).is_err() {
            continue;
        }
        let st = CandState {
            cpu: inst.remaining.cpu,
            mem: inst.remaining.memory,
            placed: 0,
            group_here,
        };
        if c.dynamic_check(inst, &st, &[]).is_err() && c.dynamic_conds.is_empty() {
            // Resources only shrink and the group only grows: this instance stays infeasible.
            continue;
        }
        let idx = u32::try_from(i).unwrap_or(u32::MAX);
        cands.push(Cand {
            idx,
            st,
            extra: u32::MAX,
            buckets: b,
            tie: mix(seed, u64::from(idx), u64::MAX),
            alive: true,
            ports_ok: c.ports_fit(inst, &[]),
        });
    }

    let has_ports = !c.fixed.is_empty() || !c.dynamic.is_empty();
    // Only dynamic memberOf expressions read the instance in the loop below; everything else
    // the loop needs is in the candidate array, which stays in cache.
    let eval_conds = !c.dynamic_conds.is_empty();
    let mut extras: Vec<Vec<(Protocol, u16)>> = Vec::new();
    let mut out = PlacementOutcome::default();
    let need = c.need;
    let n = strats.len();

    for t in 0..req.count {
        let mut best: Option<(usize, [u64; MAX_STRATEGIES + 1])> = None;
        for (pos, cand) in cands.iter().enumerate() {
            if !cand.alive || !cand.ports_ok || cand.st.cpu < need.cpu || cand.st.mem < need.memory
            {
                continue;
            }
            if eval_conds {
                let inst = &view.instances[cand.idx as usize];
                let extra = extras.get(cand.extra as usize).map_or(&[][..], |v| &v[..]);
                if c.dynamic_check(inst, &cand.st, extra).is_err() {
                    continue;
                }
            }
            let key = |l: usize| -> u64 {
                if l == n {
                    return cand.tie;
                }
                match strats[l] {
                    Strat::Binpack(BinpackField::Cpu) => u64::from(cand.st.cpu),
                    Strat::Binpack(BinpackField::Memory) => u64::from(cand.st.mem),
                    Strat::SpreadInstance => u64::from(cand.st.group_here + cand.st.placed),
                    Strat::SpreadAttr(level) => buckets[level].counts[cand.buckets[level] as usize],
                    Strat::Random => mix(seed ^ 0x5EED, u64::from(cand.idx), u64::from(t)),
                }
            };
            match &mut best {
                None => {
                    let mut k = [0u64; MAX_STRATEGIES + 1];
                    for (l, slot) in k.iter_mut().enumerate().take(n + 1) {
                        *slot = key(l);
                    }
                    best = Some((pos, k));
                }
                Some((bpos, bk)) => {
                    for l in 0..=n {
                        let v = key(l);
                        if v < bk[l] {
                            bk[l] = v;
                            for (m, slot) in bk.iter_mut().enumerate().take(n + 1).skip(l + 1) {
                                *slot = key(m);
                            }
                            *bpos = pos;
                            break;
                        }
                        if v > bk[l] {
                            break;
                        }
                    }
                }
            }
        }
        let Some((pos, _)) = best else {
            out.unplaced = req.count - t;
            out.failures = explain(&c, &cands, &extras);
            break;
        };
        let cand = &mut cands[pos];
        let inst = &view.instances[cand.idx as usize];
        let host_ports = if has_ports {
            if cand.extra == u32::MAX {
                cand.extra = u32::try_from(extras.len()).unwrap_or(u32::MAX);
                extras.push(Vec::new());
            }
            let ports = c.assign_ports(inst, &mut extras[cand.extra as usize]);
            cand.ports_ok = c.ports_fit(inst, &extras[cand.extra as usize]);
            ports
        } else {
            Vec::new()
        };
        cand.st.cpu -= need.cpu;
        cand.st.mem -= need.memory;
        cand.st.placed += 1;
        for (l, bk) in buckets.iter_mut().enumerate() {
            bk.counts[cand.buckets[l] as usize] += 1;
        }
        if c.distinct {
            cand.alive = false;
        }
        out.placements.push(Placement {
            task_index: t,
            instance: cand.idx as usize,
            host_ports,
        });
    }
    Ok(out)
}

/// A static `memberOf` condition prepared for one request: attribute predicates read the view's
/// attribute columns and remember their result per value symbol (there are few distinct values),
/// so testing an instance is a few array reads.
enum Fast<'c> {
    Not(Box<Fast<'c>>),
    And(Box<Fast<'c>>, Box<Fast<'c>>),
    Or(Box<Fast<'c>>, Box<Fast<'c>>),
    /// An attribute test: the attribute's column and, per value symbol, 0 (not yet known),
    /// 1 (holds) or 2 (does not hold).
    Attr {
        col: Arc<[u32]>,
        memo: Vec<u8>,
        test: &'c SymTest,
    },
    /// An attribute no instance has: every positive test fails.
    Never,
    /// Anything else, evaluated as compiled.
    Slow(&'c Cond),
}

impl<'c> Fast<'c> {
    fn new(cond: &'c Cond, view: &ClusterView) -> Self {
        let boxed = |c: &'c Cond| Box::new(Fast::new(c, view));
        match cond {
            Cond::Not(c) => Fast::Not(boxed(c)),
            Cond::And(a, b) => Fast::And(boxed(a), boxed(b)),
            Cond::Or(a, b) => Fast::Or(boxed(a), boxed(b)),
            Cond::Attribute(None, _) => Fast::Never,
            Cond::Attribute(Some(name), test) => Fast::Attr {
                col: view.column(*name),
                memo: vec![0; view.strings.len()],
                test,
            },
            other => Fast::Slow(other),
        }
    }

    /// The same result as `Cond::eval` with no placements of the request yet.
    fn eval(&mut self, view: &ClusterView, i: usize, inst: &Instance) -> bool {
        match self {
            Fast::Not(c) => !c.eval(view, i, inst),
            Fast::And(a, b) => a.eval(view, i, inst) && b.eval(view, i, inst),
            Fast::Or(a, b) => a.eval(view, i, inst) || b.eval(view, i, inst),
            Fast::Never => false,
            Fast::Attr { col, memo, test } => {
                let v = col.get(i).copied().unwrap_or(MISSING);
                if v == MISSING {
                    return false;
                }
                match memo.get_mut(v as usize) {
                    Some(m) => {
                        if *m == 0 {
                            *m = if test.test(Sym(v), &view.strings) {
                                1
                            } else {
                                2
                            };
                        }
                        *m == 1
                    }
                    None => test.test(Sym(v), &view.strings),
                }
            }
            Fast::Slow(c) => c.eval(view, inst, Dynamic::default()),
        }
    }
}

/// A `requiresAttributes` entry: the attribute's column (`None`: no instance has it) and the
/// required value as in [`Compiled`].
type RequiredColumn = (Option<Arc<[u32]>>, Option<Option<Sym>>);

/// [`Compiled::static_check`] prepared for one request's pass over the view.
struct FastStatic<'c> {
    required: Vec<RequiredColumn>,
    conds: Vec<Fast<'c>>,
}

impl<'c> FastStatic<'c> {
    fn new(c: &'c Compiled<'_>) -> Self {
        let view = c.view;
        FastStatic {
            required: c
                .required
                .iter()
                .map(|(name, value)| (name.map(|n| view.column(n)), *value))
                .collect(),
            conds: c.static_conds.iter().map(|k| Fast::new(k, view)).collect(),
        }
    }

    /// Whether instance `i` passes [`Compiled::static_check`].
    fn check(&mut self, view: &ClusterView, i: usize, inst: &Instance) -> bool {
        if inst.status != InstanceStatus::Active || !inst.agent_connected {
            return false;
        }
        for (col, value) in &self.required {
            let have = col
                .as_ref()
                .and_then(|c| c.get(i).copied())
                .filter(|&v| v != MISSING)
                .map(Sym);
            let ok = match (have, value) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(h), Some(want)) => *want == Some(h),
            };
            if !ok {
                return false;
            }
        }
        self.conds.iter_mut().all(|f| f.eval(view, i, inst))
    }
}

/// Whether candidate `a` orders before `b` on their own keys (`m` per candidate in `keys`),
/// then on position.
#[inline(always)]
fn before(keys: &[u64], m: usize, a: u32, b: u32) -> bool {
    let (ia, ib) = (a as usize * m, b as usize * m);
    match m {
        // The usual chains (one own strategy, or none) compare fixed-size keys.
        1 => (keys[ia], a) < (keys[ib], b),
        2 => (keys[ia], keys[ia + 1], a) < (keys[ib], keys[ib + 1], b),
        _ => (&keys[ia..ia + m], a) < (&keys[ib..ib + m], b),
    }
}

fn sift_down(heap: &mut [u32], mut i: usize, keys: &[u64], m: usize) {
    loop {
        let l = 2 * i + 1;
        if l >= heap.len() {
            return;
        }
        let mut child = l;
        if l + 1 < heap.len() && before(keys, m, heap[l + 1], heap[l]) {
            child = l + 1;
        }
        if !before(keys, m, heap[child], heap[i]) {
            return;
        }
        heap.swap(child, i);
        i = child;
    }
}

fn heap_push(heap: &mut Vec<u32>, x: u32, keys: &[u64], m: usize) {
    heap.push(x);
    let mut i = heap.len() - 1;
    while i > 0 {
        let p = (i - 1) / 2;
        if !before(keys, m, heap[i], heap[p]) {
            return;
        }
        heap.swap(i, p);
        i = p;
    }
}

fn heap_pop(heap: &mut Vec<u32>, keys: &[u64], m: usize) {
    let Some(last) = heap.len().checked_sub(1) else {
        return;
    };
    heap.swap(0, last);
    heap.pop();
    sift_down(heap, 0, keys, m);
}

/// Places `req.count` tasks on `view`. Pure and deterministic: the same view, request and seed
/// give the same outcome.
///
/// One pass over the view resolves what cannot change during the request, reading attribute
/// columns and constraint results memoised per value symbol. Candidates are then grouped by
/// their spread buckets (e.g. one group per availability zone): within a group the spread keys
/// are equal, so the order of candidates is that of their own keys (binpack, spread by instance,
/// seeded tie-break, position), kept in one binary heap per group. A placement changes only the
/// chosen candidate's own keys and feasibility, so each task costs one look at the top of every
/// group plus O(log n) to re-file the chosen candidate. The outcome is exactly that of the plain
/// scan ([`place_scan`], used for `random`, whose keys change with every task).
pub fn place(
    view: &ClusterView,
    req: &PlacementRequest,
    seed: u64,
) -> Result<PlacementOutcome, SchedulerError> {
    if req
        .strategy
        .iter()
        .any(|s| matches!(s, PlacementStrategy::Random))
    {
        return place_scan(view, req, seed);
    }
    let c = Compiled::new(view, req)?;
    let (strats, levels) = compile_strategies(view, &req.strategy)?;
    let mut buckets: Vec<Buckets> = levels
        .iter()
        .map(|_| Buckets::new(view.strings.len()))
        .collect();
    let level_cols: Vec<Option<Arc<[u32]>>> = levels
        .iter()
        .map(|l| l.map(|name| view.column(name)))
        .collect();
    let mut fast = FastStatic::new(&c);

    let group_instances: Arc<[(u32, u32)]> = c
        .group
        .map_or_else(|| Arc::from([]), |g| view.group_instances(g));
    let mut next_group = group_instances.iter().peekable();

    let mut cands: Vec<Cand> = Vec::with_capacity(view.instances.len() / 2);
    for (i, inst) in view.instances.iter().enumerate() {
        let group_here = match next_group.peek() {
            Some(&&(at, n)) if at as usize == i => {
                next_group.next();
                n
            }
            _ => 0,
        };
        let mut b = [0u32; MAX_STRATEGIES];
        for (l, bk) in buckets.iter_mut().enumerate() {
            let value = level_cols[l]
                .as_ref()
                .and_then(|col| col.get(i).copied())
                .unwrap_or(MISSING);
            b[l] = bk.bucket_of(value);
            bk.counts[b[l] as usize] += u64::from(group_here);
        }
        // Resources only shrink and the group only grows: an instance failing these stays
        // infeasible (unless a dynamic memberOf keeps every instance for `explain`). Host ports
        // are checked only when the candidate reaches the top of its group.
        if c.dynamic_conds.is_empty()
            && ((c.distinct && group_here > 0)
                || inst.remaining.cpu < c.need.cpu
                || inst.remaining.memory < c.need.memory)
        {
            continue;
        }
        if !fast.check(view, i, inst) {
            continue;
        }
        let idx = u32::try_from(i).unwrap_or(u32::MAX);
        cands.push(Cand {
            idx,
            st: CandState {
                cpu: inst.remaining.cpu,
                mem: inst.remaining.memory,
                placed: 0,
                group_here,
            },
            extra: u32::MAX,
            buckets: b,
            tie: mix(seed, u64::from(idx), u64::MAX),
            alive: true,
            ports_ok: true,
        });
    }

    let has_ports = !c.fixed.is_empty() || !c.dynamic.is_empty();
    let eval_conds = !c.dynamic_conds.is_empty();
    let mut extras: Vec<Vec<(Protocol, u16)>> = Vec::new();
    let mut out = PlacementOutcome::default();
    let need = c.need;
    let n = strats.len();

    // The strategies whose key is the candidate's own (not shared by its spread group).
    let own: Vec<Strat> = strats
        .iter()
        .copied()
        .filter(|s| !matches!(s, Strat::SpreadAttr(_)))
        .collect();
    let m = own.len() + 1;
    let own_keys = |cand: &Cand, out: &mut [u64]| {
        for (slot, s) in out.iter_mut().zip(&own) {
            *slot = match s {
                Strat::Binpack(BinpackField::Cpu) => u64::from(cand.st.cpu),
                Strat::Binpack(BinpackField::Memory) => u64::from(cand.st.mem),
                Strat::SpreadInstance => u64::from(cand.st.group_here + cand.st.placed),
                Strat::SpreadAttr(_) | Strat::Random => 0,
            };
        }
        out[m - 1] = cand.tie;
    };
    let feasible = |cand: &Cand, extras: &[Vec<(Protocol, u16)>]| -> bool {
        if !cand.alive || !cand.ports_ok || cand.st.cpu < need.cpu || cand.st.mem < need.memory {
            return false;
        }
        if eval_conds {
            let inst = &view.instances[cand.idx as usize];
            let extra = extras.get(cand.extra as usize).map_or(&[][..], |v| &v[..]);
            return c.dynamic_check(inst, &cand.st, extra).is_ok();
        }
        true
    };

    // Spread groups: candidates with the same bucket at every spread level.
    let mut group_of: Vec<u32> = Vec::with_capacity(cands.len());
    let groups = match buckets.len() {
        0 => {
            group_of.resize(cands.len(), 0);
            1
        }
        1 => {
            group_of.extend(cands.iter().map(|cand| cand.buckets[0]));
            buckets[0].counts.len()
        }
        _ => {
            let mut ids: std::collections::HashMap<[u32; MAX_STRATEGIES], u32> =
                std::collections::HashMap::new();
            for cand in &cands {
                let next = u32::try_from(ids.len()).unwrap_or(u32::MAX);
                group_of.push(*ids.entry(cand.buckets).or_insert(next));
            }
            ids.len()
        }
    };
    let mut keys = vec![0u64; cands.len() * m];
    let mut heaps: Vec<Vec<u32>> = vec![Vec::new(); groups];
    for (pos, cand) in cands.iter().enumerate() {
        own_keys(cand, &mut keys[pos * m..pos * m + m]);
        if cand.st.cpu >= need.cpu && cand.st.mem >= need.memory {
            heaps[group_of[pos] as usize].push(u32::try_from(pos).unwrap_or(u32::MAX));
        }
    }
    let mut verified = vec![false; cands.len()];
    for heap in &mut heaps {
        for i in (0..heap.len() / 2).rev() {
            sift_down(heap, i, &keys, m);
        }
    }

    for t in 0..req.count {
        let mut best: Option<(usize, u32, [u64; MAX_STRATEGIES + 1])> = None;
        for (g, heap) in heaps.iter_mut().enumerate() {
            // Complete the checks of a top not yet verified (its host ports, and dynamic
            // memberOf): they cannot change until it is placed on.
            let pos = loop {
                let Some(&pos) = heap.first() else { break None };
                let p = pos as usize;
                if !verified[p] {
                    verified[p] = true;
                    let cand = &mut cands[p];
                    cand.ports_ok = c.ports_fit(&view.instances[cand.idx as usize], &[]);
                    if !feasible(cand, &extras) {
                        heap_pop(heap, &keys, m);
                        continue;
                    }
                }
                break Some(pos);
            };
            let Some(pos) = pos else { continue };
            let cand = &cands[pos as usize];
            let mut k = [0u64; MAX_STRATEGIES + 1];
            for (slot, s) in k.iter_mut().zip(&strats) {
                *slot = match *s {
                    Strat::Binpack(BinpackField::Cpu) => u64::from(cand.st.cpu),
                    Strat::Binpack(BinpackField::Memory) => u64::from(cand.st.mem),
                    Strat::SpreadInstance => u64::from(cand.st.group_here + cand.st.placed),
                    Strat::SpreadAttr(level) => buckets[level].counts[cand.buckets[level] as usize],
                    Strat::Random => 0,
                };
            }
            k[n] = cand.tie;
            if best
                .as_ref()
                .is_none_or(|(_, bpos, bk)| (&k[..=n], pos) < (&bk[..=n], *bpos))
            {
                best = Some((g, pos, k));
            }
        }
        let Some((g, pos, _)) = best else {
            out.unplaced = req.count - t;
            out.failures = explain(&c, &cands, &extras);
            break;
        };
        heap_pop(&mut heaps[g], &keys, m);
        let pos = pos as usize;
        let cand = &mut cands[pos];
        let inst = &view.instances[cand.idx as usize];
        let host_ports = if has_ports {
            if cand.extra == u32::MAX {
                cand.extra = u32::try_from(extras.len()).unwrap_or(u32::MAX);
                extras.push(Vec::new());
            }
            let ports = c.assign_ports(inst, &mut extras[cand.extra as usize]);
            cand.ports_ok = c.ports_fit(inst, &extras[cand.extra as usize]);
            ports
        } else {
            Vec::new()
        };
        cand.st.cpu -= need.cpu;
        cand.st.mem -= need.memory;
        cand.st.placed += 1;
        for (l, bk) in buckets.iter_mut().enumerate() {
            bk.counts[cand.buckets[l] as usize] += 1;
        }
        if c.distinct {
            cand.alive = false;
        }
        out.placements.push(Placement {
            task_index: t,
            instance: cand.idx as usize,
            host_ports,
        });
        let cand = &cands[pos];
        own_keys(cand, &mut keys[pos * m..pos * m + m]);
        if feasible(cand, &extras) {
            heap_push(
                &mut heaps[g],
                u32::try_from(pos).unwrap_or(u32::MAX),
                &keys,
                m,
            );
        }
    }
    Ok(out)
}

/// Per-reason counts over every instance in its current state.
fn explain(c: &Compiled<'_>, cands: &[Cand], extras: &[Vec<(Protocol, u16)>]) -> Vec<FailureCount> {
    let view = c.view;
    let mut cand_of = vec![u32::MAX; view.instances.len()];
    for (pos, cand) in cands.iter().enumerate() {
        cand_of[cand.idx as usize] = u32::try_from(pos).unwrap_or(u32::MAX);
    }
    let mut counts = [0u32; 8];
    for (i, inst) in view.instances.iter().enumerate() {
        let (st, extra) = match cands.get(cand_of[i] as usize) {
            Some(cand) => (
                cand.st,
                extras.get(cand.extra as usize).map_or(&[][..], |v| &v[..]),
            ),
            None => (
                CandState {
                    cpu: inst.remaining.cpu,
                    mem: inst.remaining.memory,
                    placed: 0,
                    group_here: view.group_count_sym(inst, c.group),
                },
                &[][..],
            ),
        };
        let result = c
            .static_check(inst)
            .and_then(|()| c.dynamic_check(inst, &st, extra));
        if let Err(reason) = result {
            counts[reason as usize] += 1;
        }
    }
    const ALL: [FailureReason; 8] = [
        FailureReason::NotActive,
        FailureReason::Agent,
        FailureReason::MissingAttribute,
        FailureReason::MemberOf,
        FailureReason::DistinctInstance,
        FailureReason::Cpu,
        FailureReason::Memory,
        FailureReason::Ports,
    ];
    ALL.iter()
        .zip(counts)
        .filter(|(_, n)| *n > 0)
        .map(|(reason, instances)| FailureCount {
            reason: *reason,
            instances,
        })
        .collect()
}
