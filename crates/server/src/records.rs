//! What the server stores under each key (JSON). Records hold the wire shape a client sees
//! plus the bookkeeping the core needs (reservations, host ports, task groups).

use std::collections::BTreeMap;

use berth_api::shapes::{ContainerInstance, ResourceAmount, Tag, Task, TaskDefinition};
use serde::{Deserialize, Serialize};

/// `families/FAMILY`
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FamilyRecord {
    pub last_revision: u32,
    /// Revisions with status ACTIVE.
    pub active: u32,
}

/// `taskdefs/FAMILY/REV`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TaskDefRecord {
    pub task_definition: TaskDefinition,
    #[serde(default)]
    pub tags: Vec<Tag>,
}

/// `instances/CLUSTER/ID`. The wire `remainingResources` are derived from `remaining_*` and
/// `used_*` by [`InstanceRecord::sync`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InstanceRecord {
    pub id: String,
    pub cluster: String,
    pub instance: ContainerInstance,
    pub registered_cpu: u32,
    pub registered_memory: u32,
    pub remaining_cpu: u32,
    pub remaining_memory: u32,
    /// Ports reserved at registration (`PORTS`, `PORTS_UDP` of totalResources).
    pub reserved_tcp: Vec<u16>,
    pub reserved_udp: Vec<u16>,
    /// Host ports of tasks placed here and not yet stopped.
    pub used_tcp: Vec<u16>,
    pub used_udp: Vec<u16>,
    /// Task group -> tasks placed here and not yet stopped.
    pub groups: BTreeMap<String, u32>,
    /// Whether an agent channel of the instance was ever open: only then does
    /// `agentConnected` follow the channels (an instance registered through the API alone
    /// keeps what registration set).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub agent_channel: bool,
}

fn ports_strings(a: &[u16], b: &[u16]) -> Vec<String> {
    let mut all: Vec<u16> = a.iter().chain(b).copied().collect();
    all.sort_unstable();
    all.dedup();
    all.iter().map(u16::to_string).collect()
}

impl InstanceRecord {
    /// Recomputes the wire `remainingResources` and bumps the version.
    pub fn sync(&mut self) {
        self.instance.remaining_resources = vec![
            ResourceAmount::integer("CPU", i64::from(self.remaining_cpu)),
            ResourceAmount::integer("MEMORY", i64::from(self.remaining_memory)),
            ResourceAmount::string_set("PORTS", ports_strings(&self.reserved_tcp, &self.used_tcp)),
            ResourceAmount::string_set(
                "PORTS_UDP",
                ports_strings(&self.reserved_udp, &self.used_udp),
            ),
        ];
        self.instance.version += 1;
    }

    /// Whether the instance counts as registered (ACTIVE or DRAINING).
    pub fn registered(&self) -> bool {
        matches!(self.instance.status.as_str(), "ACTIVE" | "DRAINING")
    }
}

/// A host port the scheduler gave a container of a task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostPortRecord {
    pub container_name: String,
    pub container_port: u16,
    pub host_port: u16,
    pub protocol: String,
}

/// `tasks/CLUSTER/ID`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TaskRecord {
    pub id: String,
    pub cluster: String,
    pub family: String,
    pub instance_id: Option<String>,
    pub cpu: u32,
    pub memory: u32,
    pub host_ports: Vec<HostPortRecord>,
    /// Whether an agent has reported on the task.
    #[serde(default)]
    pub reported: bool,
    pub task: Task,
}

/// Where a task's last status puts it in the counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Pending,
    Running,
    Stopped,
}

impl Phase {
    pub fn of(last_status: &str) -> Phase {
        match last_status {
            "RUNNING" | "DEACTIVATING" | "STOPPING" | "DEPROVISIONING" => Phase::Running,
            "STOPPED" | "DELETED" => Phase::Stopped,
            _ => Phase::Pending,
        }
    }
}

/// `assignments/INSTANCE_ID/TASK_ID`: what the agent of the instance watches.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignmentRecord {
    pub cluster: String,
    pub task_arn: String,
    pub desired_status: String,
    pub version: i64,
}

impl AssignmentRecord {
    pub fn of(t: &TaskRecord) -> Self {
        AssignmentRecord {
            cluster: t.cluster.clone(),
            task_arn: t.task.task_arn.clone(),
            desired_status: t.task.desired_status.clone(),
            version: t.task.version,
        }
    }
}

/// `idempotency/CLUSTER/TOKEN`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// What identifies the request (task definition, count, group, startedBy).
    pub fingerprint: String,
    pub task_ids: Vec<String>,
}
