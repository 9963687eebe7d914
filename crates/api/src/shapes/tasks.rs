//! Tasks: the task and its containers, RunTask/StartTask/StopTask/DescribeTasks/ListTasks and
//! the agent's state-change reports.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::common::{Attribute, Failure, KeyValuePair, Tag};

#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct NetworkBinding {
    #[serde(rename = "bindIP")]
    pub bind_ip: Option<String>,
    pub container_port: Option<i64>,
    pub host_port: Option<i64>,
    pub protocol: Option<String>,
    pub container_port_range: Option<String>,
    pub host_port_range: Option<String>,
}

#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    pub container_arn: String,
    pub task_arn: String,
    pub name: String,
    pub image: String,
    pub image_digest: Option<String>,
    pub runtime_id: Option<String>,
    pub last_status: String,
    pub exit_code: Option<i64>,
    pub reason: Option<String>,
    #[serde(default)]
    pub network_bindings: Vec<NetworkBinding>,
    #[serde(default)]
    pub network_interfaces: Vec<Value>,
    pub health_status: Option<String>,
    pub cpu: Option<String>,
    pub memory: Option<String>,
    pub memory_reservation: Option<String>,
}

#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ContainerOverride {
    pub name: Option<String>,
    pub command: Option<Vec<String>>,
    pub environment: Option<Vec<KeyValuePair>>,
    pub environment_files: Option<Vec<Value>>,
    pub cpu: Option<i64>,
    pub memory: Option<i64>,
    pub memory_reservation: Option<i64>,
    pub resource_requirements: Option<Vec<Value>>,
}

#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct TaskOverride {
    #[serde(default)]
    pub container_overrides: Vec<ContainerOverride>,
    pub cpu: Option<String>,
    #[serde(default)]
    pub inference_accelerator_overrides: Vec<Value>,
    pub execution_role_arn: Option<String>,
    pub memory: Option<String>,
    pub task_role_arn: Option<String>,
    pub ephemeral_storage: Option<Value>,
}

#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    #[serde(default)]
    pub attachments: Vec<Value>,
    pub attributes: Option<Vec<Attribute>>,
    pub availability_zone: Option<String>,
    pub cluster_arn: String,
    pub connectivity: Option<String>,
    pub connectivity_at: Option<f64>,
    pub container_instance_arn: Option<String>,
    pub containers: Vec<Container>,
    pub cpu: Option<String>,
    pub created_at: f64,
    pub desired_status: String,
    #[serde(default)]
    pub enable_execute_command: bool,
    pub execution_stopped_at: Option<f64>,
    pub group: Option<String>,
    pub health_status: Option<String>,
    pub last_status: String,
    pub launch_type: String,
    pub memory: Option<String>,
    #[serde(default)]
    pub overrides: TaskOverride,
    pub pull_started_at: Option<f64>,
    pub pull_stopped_at: Option<f64>,
    pub started_at: Option<f64>,
    pub started_by: Option<String>,
    pub stop_code: Option<String>,
    pub stopped_at: Option<f64>,
    pub stopped_reason: Option<String>,
    pub stopping_at: Option<f64>,
    pub tags: Option<Vec<Tag>>,
    pub task_arn: String,
    pub task_definition_arn: String,
    pub version: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlacementConstraint {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub expression: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlacementStrategy {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub field: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunTaskRequest {
    pub capacity_provider_strategy: Option<Vec<Value>>,
    pub cluster: Option<String>,
    pub count: Option<i64>,
    pub enable_ecs_managed_tags: Option<bool>,
    pub enable_execute_command: Option<bool>,
    pub group: Option<String>,
    pub launch_type: Option<String>,
    pub network_configuration: Option<Value>,
    pub overrides: Option<TaskOverride>,
    pub placement_constraints: Option<Vec<PlacementConstraint>>,
    pub placement_strategy: Option<Vec<PlacementStrategy>>,
    pub platform_version: Option<String>,
    pub propagate_tags: Option<String>,
    pub reference_id: Option<String>,
    pub started_by: Option<String>,
    pub tags: Option<Vec<Tag>>,
    pub task_definition: String,
    pub client_token: Option<String>,
    pub volume_configurations: Option<Vec<Value>>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartTaskRequest {
    pub cluster: Option<String>,
    pub container_instances: Vec<String>,
    pub enable_ecs_managed_tags: Option<bool>,
    pub enable_execute_command: Option<bool>,
    pub group: Option<String>,
    pub network_configuration: Option<Value>,
    pub overrides: Option<TaskOverride>,
    pub propagate_tags: Option<String>,
    pub reference_id: Option<String>,
    pub started_by: Option<String>,
    pub tags: Option<Vec<Tag>>,
    pub task_definition: String,
    pub volume_configurations: Option<Vec<Value>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TasksResponse {
    pub tasks: Vec<Task>,
    pub failures: Vec<Failure>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StopTaskRequest {
    pub cluster: Option<String>,
    pub task: String,
    pub reason: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StopTaskResponse {
    pub task: Task,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeTasksRequest {
    pub cluster: Option<String>,
    pub tasks: Vec<String>,
    pub include: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListTasksRequest {
    pub cluster: Option<String>,
    pub container_instance: Option<String>,
    pub family: Option<String>,
    pub next_token: Option<String>,
    pub max_results: Option<i64>,
    pub started_by: Option<String>,
    pub service_name: Option<String>,
    pub desired_status: Option<String>,
    pub launch_type: Option<String>,
    pub daemon_name: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListTasksResponse {
    pub task_arns: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStateChange {
    pub container_name: Option<String>,
    pub image_digest: Option<String>,
    pub runtime_id: Option<String>,
    pub exit_code: Option<i64>,
    pub network_bindings: Option<Vec<NetworkBinding>>,
    pub reason: Option<String>,
    pub status: Option<String>,
    /// Berth extension: `HEALTHY`, `UNHEALTHY` or `UNKNOWN` (the container's health check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_status: Option<String>,
    /// Berth extension (awsvpc): `[{"attachmentId", "privateIpv4Address"}]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_interfaces: Option<Vec<Value>>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubmitTaskStateChangeRequest {
    pub cluster: Option<String>,
    pub task: Option<String>,
    pub status: Option<String>,
    pub reason: Option<String>,
    pub containers: Option<Vec<ContainerStateChange>>,
    pub attachments: Option<Vec<Value>>,
    pub managed_agents: Option<Vec<Value>>,
    pub pull_started_at: Option<f64>,
    pub pull_stopped_at: Option<f64>,
    pub execution_stopped_at: Option<f64>,
    /// Berth extension: the task's stopCode when it stops (`EssentialContainerExited`,
    /// `TaskFailedToStart`, `UserInitiated`); EssentialContainerExited when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_code: Option<String>,
    /// Berth extension: the task's healthStatus (`HEALTHY`, `UNHEALTHY`, `UNKNOWN`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_status: Option<String>,
    /// Berth extension (awsvpc): the task's attachments as DescribeTasks shows them
    /// (`{"id", "type": "ElasticNetworkInterface", "status", "details": [{"name", "value"}]}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_attachments: Option<Vec<Value>>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubmitContainerStateChangeRequest {
    pub cluster: Option<String>,
    pub task: Option<String>,
    pub container_name: Option<String>,
    pub runtime_id: Option<String>,
    pub status: Option<String>,
    pub exit_code: Option<i64>,
    pub reason: Option<String>,
    pub network_bindings: Option<Vec<NetworkBinding>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AcknowledgmentResponse {
    pub acknowledgment: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscoverPollEndpointRequest {
    pub container_instance: Option<String>,
    pub cluster: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscoverPollEndpointResponse {
    pub endpoint: String,
    pub telemetry_endpoint: String,
    pub service_connect_endpoint: String,
}
