//! The agent-facing calls: DiscoverPollEndpoint, SubmitTaskStateChange,
//! SubmitContainerStateChange. A task stays PENDING until its agent reports; reports move it
//! through [`crate::counts::transition`] so counts and reservations stay exact.

use berth_api::shapes::{
    AcknowledgmentResponse, Container, ContainerStateChange, DiscoverPollEndpointRequest,
    DiscoverPollEndpointResponse, SubmitContainerStateChangeRequest, SubmitTaskStateChangeRequest,
};
use berth_api::{cluster_name, task_id, EcsError};

use crate::core::{contention, now, Batch, Core, Ctx, CAS_ATTEMPTS};
use crate::counts::transition;
use crate::keys;
use crate::records::{InstanceRecord, Phase, TaskRecord};

const TASK_STATUSES: &[&str] = &[
    "PROVISIONING",
    "PENDING",
    "ACTIVATING",
    "RUNNING",
    "DEACTIVATING",
    "STOPPING",
    "DEPROVISIONING",
    "STOPPED",
];

fn apply_container(c: &mut Container, ch: &ContainerStateChange) -> Result<(), EcsError> {
    if let Some(s) = &ch.status {
        berth_api::validate::one_of("container status", s, TASK_STATUSES)?;
        if c.last_status != "STOPPED" {
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
    Ok(())
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
        apply: impl Fn(&mut TaskRecord) -> Result<Option<String>, EcsError>,
    ) -> Result<AcknowledgmentResponse, EcsError> {
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
            t.reported = true;
            let new_status = apply(&mut t)?;
            t.task.version += 1;
            let mut batch = Batch::new();
            if let Some(status) = new_status {
                let ikey = t
                    .instance_id
                    .as_deref()
                    .map(|i| keys::instance(&cluster, i));
                let mut inst = match &ikey {
                    Some(k) => self.get::<InstanceRecord>(k).await?,
                    None => None,
                };
                if transition(
                    &mut t,
                    &status,
                    &mut c,
                    inst.as_mut().map(|(r, _)| r),
                    now(),
                ) {
                    if let (Some(k), Some((r, rev))) = (ikey, &inst) {
                        batch.put(k, r, Some(*rev))?;
                    }
                    batch.put(keys::cluster(&cluster), &c, Some(crev))?;
                    if Phase::of(&status) == Phase::Stopped {
                        if let Some(i) = &t.instance_id {
                            batch.delete(keys::assignment(i, &id));
                        }
                    }
                }
            }
            batch.put(key.clone(), &t, Some(trev))?;
            if self.commit(batch).await? {
                return Ok(AcknowledgmentResponse {
                    acknowledgment: "true".into(),
                });
            }
        }
        Err(contention())
    }

    pub async fn submit_task_state_change(
        &self,
        _ctx: &Ctx,
        req: SubmitTaskStateChangeRequest,
    ) -> Result<AcknowledgmentResponse, EcsError> {
        if let Some(s) = &req.status {
            berth_api::validate::one_of("status", s, TASK_STATUSES)?;
        }
        self.report(req.cluster.as_deref(), req.task.as_deref(), |t| {
            for ch in req.containers.iter().flatten() {
                let name = ch.container_name.as_deref().unwrap_or("");
                let Some(c) = t.task.containers.iter_mut().find(|c| c.name == name) else {
                    return Err(EcsError::invalid(format!("task has no container `{name}`")));
                };
                apply_container(c, ch)?;
            }
            if req.pull_started_at.is_some() {
                t.task.pull_started_at = req.pull_started_at;
            }
            if req.pull_stopped_at.is_some() {
                t.task.pull_stopped_at = req.pull_stopped_at;
            }
            if req.execution_stopped_at.is_some() {
                t.task.execution_stopped_at = req.execution_stopped_at;
            }
            if req.status.as_deref() == Some("STOPPED") && t.task.stop_code.is_none() {
                t.task.stop_code = Some("EssentialContainerExited".into());
                t.task.stopped_reason = Some(
                    req.reason
                        .clone()
                        .unwrap_or_else(|| "Essential container in task exited".into()),
                );
            } else if let Some(r) = &req.reason {
                t.task.stopped_reason.get_or_insert_with(|| r.clone());
            }
            Ok(req.status.clone())
        })
        .await
    }

    pub async fn submit_container_state_change(
        &self,
        _ctx: &Ctx,
        req: SubmitContainerStateChangeRequest,
    ) -> Result<AcknowledgmentResponse, EcsError> {
        let ch = ContainerStateChange {
            container_name: req.container_name.clone(),
            image_digest: None,
            runtime_id: req.runtime_id.clone(),
            exit_code: req.exit_code,
            network_bindings: req.network_bindings.clone(),
            reason: req.reason.clone(),
            status: req.status.clone(),
            ..Default::default()
        };
        self.report(req.cluster.as_deref(), req.task.as_deref(), |t| {
            let name = ch.container_name.as_deref().unwrap_or("");
            let Some(c) = t.task.containers.iter_mut().find(|c| c.name == name) else {
                return Err(EcsError::invalid(format!("task has no container `{name}`")));
            };
            apply_container(c, &ch)?;
            Ok(None)
        })
        .await
    }
}
