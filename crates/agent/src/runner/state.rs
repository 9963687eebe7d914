//! What the agent knows of a task: lifecycle statuses, each container's state, and the report
//! (`SubmitTaskStateChange`) built from it. The metadata endpoint reads the same views.

use std::collections::BTreeMap;
use std::sync::Arc;

use berth_api::shapes::agent::TaskAssignment;
use berth_api::shapes::tasks::{
    ContainerStateChange, NetworkBinding, SubmitTaskStateChangeRequest,
};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::spec::NetMode;

/// ECS's task lifecycle, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TaskStatus {
    Pending,
    Activating,
    Running,
    Deactivating,
    Stopping,
    Deprovisioning,
    Stopped,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "PENDING",
            TaskStatus::Activating => "ACTIVATING",
            TaskStatus::Running => "RUNNING",
            TaskStatus::Deactivating => "DEACTIVATING",
            TaskStatus::Stopping => "STOPPING",
            TaskStatus::Deprovisioning => "DEPROVISIONING",
            TaskStatus::Stopped => "STOPPED",
        }
    }
}

/// A container's lifecycle as the agent tracks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerStatus {
    /// Not created yet.
    Pending,
    /// Created, not started (waiting on dependencies).
    Created,
    Running,
    Stopped,
}

impl ContainerStatus {
    /// The status ECS shows (`PENDING`, `RUNNING`, `STOPPED`).
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerStatus::Pending | ContainerStatus::Created => "PENDING",
            ContainerStatus::Running => "RUNNING",
            ContainerStatus::Stopped => "STOPPED",
        }
    }
}

/// One container of a task.
#[derive(Clone, Debug)]
pub struct ContainerView {
    pub name: String,
    pub essential: bool,
    pub engine_name: String,
    pub image: String,
    pub image_id: Option<String>,
    pub runtime_id: Option<String>,
    pub status: ContainerStatus,
    pub exit_code: Option<i64>,
    pub reason: Option<String>,
    pub network_bindings: Vec<NetworkBinding>,
    /// `HEALTHY`/`UNHEALTHY`/`UNKNOWN`; None without a health check.
    pub health: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The metadata endpoint token of the container.
    pub token: String,
    pub labels: BTreeMap<String, String>,
    pub cpu: Option<i64>,
    pub memory: Option<i64>,
}

/// The awsvpc task's network interface (its pause container's endpoint).
#[derive(Clone, Debug, Default)]
pub struct Eni {
    pub attachment_id: String,
    pub ip: String,
    pub prefix_len: i64,
    pub mac: String,
    pub gateway: String,
    pub subnet: String,
}

/// A task as the agent knows it.
#[derive(Clone, Debug)]
pub struct TaskView {
    pub assignment: Arc<TaskAssignment>,
    pub status: TaskStatus,
    pub desired_stopped: bool,
    pub containers: Vec<ContainerView>,
    pub stop_code: Option<String>,
    pub stopped_reason: Option<String>,
    pub pull_started_at: Option<f64>,
    pub pull_stopped_at: Option<f64>,
    pub execution_stopped_at: Option<f64>,
    pub net: NetMode,
    pub eni: Option<Eni>,
    pub pause_id: Option<String>,
}

/// Seconds since the epoch, as ECS's timestamps.
pub fn epoch(t: DateTime<Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

impl TaskView {
    pub fn arn(&self) -> &str {
        &self.assignment.task.task_arn
    }

    /// The task's health from its essential containers that have health checks.
    pub fn health(&self) -> String {
        let checked: Vec<&str> = self
            .containers
            .iter()
            .filter(|c| c.essential)
            .filter_map(|c| c.health.as_deref())
            .collect();
        if checked.contains(&"UNHEALTHY") {
            "UNHEALTHY".into()
        } else if !checked.is_empty() && checked.iter().all(|h| *h == "HEALTHY") {
            "HEALTHY".into()
        } else {
            "UNKNOWN".into()
        }
    }

    /// The task's whole current state as a report.
    pub fn report(&self) -> SubmitTaskStateChangeRequest {
        let containers = self
            .containers
            .iter()
            .map(|c| ContainerStateChange {
                container_name: Some(c.name.clone()),
                image_digest: c.image_id.clone(),
                runtime_id: c.runtime_id.clone(),
                exit_code: c.exit_code,
                network_bindings: Some(c.network_bindings.clone()),
                reason: c.reason.clone(),
                status: Some(c.status.as_str().into()),
                health_status: c.health.clone(),
                network_interfaces: self.eni.as_ref().map(|e| {
                    vec![json!({"attachmentId": e.attachment_id, "privateIpv4Address": e.ip})]
                }),
            })
            .collect();
        SubmitTaskStateChangeRequest {
            cluster: Some(self.assignment.cluster.clone()),
            task: Some(self.arn().to_string()),
            status: Some(self.status.as_str().into()),
            reason: self.stopped_reason.clone(),
            containers: Some(containers),
            pull_started_at: self.pull_started_at,
            pull_stopped_at: self.pull_stopped_at,
            execution_stopped_at: self.execution_stopped_at,
            stop_code: self.stop_code.clone(),
            health_status: Some(self.health()),
            task_attachments: self.eni.as_ref().map(|e| vec![attachment(e)]),
            ..Default::default()
        }
    }
}

/// The ENI-style attachment of an awsvpc task, as DescribeTasks shows it.
pub fn attachment(e: &Eni) -> Value {
    let d = |n: &str, v: &str| json!({"name": n, "value": v});
    json!({
        "id": e.attachment_id,
        "type": "ElasticNetworkInterface",
        "status": "ATTACHED",
        "details": [
            d("subnetId", &e.subnet),
            d("networkInterfaceId", &format!("eni-{}", e.attachment_id.get(..17).unwrap_or(&e.attachment_id))),
            d("macAddress", &e.mac),
            d("privateIPv4Address", &e.ip),
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::shapes::tasks::Task;

    fn view(health: &[(bool, Option<&str>)]) -> TaskView {
        let assignment = Arc::new(TaskAssignment {
            cluster: "c".into(),
            task: Task {
                task_arn: "arn:t/1".into(),
                ..Task::default()
            },
            task_definition: Default::default(),
            host_ports: vec![],
        });
        TaskView {
            assignment,
            status: TaskStatus::Running,
            desired_stopped: false,
            containers: health
                .iter()
                .enumerate()
                .map(|(i, (essential, h))| ContainerView {
                    name: format!("c{i}"),
                    essential: *essential,
                    engine_name: String::new(),
                    image: "bb".into(),
                    image_id: None,
                    runtime_id: Some(format!("id{i}")),
                    status: ContainerStatus::Running,
                    exit_code: None,
                    reason: None,
                    network_bindings: vec![],
                    health: h.map(str::to_string),
                    created_at: None,
                    started_at: None,
                    finished_at: None,
                    token: String::new(),
                    labels: BTreeMap::new(),
                    cpu: None,
                    memory: None,
                })
                .collect(),
            stop_code: None,
            stopped_reason: None,
            pull_started_at: None,
            pull_stopped_at: None,
            execution_stopped_at: None,
            net: NetMode::Bridge,
            eni: None,
            pause_id: None,
        }
    }

    #[test]
    fn task_health_comes_from_essential_checked_containers() {
        assert_eq!(view(&[(true, None)]).health(), "UNKNOWN");
        assert_eq!(
            view(&[(true, Some("HEALTHY")), (true, None)]).health(),
            "HEALTHY"
        );
        assert_eq!(
            view(&[(true, Some("HEALTHY")), (true, Some("UNKNOWN"))]).health(),
            "UNKNOWN"
        );
        assert_eq!(
            view(&[(true, Some("HEALTHY")), (false, Some("UNHEALTHY"))]).health(),
            "HEALTHY"
        );
        assert_eq!(
            view(&[(true, Some("UNHEALTHY")), (true, Some("HEALTHY"))]).health(),
            "UNHEALTHY"
        );
        let r = view(&[(true, None)]).report();
        assert_eq!(r.status.as_deref(), Some("RUNNING"));
        assert_eq!(r.containers.unwrap()[0].runtime_id.as_deref(), Some("id0"));
    }
}
