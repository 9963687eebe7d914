//! The agent-facing calls: DiscoverPollEndpoint, SubmitTaskStateChange,
//! SubmitContainerStateChange. A task stays PENDING until its agent reports; reports move it
//! through [`crate::counts::transition`] so counts and reservations stay exact.
//!
//! Reports are idempotent (an agent sends a task's whole current state each time) and only move
//! a task or a container forward in ECS's lifecycle ([`crate::counts::LIFECYCLE`]): a report
//! older than what is stored is acknowledged and changes nothing. A report that changes
//! nothing writes nothing.

use berth_api::shapes::{
    AcknowledgmentResponse, Container, ContainerStateChange, DiscoverPollEndpointRequest,
    DiscoverPollEndpointResponse, SubmitContainerStateChangeRequest, SubmitTaskStateChangeRequest,
};
use berth_api::{cluster_name, task_id, validate, EcsError};
use serde_json::Value;

use crate::core::{contention, now, Batch, Core, Ctx, CAS_ATTEMPTS};
use crate::counts::{advances, rank, transition, LIFECYCLE};
use crate::keys;
use crate::records::{InstanceRecord, Phase, TaskRecord};

const HEALTH: &[&str] = &["HEALTHY", "UNHEALTHY", "UNKNOWN"];
const STOP_CODES: &[&str] = &[
    "TaskFailedToStart",
    "EssentialContainerExited",
    "UserInitiated",
    "ServiceSchedulerInitiated",
    "SpotInterruption",
    "TerminationNotice",
];

/// What one report says about a task (SubmitTaskStateChange, or SubmitContainerStateChange
/// as a report on one container).
#[derive(Default)]
struct Report<'a> {
    status: Option<&'a str>,
    reason: Option<&'a str>,
    stop_code: Option<&'a str>,
    health_status: Option<&'a str>,
    attachments: Option<&'a [Value]>,
    containers: Vec<ContainerStateChange>,
    pull_started_at: Option<f64>,
    pull_stopped_at: Option<f64>,
    execution_stopped_at: Option<f64>,
}

fn objects(what: &str, values: &[Value]) -> Result<(), EcsError> {
    if values.iter().all(Value::is_object) {
        Ok(())
    } else {
        Err(EcsError::invalid(format!(
            "each of {what} must be an object"
        )))
    }
}

impl Report<'_> {
    /// Checks every value before anything is read or written.
    fn validate(&self) -> Result<(), EcsError> {
        if let Some(s) = self.status {
            validate::one_of("status", s, LIFECYCLE)?;
        }
        if let Some(s) = self.stop_code {
            validate::one_of("stopCode", s, STOP_CODES)?;
        }
        if let Some(s) = self.health_status {
            validate::one_of("healthStatus", s, HEALTH)?;
        }
        if let Some(a) = self.attachments {
            objects("taskAttachments", a)?;
        }
        for c in &self.containers {
            if let Some(s) = &c.status {
                validate::one_of("container status", s, LIFECYCLE)?;
            }
            if let Some(s) = &c.health_status {
                validate::one_of("container healthStatus", s, HEALTH)?;
            }
            if let Some(n) = &c.network_interfaces {
                objects("networkInterfaces", n)?;
            }
        }
        Ok(())
    }

    /// Whether the report is older than what the task already is (a late retry): nothing of
    /// it applies.
    fn stale(&self, t: &TaskRecord) -> bool {
        self.status
            .is_some_and(|s| rank(s) < rank(&t.task.last_status))
    }

    /// Applies everything but the task's status (see [`transition`]).
    fn apply_fields(&self, t: &mut TaskRecord) -> Result<(), EcsError> {
        for ch in &self.containers {
            let name = ch.container_name.as_deref().unwrap_or("");
            let Some(c) = t.task.containers.iter_mut().find(|c| c.name == name) else {
                return Err(EcsError::invalid(format!("task has no container `{name}`")));
            };
            apply_container(c, ch);
        }
        let task = &mut t.task;
        if self.pull_started_at.is_some() {
            task.pull_started_at = self.pull_started_at;
        }
        if self.pull_stopped_at.is_some() {
            task.pull_stopped_at = self.pull_stopped_at;
        }
        if self.execution_stopped_at.is_some() {
            task.execution_stopped_at = self.execution_stopped_at;
        }
        if let Some(h) = self.health_status {
            task.health_status = Some(h.to_owned());
        }
        if let Some(a) = self.attachments {
            task.attachments = a.to_vec();
        }
        // The first stop code wins: StopTask's UserInitiated stays.
        if let (Some(code), None) = (self.stop_code, &task.stop_code) {
            task.stop_code = Some(code.to_owned());
            if let Some(r) = self.reason {
                task.stopped_reason.get_or_insert_with(|| r.to_owned());
            }
        }
        Ok(())
    }

    /// Once the task is STOPPED: its stop code (EssentialContainerExited unless StopTask or
    /// the agent gave one) and stopped reason.
    fn stop_details(&self, t: &mut TaskRecord) {
        if t.task.last_status != "STOPPED" {
            return;
        }
        let task = &mut t.task;
        let code = task
            .stop_code
            .get_or_insert_with(|| "EssentialContainerExited".to_owned())
            .clone();
        if task.stopped_reason.is_none() {
            task.stopped_reason = self
                .reason
                .map(str::to_owned)
                .or_else(|| default_reason(&code).map(str::to_owned));
        }
    }
}

fn default_reason(stop_code: &str) -> Option<&'static str> {
    match stop_code {
        "EssentialContainerExited" => Some("Essential container in task exited"),
        "TaskFailedToStart" => Some("Task failed to start"),
        "UserInitiated" => Some("Task stopped by user"),
        _ => None,
    }
}

/// Applies a container's report; its status only moves forward.
fn apply_container(c: &mut Container, ch: &ContainerStateChange) {
    if let Some(s) = &ch.status {
        if advances(&c.last_status, s) {
            c.last_status = s.clone();
        }
    }
    if ch.exit_code.is_some() {
        c.exit_code = ch.exit_code;
    }
    if ch.reason.is_some() {
        c.reason = ch.reason.clone();
    }
    if let Some(b) = &ch.network_bindings {
        c.network_bindings = b.clone();
    }
    if ch.runtime_id.is_some() {
        c.runtime_id = ch.runtime_id.clone();
    }
    if ch.image_digest.is_some() {
        c.image_digest = ch.image_digest.clone();
    }
    if ch.health_status.is_some() {
        c.health_status = ch.health_status.clone();
    }
    if let Some(n) = &ch.network_interfaces {
        c.network_interfaces = n.clone();
    }
}

fn ack() -> AcknowledgmentResponse {
    AcknowledgmentResponse {
        acknowledgment: "true".into(),
    }
}

impl Core {
    pub async fn discover_poll_endpoint(
        &self,
        ctx: &Ctx,
        _req: DiscoverPollEndpointRequest,
    ) -> Result<DiscoverPollEndpointResponse, EcsError> {
        Ok(DiscoverPollEndpointResponse {
            endpoint: ctx.endpoint.clone(),
            telemetry_endpoint: ctx.endpoint.clone(),
            service_connect_endpoint: ctx.endpoint.clone(),
        })
    }

    /// Applies an agent report to a task under the cluster lock.
    async fn report(
        &self,
        cluster: Option<&str>,
        task: Option<&str>,
        report: Report<'_>,
    ) -> Result<AcknowledgmentResponse, EcsError> {
        report.validate()?;
        let cluster = cluster_name(cluster)?;
        let task = task.ok_or_else(|| EcsError::invalid("missing required parameter `task`"))?;
        let id = task_id(task, &cluster)?;
        let key = keys::task(&cluster, &id);
        let _guard = self.lock(&cluster).await;
        for _ in 0..CAS_ATTEMPTS {
            let (mut c, crev) = self.active_cluster(&cluster).await?;
            let Some((mut t, trev)) = self.get::<TaskRecord>(&key).await? else {
                return Err(EcsError::invalid("The referenced task was not found."));
            };
            if report.stale(&t) {
                return Ok(ack());
            }
            let before = t.task.clone();
            let was_reported = t.reported;
            t.reported = true;
            report.apply_fields(&mut t)?;
            let mut batch = Batch::new();
            let at = now();
            if let Some(status) = report.status {
                let ikey = t
                    .instance_id
                    .as_deref()
                    .map(|i| keys::instance(&cluster, i));
                let mut inst = match &ikey {
                    Some(k) => self.get::<InstanceRecord>(k).await?,
                    None => None,
                };
                if transition(&mut t, status, &mut c, inst.as_mut().map(|(r, _)| r), at) {
                    if let (Some(k), Some((r, rev))) = (ikey, &inst) {
                        batch.put(k, r, Some(*rev))?;
                    }
                    batch.put(keys::cluster(&cluster), &c, Some(crev))?;
                    if Phase::of(status) == Phase::Stopped {
                        if let Some(i) = &t.instance_id {
                            batch.delete(keys::assignment(i, &id));
                        }
                    }
                }
            }
            report.stop_details(&mut t);
            if was_reported && t.task == before {
                return Ok(ack());
            }
            t.task.version = before.version + 1;
            batch.put(key.clone(), &t, Some(trev))?;
            if self.commit(batch).await? {
                return Ok(ack());
            }
        }
        Err(contention())
    }

    pub async fn submit_task_state_change(
        &self,
        _ctx: &Ctx,
        req: SubmitTaskStateChangeRequest,
    ) -> Result<AcknowledgmentResponse, EcsError> {
        let report = Report {
            status: req.status.as_deref(),
            reason: req.reason.as_deref(),
            stop_code: req.stop_code.as_deref(),
            health_status: req.health_status.as_deref(),
            attachments: req.task_attachments.as_deref(),
            containers: req.containers.clone().unwrap_or_default(),
            pull_started_at: req.pull_started_at,
            pull_stopped_at: req.pull_stopped_at,
            execution_stopped_at: req.execution_stopped_at,
        };
        self.report(req.cluster.as_deref(), req.task.as_deref(), report)
            .await
    }

    pub async fn submit_container_state_change(
        &self,
        _ctx: &Ctx,
        req: SubmitContainerStateChangeRequest,
    ) -> Result<AcknowledgmentResponse, EcsError> {
        let report = Report {
            containers: vec![ContainerStateChange {
                container_name: req.container_name.clone(),
                runtime_id: req.runtime_id.clone(),
                exit_code: req.exit_code,
                network_bindings: req.network_bindings.clone(),
                reason: req.reason.clone(),
                status: req.status.clone(),
                ..Default::default()
            }],
            ..Report::default()
        };
        self.report(req.cluster.as_deref(), req.task.as_deref(), report)
            .await
    }
}
