//! Keeping counts exact: every change of a task's phase (pending, running, stopped) goes
//! through [`transition`], which adjusts the cluster's and the instance's task counts and
//! releases the instance's reservation when the task stops; [`reserve`] takes it at placement.
//! The caller writes the task, the instance and the cluster in one conditional transaction.
//!
//! A task only moves forward in ECS's lifecycle ([`LIFECYCLE`]): an out-of-order or repeated
//! status is no transition at all.

use berth_api::shapes::Cluster;

use crate::records::{InstanceRecord, Phase, TaskRecord};

/// ECS's task (and container) lifecycle, in order.
pub const LIFECYCLE: &[&str] = &[
    "PROVISIONING",
    "PENDING",
    "ACTIVATING",
    "RUNNING",
    "DEACTIVATING",
    "STOPPING",
    "DEPROVISIONING",
    "STOPPED",
];

/// Where a status is in [`LIFECYCLE`] (`None`: not a lifecycle status).
pub fn rank(status: &str) -> Option<usize> {
    LIFECYCLE.iter().position(|s| *s == status)
}

/// Whether going from `from` to `to` moves forward in the lifecycle. A status outside the
/// lifecycle is never a destination; as an origin it is before everything unless it is a
/// stopped one (`DELETED`).
pub fn advances(from: &str, to: &str) -> bool {
    match (rank(from), rank(to)) {
        (Some(a), Some(b)) => b > a,
        (None, Some(_)) => Phase::of(from) != Phase::Stopped,
        _ => false,
    }
}

/// Whether `status` is DEACTIVATING or later: the task is on its way down.
fn stopping(status: &str) -> bool {
    rank(status) >= rank("DEACTIVATING")
}

fn group_of(t: &TaskRecord) -> String {
    t.task.group.clone().unwrap_or_default()
}

/// Takes a new (pending) task's resources, ports and group on its instance and counts it.
pub fn reserve(inst: &mut InstanceRecord, cluster: &mut Cluster, t: &TaskRecord) {
    inst.remaining_cpu = inst.remaining_cpu.saturating_sub(t.cpu);
    inst.remaining_memory = inst.remaining_memory.saturating_sub(t.memory);
    for p in &t.host_ports {
        if p.protocol == "udp" {
            inst.used_udp.push(p.host_port);
        } else {
            inst.used_tcp.push(p.host_port);
        }
    }
    *inst.groups.entry(group_of(t)).or_insert(0) += 1;
    inst.instance.pending_tasks_count += 1;
    inst.sync();
    cluster.pending_tasks_count += 1;
}

fn remove_one(v: &mut Vec<u16>, port: u16) {
    if let Some(i) = v.iter().position(|p| *p == port) {
        v.swap_remove(i);
    }
}

fn release(inst: &mut InstanceRecord, t: &TaskRecord) {
    inst.remaining_cpu = (inst.remaining_cpu + t.cpu).min(inst.registered_cpu);
    inst.remaining_memory = (inst.remaining_memory + t.memory).min(inst.registered_memory);
    for p in &t.host_ports {
        if p.protocol == "udp" {
            remove_one(&mut inst.used_udp, p.host_port);
        } else {
            remove_one(&mut inst.used_tcp, p.host_port);
        }
    }
    let g = group_of(t);
    if let Some(n) = inst.groups.get_mut(&g) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            inst.groups.remove(&g);
        }
    }
}

fn adjust(cluster: &mut Cluster, inst: Option<&mut InstanceRecord>, phase: Phase, delta: i64) {
    match phase {
        Phase::Pending => {
            cluster.pending_tasks_count = (cluster.pending_tasks_count + delta).max(0);
            if let Some(i) = inst {
                i.instance.pending_tasks_count = (i.instance.pending_tasks_count + delta).max(0);
            }
        }
        Phase::Running => {
            cluster.running_tasks_count = (cluster.running_tasks_count + delta).max(0);
            if let Some(i) = inst {
                i.instance.running_tasks_count = (i.instance.running_tasks_count + delta).max(0);
            }
        }
        Phase::Stopped => {}
    }
}

/// Moves the task to last status `status`, keeping counts and reservations exact, and stamps
/// its times: `startedAt` and connectivity CONNECTED when it starts running, `stoppingAt` from
/// DEACTIVATING on, `stoppedAt`/`executionStoppedAt` at STOPPED. A task only moves forward in
/// [`LIFECYCLE`] (a STOPPED task never moves again). Returns whether anything changed.
pub fn transition(
    t: &mut TaskRecord,
    status: &str,
    cluster: &mut Cluster,
    mut inst: Option<&mut InstanceRecord>,
    now: f64,
) -> bool {
    let old = Phase::of(&t.task.last_status);
    let new = Phase::of(status);
    if !advances(&t.task.last_status, status) {
        return false;
    }
    if old != new {
        adjust(cluster, inst.as_deref_mut(), old, -1);
        adjust(cluster, inst.as_deref_mut(), new, 1);
    }
    t.task.last_status = status.to_owned();
    t.task.version += 1;
    match new {
        Phase::Running if old == Phase::Pending => {
            t.task.started_at.get_or_insert(now);
            t.task.connectivity = Some("CONNECTED".into());
            t.task.connectivity_at.get_or_insert(now);
            for c in &mut t.task.containers {
                if c.last_status == "PENDING" {
                    c.last_status = "RUNNING".into();
                }
            }
        }
        Phase::Stopped => {
            if let Some(i) = inst.as_deref_mut() {
                release(i, t);
            }
            t.task.desired_status = "STOPPED".into();
            t.task.execution_stopped_at.get_or_insert(now);
            t.task.stopped_at = Some(now);
            t.task.connectivity = Some("DISCONNECTED".into());
            for c in &mut t.task.containers {
                c.last_status = "STOPPED".into();
            }
        }
        _ => {}
    }
    if stopping(status) {
        t.task.stopping_at.get_or_insert(now);
    }
    if let Some(i) = inst {
        i.sync();
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::shapes::{ContainerInstance, Task};
    use std::collections::BTreeMap;

    fn inst() -> InstanceRecord {
        InstanceRecord {
            id: "i".into(),
            cluster: "c".into(),
            instance: ContainerInstance::default(),
            registered_cpu: 1024,
            registered_memory: 2048,
            remaining_cpu: 1024,
            remaining_memory: 2048,
            reserved_tcp: vec![22],
            reserved_udp: vec![],
            used_tcp: vec![],
            used_udp: vec![],
            groups: BTreeMap::new(),
            agent_channel: false,
        }
    }

    fn task() -> TaskRecord {
        TaskRecord {
            id: "t".into(),
            cluster: "c".into(),
            family: "f".into(),
            instance_id: Some("i".into()),
            cpu: 256,
            memory: 512,
            host_ports: vec![crate::records::HostPortRecord {
                container_name: "web".into(),
                container_port: 80,
                host_port: 8080,
                protocol: "tcp".into(),
            }],
            reported: false,
            task: Task {
                last_status: "PENDING".into(),
                desired_status: "RUNNING".into(),
                group: Some("family:f".into()),
                ..Task::default()
            },
        }
    }

    #[test]
    fn reserve_run_stop_keeps_counts_exact() {
        let mut i = inst();
        let mut c = Cluster::default();
        let mut t = task();
        reserve(&mut i, &mut c, &t);
        assert_eq!((i.remaining_cpu, i.remaining_memory), (768, 1536));
        assert_eq!(i.used_tcp, vec![8080]);
        assert_eq!(c.pending_tasks_count, 1);
        assert_eq!(i.instance.pending_tasks_count, 1);
        assert!(transition(&mut t, "RUNNING", &mut c, Some(&mut i), 1.0));
        assert_eq!((c.pending_tasks_count, c.running_tasks_count), (0, 1));
        assert_eq!(i.instance.running_tasks_count, 1);
        assert!(!transition(&mut t, "RUNNING", &mut c, Some(&mut i), 2.0));
        assert!(transition(&mut t, "STOPPED", &mut c, Some(&mut i), 3.0));
        assert_eq!((c.pending_tasks_count, c.running_tasks_count), (0, 0));
        assert_eq!((i.remaining_cpu, i.remaining_memory), (1024, 2048));
        assert!(i.used_tcp.is_empty());
        assert!(i.groups.is_empty());
        assert_eq!(t.task.desired_status, "STOPPED");
        // A stopped task never comes back.
        assert!(!transition(&mut t, "RUNNING", &mut c, Some(&mut i), 4.0));
        assert_eq!(c.running_tasks_count, 0);
    }

    #[test]
    fn the_lifecycle_never_goes_backwards() {
        let mut i = inst();
        let mut c = Cluster::default();
        let mut t = task();
        reserve(&mut i, &mut c, &t);
        assert!(transition(&mut t, "ACTIVATING", &mut c, Some(&mut i), 1.0));
        assert!(!transition(&mut t, "PENDING", &mut c, Some(&mut i), 2.0));
        assert_eq!(t.task.last_status, "ACTIVATING");
        assert!(transition(&mut t, "RUNNING", &mut c, Some(&mut i), 3.0));
        assert_eq!(t.task.started_at, Some(3.0));
        assert_eq!(t.task.connectivity.as_deref(), Some("CONNECTED"));
        assert_eq!(t.task.connectivity_at, Some(3.0));
        assert!(t.task.stopping_at.is_none());
        assert!(!transition(&mut t, "ACTIVATING", &mut c, Some(&mut i), 4.0));
        assert!(transition(&mut t, "STOPPING", &mut c, Some(&mut i), 5.0));
        assert_eq!(t.task.stopping_at, Some(5.0));
        assert!(!transition(&mut t, "RUNNING", &mut c, Some(&mut i), 6.0));
        assert_eq!((c.pending_tasks_count, c.running_tasks_count), (0, 1));
        assert!(transition(&mut t, "STOPPED", &mut c, Some(&mut i), 7.0));
        assert_eq!(t.task.stopping_at, Some(5.0));
        assert_eq!(t.task.stopped_at, Some(7.0));
        assert_eq!((c.pending_tasks_count, c.running_tasks_count), (0, 0));
        assert!(!transition(&mut t, "STOPPED", &mut c, Some(&mut i), 8.0));
        assert!(!transition(&mut t, "BOGUS", &mut c, Some(&mut i), 8.0));
        assert_eq!(t.task.stopped_at, Some(7.0));
    }

    #[test]
    fn advances_in_order() {
        assert!(advances("PENDING", "RUNNING"));
        assert!(!advances("RUNNING", "RUNNING"));
        assert!(!advances("STOPPED", "RUNNING"));
        assert!(!advances("RUNNING", "NOPE"));
        assert!(!advances("DELETED", "RUNNING"));
    }

    #[test]
    fn pending_straight_to_stopped() {
        let mut i = inst();
        let mut c = Cluster::default();
        let mut t = task();
        reserve(&mut i, &mut c, &t);
        assert!(transition(&mut t, "STOPPED", &mut c, Some(&mut i), 1.0));
        assert_eq!(c.pending_tasks_count, 0);
        assert_eq!(i.instance.pending_tasks_count, 0);
        assert_eq!(i.remaining_cpu, 1024);
    }
}
