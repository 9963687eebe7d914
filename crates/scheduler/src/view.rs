//! The read-only cluster view the scheduler decides on.
//!
//! The control plane builds it from its store ([`InstanceSpec`] is the owned, wire-like form)
//! and the view keeps each instance compact: attribute names and values, agent versions and
//! task groups are interned ([`Sym`]), attributes and ports are sorted boxed slices, and running
//! tasks are kept as (group, count) pairs. A realistic instance (30 attributes, a dozen tasks)
//! takes well under 2 KiB (see docs/benchmarks.md). Requests build small indexes on first use
//! (a dense column per attribute they test, the instances running their group), which the view
//! keeps until it changes.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::intern::{Interner, Sym};
use crate::util::Version;

/// In an attribute column: the instance does not have the attribute.
pub(crate) const MISSING: u32 = u32::MAX;

/// Indexes built on first use, keyed by a symbol: for an attribute name, its column (the value
/// symbol of every instance in index order, [`MISSING`] when absent), so a request reads one
/// dense array per attribute it tests instead of searching each instance's attributes; for a
/// task group, the (instance, count) pairs of the instances running tasks of it, in index order.
/// 4 bytes per instance per attribute that requests have used, 8 per instance running the
/// group; dropped when an instance is added (a group's entry when one of its tasks starts).
pub(crate) struct Index<T>(RwLock<HashMap<Sym, Arc<[T]>>>);

impl<T> Default for Index<T> {
    fn default() -> Self {
        Index(RwLock::new(HashMap::new()))
    }
}

impl<T> Clone for Index<T> {
    fn clone(&self) -> Self {
        let map = self.0.read().map(|m| m.clone()).unwrap_or_default();
        Index(RwLock::new(map))
    }
}

impl<T> std::fmt::Debug for Index<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.read().map_or(0, |m| m.len());
        write!(f, "Index({n} entries)")
    }
}

impl<T> Index<T> {
    fn get_or_build(&self, key: Sym, build: impl FnOnce() -> Arc<[T]>) -> Arc<[T]> {
        if let Some(v) = self.0.read().ok().and_then(|m| m.get(&key).cloned()) {
            return v;
        }
        let v = build();
        if let Ok(mut map) = self.0.write() {
            map.insert(key, v.clone());
        }
        v
    }

    fn map_mut(&mut self) -> &mut HashMap<Sym, Arc<[T]>> {
        match self.0.get_mut() {
            Ok(map) => map,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// Ports the ECS agent reserves on every instance by default.
pub const DEFAULT_RESERVED_PORTS: [u16; 5] = [22, 2375, 2376, 51678, 51679];

/// A container instance's status; only `Active` instances get tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InstanceStatus {
    Active,
    Draining,
    Registering,
    Deregistering,
    RegistrationFailed,
    Inactive,
}

impl InstanceStatus {
    /// ECS's spelling (`ACTIVE`, `DRAINING`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceStatus::Active => "ACTIVE",
            InstanceStatus::Draining => "DRAINING",
            InstanceStatus::Registering => "REGISTERING",
            InstanceStatus::Deregistering => "DEREGISTERING",
            InstanceStatus::RegistrationFailed => "REGISTRATION_FAILED",
            InstanceStatus::Inactive => "INACTIVE",
        }
    }
}

/// CPU units (1024 per vCPU) and memory in MiB.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Resources {
    pub cpu: u32,
    pub memory: u32,
}

/// Transport protocol of a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
}

/// The owned description of one container instance, as the control plane stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceSpec {
    /// The container instance ARN.
    pub arn: String,
    /// The EC2 (or host) instance id, subject `ec2InstanceId`.
    pub ec2_instance_id: String,
    pub status: InstanceStatus,
    pub agent_connected: bool,
    /// Registration time, seconds since the Unix epoch (subject `registeredAt`).
    pub registered_at: i64,
    pub agent_version: String,
    /// Attributes: name and optional value (`ecs.availability-zone` = `us-east-1a`).
    pub attributes: Vec<(String, Option<String>)>,
    pub registered: Resources,
    pub remaining: Resources,
    /// TCP host ports not available: reserved at registration plus those running tasks use.
    pub used_tcp_ports: Vec<u16>,
    /// UDP host ports not available.
    pub used_udp_ports: Vec<u16>,
    /// The group (`service:web`, `family:batch`) of each running task on the instance.
    pub task_groups: Vec<String>,
    /// Running tasks as (group, count): the same as repeating each group in `task_groups`,
    /// without one string per task (what a control plane with thousands of tasks stores).
    pub task_group_counts: Vec<(String, u32)>,
}

impl InstanceSpec {
    /// An ACTIVE, connected instance with the given resources, the default reserved ports and
    /// no attributes or tasks.
    pub fn new(
        arn: impl Into<String>,
        ec2_instance_id: impl Into<String>,
        cpu: u32,
        memory: u32,
    ) -> Self {
        InstanceSpec {
            arn: arn.into(),
            ec2_instance_id: ec2_instance_id.into(),
            status: InstanceStatus::Active,
            agent_connected: true,
            registered_at: 0,
            agent_version: String::new(),
            attributes: Vec::new(),
            registered: Resources { cpu, memory },
            remaining: Resources { cpu, memory },
            used_tcp_ports: DEFAULT_RESERVED_PORTS.to_vec(),
            used_udp_ports: Vec::new(),
            task_groups: Vec::new(),
            task_group_counts: Vec::new(),
        }
    }

    /// Adds an attribute (builder style).
    pub fn attribute(mut self, name: impl Into<String>, value: Option<&str>) -> Self {
        self.attributes
            .push((name.into(), value.map(str::to_owned)));
        self
    }
}

/// A range of one of the view's pools.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Span {
    start: u32,
    len: u32,
}

impl Span {
    fn of<T>(self, pool: &[T]) -> &[T] {
        let start = self.start as usize;
        pool.get(start..start + self.len as usize).unwrap_or(&[])
    }
}

/// One instance's fixed-size record; its attributes, task groups and ports live in the view's
/// pools, laid out in instance order so a pass over the cluster reads memory sequentially.
#[derive(Clone, Debug)]
pub(crate) struct Slot {
    pub(crate) arn: Box<str>,
    pub(crate) ec2_instance_id: Box<str>,
    /// Sorted by name; a missing value is [`Sym::EMPTY`].
    attributes: Span,
    /// (group, count), sorted by group.
    tasks: Span,
    tcp_ports: Span,
    udp_ports: Span,
    pub(crate) registered_at: i64,
    pub(crate) agent_version: Sym,
    pub(crate) version: Version,
    pub(crate) registered: Resources,
    pub(crate) remaining: Resources,
    pub(crate) running_tasks: u32,
    pub(crate) status: InstanceStatus,
    pub(crate) agent_connected: bool,
}

/// A read-only handle on one instance of a [`ClusterView`].
#[derive(Clone, Copy, Debug)]
pub struct Instance<'a> {
    view: &'a ClusterView,
    slot: &'a Slot,
}

impl<'a> Instance<'a> {
    pub fn arn(&self) -> &'a str {
        &self.slot.arn
    }
    pub fn ec2_instance_id(&self) -> &'a str {
        &self.slot.ec2_instance_id
    }
    pub fn status(&self) -> InstanceStatus {
        self.slot.status
    }
    pub fn agent_connected(&self) -> bool {
        self.slot.agent_connected
    }
    pub fn registered_at(&self) -> i64 {
        self.slot.registered_at
    }
    pub fn agent_version(&self) -> &'a str {
        self.view.strings.resolve(self.slot.agent_version)
    }
    pub fn registered(&self) -> Resources {
        self.slot.registered
    }
    pub fn remaining(&self) -> Resources {
        self.slot.remaining
    }
    pub fn running_tasks_count(&self) -> u32 {
        self.slot.running_tasks
    }
    /// Used TCP or UDP host ports, sorted.
    pub fn used_ports(&self, protocol: Protocol) -> &'a [u16] {
        self.view.ports(self.slot, protocol)
    }
    /// Whether `port` is free for `protocol`.
    pub fn port_free(&self, protocol: Protocol, port: u16) -> bool {
        self.view.port_free(self.slot, protocol, port)
    }
    /// The value of attribute `name` (`Some("")` for a valueless attribute).
    pub fn attribute(&self, name: &str) -> Option<&'a str> {
        let name = self.view.strings.get(name)?;
        let v = self.view.attribute_sym(self.slot, name)?;
        Some(self.view.strings.resolve(v))
    }
    /// How many running tasks of `group` the instance has.
    pub fn group_count(&self, group: &str) -> u32 {
        self.view
            .group_count_sym(self.slot, self.view.strings.get(group))
    }
}

/// A read-only snapshot of a cluster's container instances.
#[derive(Clone, Debug, Default)]
pub struct ClusterView {
    pub(crate) strings: Interner,
    pub(crate) instances: Vec<Slot>,
    attr_pool: Vec<(Sym, Sym)>,
    task_pool: Vec<(Sym, u32)>,
    port_pool: Vec<u16>,
    columns: Index<u32>,
    group_index: Index<(u32, u32)>,
}

impl ClusterView {
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a view from owned instance descriptions (their order is the index order).
    pub fn from_specs<I: IntoIterator<Item = InstanceSpec>>(specs: I) -> Self {
        let mut view = ClusterView::new();
        for spec in specs {
            view.push(&spec);
        }
        view.shrink_to_fit();
        view
    }

    /// Adds an instance and returns its index.
    pub fn push(&mut self, spec: &InstanceSpec) -> usize {
        let mut attributes: Vec<(Sym, Sym)> = spec
            .attributes
            .iter()
            .map(|(n, v)| {
                let n = self.strings.intern(n);
                let v = v.as_deref().map_or(Sym::EMPTY, |v| self.strings.intern(v));
                (n, v)
            })
            .collect();
        attributes.sort_unstable();
        attributes.dedup_by_key(|(n, _)| *n);
        let mut tasks: Vec<(Sym, u32)> = Vec::new();
        let mut running: u32 = 0;
        let counted = spec.task_groups.iter().map(|g| (g, 1)).chain(
            spec.task_group_counts
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(g, n)| (g, *n)),
        );
        for (g, n) in counted {
            let g = self.strings.intern(g);
            running = running.saturating_add(n);
            match tasks.iter_mut().find(|(s, _)| *s == g) {
                Some((_, c)) => *c = c.saturating_add(n),
                None => tasks.push((g, n)),
            }
        }
        tasks.sort_unstable();
        let sorted = |ports: &[u16]| {
            let mut p = ports.to_vec();
            p.sort_unstable();
            p.dedup();
            p
        };
        let instance = Slot {
            arn: spec.arn.as_str().into(),
            ec2_instance_id: spec.ec2_instance_id.as_str().into(),
            attributes: Self::append(&mut self.attr_pool, &attributes),
            tasks: Self::append(&mut self.task_pool, &tasks),
            tcp_ports: Self::append(&mut self.port_pool, &sorted(&spec.used_tcp_ports)),
            udp_ports: Self::append(&mut self.port_pool, &sorted(&spec.used_udp_ports)),
            registered_at: spec.registered_at,
            agent_version: self.strings.intern(&spec.agent_version),
            version: Version::parse(&spec.agent_version).unwrap_or_default(),
            registered: spec.registered,
            remaining: spec.remaining,
            running_tasks: running,
            status: spec.status,
            agent_connected: spec.agent_connected,
        };
        self.instances.push(instance);
        self.columns.map_mut().clear();
        self.group_index.map_mut().clear();
        self.instances.len() - 1
    }

    pub fn len(&self) -> usize {
        self.instances.len()
    }

    pub fn is_empty(&self) -> bool {
        self.instances.is_empty()
    }

    /// Gives back the slack of the view's pools after building.
    pub fn shrink_to_fit(&mut self) {
        self.instances.shrink_to_fit();
        self.attr_pool.shrink_to_fit();
        self.task_pool.shrink_to_fit();
        self.port_pool.shrink_to_fit();
    }

    fn append<T: Copy>(pool: &mut Vec<T>, items: &[T]) -> Span {
        let start = u32::try_from(pool.len()).unwrap_or(u32::MAX);
        pool.extend_from_slice(items);
        Span {
            start,
            len: u32::try_from(items.len()).unwrap_or(0),
        }
    }

    pub fn instance(&self, index: usize) -> Option<Instance<'_>> {
        self.instances
            .get(index)
            .map(|slot| Instance { view: self, slot })
    }

    /// Every instance, in index order.
    pub fn instances(&self) -> impl ExactSizeIterator<Item = Instance<'_>> + '_ {
        self.instances
            .iter()
            .map(|slot| Instance { view: self, slot })
    }

    /// The string of an interned symbol of this view.
    pub fn resolve(&self, sym: Sym) -> &str {
        self.strings.resolve(sym)
    }

    /// An instance's attribute value (`Some("")` for a valueless attribute).
    pub fn attribute(&self, index: usize, name: &str) -> Option<&str> {
        self.instance(index)?.attribute(name)
    }

    /// How many running tasks of `group` an instance has.
    pub fn group_count(&self, index: usize, group: &str) -> u32 {
        self.instance(index).map_or(0, |i| i.group_count(group))
    }

    pub(crate) fn attributes_of(&self, slot: &Slot) -> &[(Sym, Sym)] {
        slot.attributes.of(&self.attr_pool)
    }

    /// The value symbol of attribute `name` (`Some(Sym::EMPTY)` for a valueless attribute).
    pub(crate) fn attribute_sym(&self, slot: &Slot, name: Sym) -> Option<Sym> {
        let attrs = self.attributes_of(slot);
        attrs
            .binary_search_by_key(&name, |(n, _)| *n)
            .ok()
            .map(|i| attrs[i].1)
    }

    /// The column of attribute `name`: its value symbol per instance, [`MISSING`] when absent.
    pub(crate) fn column(&self, name: Sym) -> Arc<[u32]> {
        self.columns.get_or_build(name, || {
            self.instances
                .iter()
                .map(|slot| self.attribute_sym(slot, name).map_or(MISSING, |v| v.0))
                .collect()
        })
    }

    /// The instances running tasks of `group`: (index, count) in index order.
    pub(crate) fn group_instances(&self, group: Sym) -> Arc<[(u32, u32)]> {
        self.group_index.get_or_build(group, || {
            self.instances
                .iter()
                .enumerate()
                .filter_map(|(i, slot)| {
                    let n = self.group_count_sym(slot, Some(group));
                    (n > 0).then(|| (u32::try_from(i).unwrap_or(u32::MAX), n))
                })
                .collect()
        })
    }

    pub(crate) fn tasks_of(&self, slot: &Slot) -> &[(Sym, u32)] {
        slot.tasks.of(&self.task_pool)
    }

    pub(crate) fn group_count_sym(&self, slot: &Slot, group: Option<Sym>) -> u32 {
        let Some(group) = group else { return 0 };
        // (group, count) lists are sorted by group (see `push` and `start_task`).
        let tasks = self.tasks_of(slot);
        tasks
            .binary_search_by_key(&group, |(g, _)| *g)
            .map_or(0, |i| tasks[i].1)
    }

    pub(crate) fn ports(&self, slot: &Slot, protocol: Protocol) -> &[u16] {
        match protocol {
            Protocol::Tcp => slot.tcp_ports.of(&self.port_pool),
            Protocol::Udp => slot.udp_ports.of(&self.port_pool),
        }
    }

    pub(crate) fn port_free(&self, slot: &Slot, protocol: Protocol, port: u16) -> bool {
        self.ports(slot, protocol).binary_search(&port).is_err()
    }

    /// Records a task of `group` started on instance `index` with the given reservation and host
    /// ports: how a caller applies a placement decision to its snapshot.
    /// Returns false (and changes nothing) for an unknown index or insufficient resources.
    pub fn start_task(
        &mut self,
        index: usize,
        group: &str,
        reservation: Resources,
        ports: &[(Protocol, u16)],
    ) -> bool {
        let g = self.strings.intern(group);
        let Some(slot) = self.instances.get(index) else {
            return false;
        };
        if slot.remaining.cpu < reservation.cpu || slot.remaining.memory < reservation.memory {
            return false;
        }
        // Changed lists are appended to the pools (the old entries stay until the view is
        // rebuilt): the view is a snapshot, not a long-lived store.
        let mut tasks = self.tasks_of(slot).to_vec();
        match tasks.iter_mut().find(|(s, _)| *s == g) {
            Some((_, c)) => *c += 1,
            None => {
                tasks.push((g, 1));
                tasks.sort_unstable();
            }
        }
        let mut spans = [slot.tcp_ports, slot.udp_ports];
        for (k, proto) in [Protocol::Tcp, Protocol::Udp].into_iter().enumerate() {
            let add: Vec<u16> = ports
                .iter()
                .filter(|(p, _)| *p == proto)
                .map(|(_, n)| *n)
                .collect();
            if add.is_empty() {
                continue;
            }
            let mut v = self.ports(slot, proto).to_vec();
            v.extend(add);
            v.sort_unstable();
            v.dedup();
            spans[k] = Self::append(&mut self.port_pool, &v);
        }
        let task_span = Self::append(&mut self.task_pool, &tasks);
        self.group_index.map_mut().remove(&g);
        let slot = &mut self.instances[index];
        slot.tasks = task_span;
        [slot.tcp_ports, slot.udp_ports] = spans;
        slot.remaining.cpu -= reservation.cpu;
        slot.remaining.memory -= reservation.memory;
        slot.running_tasks = slot.running_tasks.saturating_add(1);
        true
    }
}
