//! The agent channel: what the control plane pushes to a node agent over
//! `GET /v1/agent/watch` (docs/agent-protocol.md), one JSON object per line.
//!
//! These are Berth's own shapes (the real ECS agent speaks a websocket protocol, ACS, that no
//! public tool depends on); everything else an agent does goes through the public ECS
//! operations (RegisterContainerInstance, SubmitTaskStateChange, ...).

use super::taskdefs::TaskDefinition;
use super::tasks::Task;
use serde::{Deserialize, Serialize};

/// One line of the agent channel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum AgentEvent {
    /// Always the first line: every task placed on the instance and not yet STOPPED, as of
    /// `revision`. The agent reconciles against it (starts what it does not run, stops what
    /// is not listed any more).
    Snapshot {
        revision: i64,
        tasks: Vec<TaskAssignment>,
    },
    /// A task was placed on the instance, or its desired status changed.
    Task {
        revision: i64,
        assignment: Box<TaskAssignment>,
    },
    /// The task reached STOPPED on the server (or was removed): forget it.
    Removed { revision: i64, task_arn: String },
    /// Sent every [`HEARTBEAT_SECONDS`] while nothing else is: the connection is alive.
    Heartbeat { revision: i64 },
}

/// How often the server sends a heartbeat line on an idle channel.
pub const HEARTBEAT_SECONDS: u64 = 10;

/// A task an agent must run (or stop).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskAssignment {
    /// The cluster's name.
    pub cluster: String,
    /// The task as DescribeTasks shows it: arn, desiredStatus, overrides, containers (names
    /// and arns), group, startedBy, version.
    pub task: Task,
    /// The task's definition (the revision the task was started from).
    pub task_definition: TaskDefinition,
    /// Host ports the scheduler reserved for the task's port mappings (bridge and host mode).
    /// A mapping whose hostPort is 0 here lets the engine choose (the agent reports the
    /// binding it got).
    #[serde(default)]
    pub host_ports: Vec<AssignedHostPort>,
}

/// A host port reserved for one port mapping of one container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignedHostPort {
    pub container_name: String,
    pub container_port: u16,
    pub host_port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
}
