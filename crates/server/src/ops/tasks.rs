//! RunTask, StartTask, StopTask, DescribeTasks, ListTasks.
//!
//! RunTask and StartTask hold the cluster's writer lock while they read the cluster's
//! instances, ask the scheduler for a placement and write, in one conditional transaction,
//! the new tasks, their assignments, the instances' reservations and the cluster's counts.

use std::collections::{BTreeMap, HashMap};

use berth_api::shapes::{
    Cluster, Container, ContainerOverride, DescribeTasksRequest, Failure, ListTasksRequest,
    ListTasksResponse, RunTaskRequest, StartTaskRequest, StopTaskRequest, StopTaskResponse, Tag,
    Task, TaskOverride, TasksResponse,
};
use berth_api::{cluster_name, container_instance_id, paging, task_id, validate, EcsError};
use berth_scheduler::{ClusterView, PlacementOutcome, PlacementRequest, Protocol, TaskSpec};
use berth_store::KeyValue;

use crate::core::{contention, decode, now, Batch, Core, Ctx, CAS_ATTEMPTS};
use crate::counts::{reserve, transition};
use crate::keys;
use crate::placement::{constraints, instance_spec, strategies, task_spec};
use crate::records::{
    AssignmentRecord, HostPortRecord, IdempotencyRecord, InstanceRecord, Phase, TaskDefRecord,
    TaskRecord,
};

const LAUNCH_TYPES: &[&str] = &["EC2", "FARGATE", "EXTERNAL", "MANAGED_INSTANCES"];
const DESIRED: &[&str] = &["RUNNING", "PENDING", "STOPPED"];

/// What RunTask and StartTask have in common once validated.
struct NewTasks {
    cluster: String,
    td: TaskDefRecord,
    spec: TaskSpec,
    overrides: TaskOverride,
    group: String,
    started_by: Option<String>,
    tags: Vec<Tag>,
    launch_type: String,
    enable_execute_command: bool,
}

/// Where the tasks go.
enum Target {
    Place(PlacementRequest),
    /// StartTask: one task on each of these instance ids.
    Instances(Vec<String>),
}

fn check_common(
    group: Option<&str>,
    started_by: Option<&str>,
    tags: Option<&[Tag]>,
) -> Result<(), EcsError> {
    if let Some(g) = group {
        if g.is_empty() || g.len() > 255 {
            return Err(EcsError::invalid("group must be 1 to 255 characters"));
        }
    }
    if let Some(s) = started_by {
        let ok = s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'/' || b == b'_');
        if s.len() > 128 || !ok {
            return Err(EcsError::invalid(format!(
                "invalid startedBy `{s}`: use up to 128 letters, digits, hyphens, slashes and underscores"
            )));
        }
    }
    if let Some(t) = tags {
        validate::tags(t)?;
    }
    Ok(())
}

fn filled_overrides(td: &TaskDefRecord, given: Option<TaskOverride>) -> TaskOverride {
    let mut ov = given.unwrap_or_default();
    let mut containers = Vec::new();
    for c in &td.task_definition.container_definitions {
        let name = c.name.clone();
        match ov.container_overrides.iter().find(|o| o.name == name) {
            Some(o) => containers.push(o.clone()),
            None => containers.push(ContainerOverride {
                name,
                ..ContainerOverride::default()
            }),
        }
    }
    ov.container_overrides = containers;
    ov
}

fn failures_of(outcome: &PlacementOutcome, cluster_arn: &str) -> Vec<Failure> {
    if outcome.unplaced == 0 {
        return Vec::new();
    }
    outcome
        .failures
        .iter()
        .map(|f| Failure {
            arn: Some(cluster_arn.to_owned()),
            reason: f.reason.as_str().to_owned(),
            detail: Some(format!(
                "{} container instance(s) failed this check; {} task(s) not placed",
                f.instances, outcome.unplaced
            )),
        })
        .collect()
}

/// ECS reports a failed placement per container instance: why each instance (after this
/// request's placements) cannot take one more task. Asked of the scheduler one instance at a
/// time, for at most [`MAX_INSTANCE_FAILURES`] instances.
fn instance_failures(records: &[(InstanceRecord, i64)], req: &PlacementRequest) -> Vec<Failure> {
    let mut one = req.clone();
    one.count = 1;
    let mut out = Vec::new();
    for (rec, _) in records.iter().take(MAX_INSTANCE_FAILURES) {
        let view = ClusterView::from_specs([instance_spec(rec)]);
        let Ok(outcome) = berth_scheduler::place(&view, &one, 0) else {
            continue;
        };
        if let Some(f) = outcome.failures.first() {
            out.push(Failure::new(
                Some(rec.instance.container_instance_arn.clone()),
                f.reason.as_str(),
            ));
        }
    }
    out
}

/// Records which tasks a RunTask `clientToken` created.
fn put_idempotency(
    batch: &mut Batch,
    cluster: &str,
    token: &str,
    fingerprint: &str,
    tasks: &[TaskRecord],
) -> Result<(), EcsError> {
    let rec = IdempotencyRecord {
        fingerprint: fingerprint.to_owned(),
        task_ids: tasks.iter().map(|t| t.id.clone()).collect(),
    };
    batch.put(keys::idempotency(cluster, token), &rec, Some(0))
}

/// The working copy of the cached instance at `index` (cloned from the cache the first time).
fn working_copy<'a>(
    touched: &'a mut BTreeMap<usize, InstanceRecord>,
    cached: &[(InstanceRecord, i64)],
    index: usize,
) -> Option<&'a mut InstanceRecord> {
    match touched.entry(index) {
        std::collections::btree_map::Entry::Occupied(e) => Some(e.into_mut()),
        std::collections::btree_map::Entry::Vacant(e) => {
            let (rec, _) = cached.get(index)?;
            Some(e.insert(rec.clone()))
        }
    }
}

/// The most per-instance failures a RunTask reports.
const MAX_INSTANCE_FAILURES: usize = 100;

fn task_view(mut t: Task, tags: bool) -> Task {
    if !tags {
        t.tags = None;
    }
    t
}

impl Core {
    fn new_task_record(
        &self,
        ctx: &Ctx,
        n: &NewTasks,
        cluster: &Cluster,
        inst: &InstanceRecord,
        host_ports: Vec<HostPortRecord>,
        at: f64,
    ) -> TaskRecord {
        let id = crate::ids::task_id();
        let scope = self.scope(ctx);
        let task_arn = scope.task(&n.cluster, &id);
        let overrides = &n.overrides;
        let res = n.spec.reservation();
        let containers =
            n.td.task_definition
                .container_definitions
                .iter()
                .map(|c| {
                    let o = overrides
                        .container_overrides
                        .iter()
                        .find(|o| o.name == c.name);
                    Container {
                        container_arn: scope.container(&n.cluster, &id, &crate::ids::uuid()),
                        task_arn: task_arn.clone(),
                        name: c.name.clone().unwrap_or_default(),
                        image: c.image.clone().unwrap_or_default(),
                        last_status: "PENDING".into(),
                        health_status: Some("UNKNOWN".into()),
                        cpu: Some(o.and_then(|o| o.cpu).or(c.cpu).unwrap_or(0).to_string()),
                        memory: o.and_then(|o| o.memory).or(c.memory).map(|m| m.to_string()),
                        memory_reservation: o
                            .and_then(|o| o.memory_reservation)
                            .or(c.memory_reservation)
                            .map(|m| m.to_string()),
                        ..Container::default()
                    }
                })
                .collect();
        let az = inst
            .instance
            .attributes
            .iter()
            .find(|a| a.name == "ecs.availability-zone")
            .and_then(|a| a.value.clone());
        TaskRecord {
            id,
            cluster: n.cluster.clone(),
            family: n.td.task_definition.family.clone(),
            instance_id: Some(inst.id.clone()),
            cpu: res.cpu,
            memory: res.memory,
            host_ports,
            reported: false,
            task: Task {
                attachments: Vec::new(),
                attributes: None,
                availability_zone: az,
                cluster_arn: cluster.cluster_arn.clone(),
                // Set when the task starts running (counts::transition).
                connectivity: None,
                connectivity_at: None,
                container_instance_arn: Some(inst.instance.container_instance_arn.clone()),
                containers,
                cpu: Some(res.cpu.to_string()),
                created_at: at,
                desired_status: "RUNNING".into(),
                enable_execute_command: n.enable_execute_command,
                group: Some(n.group.clone()),
                health_status: Some("UNKNOWN".into()),
                last_status: "PENDING".into(),
                launch_type: n.launch_type.clone(),
                memory: Some(res.memory.to_string()),
                overrides: overrides.clone(),
                started_by: n.started_by.clone(),
                tags: Some(n.tags.clone()),
                task_arn,
                task_definition_arn: n.td.task_definition.task_definition_arn.clone(),
                version: 1,
                ..Task::default()
            },
        }
    }

    /// Places and writes new tasks (RunTask, StartTask).
    ///
    /// Pipelined: under the cluster's lock it places on the cached cluster state (the records
    /// as they will be once the writes already submitted commit), submits one transaction that
    /// compares the versions of the cluster and instance records it changes, updates the cache
    /// and releases the lock before the commit's answer, so the writes of concurrent requests
    /// share the store's commits. A write that fails (its compares saw something else) drops
    /// the cache; the request then starts again from the store.
    async fn create_tasks(
        &self,
        ctx: &Ctx,
        n: NewTasks,
        target: Target,
        idempotency: Option<(String, String)>,
    ) -> Result<TasksResponse, EcsError> {
        for _ in 0..CAS_ATTEMPTS {
            let mut slot = self.lock_raw(&n.cluster).await;
            if let Some((token, fingerprint)) = &idempotency {
                // The token's record must be visible: no pipelining for clientToken calls.
                slot.settle().await;
                if let Some(r) = self.replay(ctx, &n.cluster, token, fingerprint).await? {
                    return Ok(r);
                }
            }
            if slot.cache.is_none() {
                slot.settle().await;
                slot.cache = Some(self.load_cluster_cache(&n.cluster).await?);
            }
            let Some(cache) = slot.cache.as_mut() else {
                return Err(EcsError::server("cluster cache missing"));
            };
            let mut cluster = cache.cluster.clone();
            // Working copies of the instances this request places on (index into the cache),
            // so a request clones only what it changes.
            let mut touched: BTreeMap<usize, InstanceRecord> = BTreeMap::new();
            let at = now();
            let mut tasks: Vec<TaskRecord> = Vec::new();
            let mut failures = Vec::new();
            match &target {
                Target::Place(req) => {
                    if cache.instances.is_empty() {
                        // ECS answers with an exception here, not with failures.
                        return Err(EcsError::invalid(
                            "No Container Instances were found in your cluster.",
                        ));
                    }
                    let view = ClusterView::from_specs(
                        cache.instances.iter().map(|(r, _)| instance_spec(r)),
                    );
                    let outcome = berth_scheduler::place(&view, req, crate::ids::seed())?;
                    for p in &outcome.placements {
                        let Some(inst) = working_copy(&mut touched, &cache.instances, p.instance)
                        else {
                            return Err(EcsError::server("placement on an unknown instance"));
                        };
                        let ports = host_ports(&n, &p.host_ports);
                        let t = self.new_task_record(ctx, &n, &cluster, inst, ports, at);
                        reserve(inst, &mut cluster, &t);
                        tasks.push(t);
                    }
                    if outcome.unplaced > 0 {
                        let after: Vec<(InstanceRecord, i64)> = cache
                            .instances
                            .iter()
                            .enumerate()
                            .map(|(i, (r, v))| (touched.get(&i).unwrap_or(r).clone(), *v))
                            .collect();
                        failures = instance_failures(&after, req);
                        if failures.is_empty() {
                            failures = failures_of(&outcome, &cluster.cluster_arn);
                        }
                    }
                }
                Target::Instances(ids) => {
                    for id in ids {
                        let Some(i) = cache.instances.iter().position(|(r, _)| &r.id == id) else {
                            let arn = self.scope(ctx).container_instance(&n.cluster, id);
                            failures.push(Failure::missing(arn));
                            continue;
                        };
                        let Some(inst) = working_copy(&mut touched, &cache.instances, i) else {
                            return Err(EcsError::server("cluster cache missing an instance"));
                        };
                        let view = ClusterView::from_specs([instance_spec(inst)]);
                        let req = PlacementRequest::new(n.spec.clone(), 1, n.group.clone());
                        let outcome = berth_scheduler::place(&view, &req, crate::ids::seed())?;
                        match outcome.placements.first() {
                            Some(p) => {
                                let ports = host_ports(&n, &p.host_ports);
                                let t = self.new_task_record(ctx, &n, &cluster, inst, ports, at);
                                reserve(inst, &mut cluster, &t);
                                tasks.push(t);
                            }
                            None => {
                                let reason = outcome
                                    .failures
                                    .first()
                                    .map_or("RESOURCE", |f| f.reason.as_str());
                                let arn = inst.instance.container_instance_arn.clone();
                                failures.push(Failure::new(Some(arn), reason));
                            }
                        }
                    }
                }
            }
            if tasks.is_empty() && idempotency.is_none() {
                return Ok(TasksResponse {
                    tasks: Vec::new(),
                    failures,
                });
            }
            let mut batch = Batch::new();
            if !tasks.is_empty() {
                batch.put_at_version(keys::cluster(&n.cluster), &cluster, cache.cluster_version)?;
                let mut changed = Vec::with_capacity(touched.len());
                for (i, rec) in touched {
                    let Some((_, version)) = cache.instances.get(i) else {
                        return Err(EcsError::server("cluster cache missing an instance"));
                    };
                    batch.put_at_version(keys::instance(&n.cluster, &rec.id), &rec, *version)?;
                    changed.push((i, rec, *version + 1));
                }
                for t in &tasks {
                    batch.put(keys::task(&n.cluster, &t.id), t, Some(0))?;
                    if let Some(i) = &t.instance_id {
                        batch.put(keys::assignment(i, &t.id), &AssignmentRecord::of(t), None)?;
                    }
                }
                if let Some((token, fingerprint)) = &idempotency {
                    put_idempotency(&mut batch, &n.cluster, token, fingerprint, &tasks)?;
                }
                // Only now, with nothing left that can fail before the submission: the cache
                // becomes the records as they will be after this write.
                cache.cluster = cluster;
                cache.cluster_version += 1;
                for (i, rec, version) in changed {
                    if let Some(slot_rec) = cache.instances.get_mut(i) {
                        *slot_rec = (rec, version);
                    }
                }
            } else if let Some((token, fingerprint)) = &idempotency {
                put_idempotency(&mut batch, &n.cluster, token, fingerprint, &tasks)?;
            }
            // Submit under the lock (the store takes writes in submission order), then let the
            // next request in while this one waits for its commit.
            let mut commit = std::pin::pin!(self.store.txn(batch.into_txn()));
            let first = futures_util::poll!(commit.as_mut());
            let done = slot.pipelined();
            drop(slot);
            let result = match first {
                std::task::Poll::Ready(r) => r,
                std::task::Poll::Pending => commit.await,
            };
            let _ = done.send(());
            match result {
                Ok(r) if r.succeeded => {
                    return Ok(TasksResponse {
                        tasks: tasks.into_iter().map(|t| t.task).collect(),
                        failures,
                    })
                }
                Ok(_) => {
                    self.lock_raw(&n.cluster).await.cache = None;
                }
                Err(e) => {
                    self.lock_raw(&n.cluster).await.cache = None;
                    return Err(crate::core::store_err(e));
                }
            }
        }
        Err(contention())
    }

    /// The response of an earlier RunTask with the same clientToken.
    async fn replay(
        &self,
        ctx: &Ctx,
        cluster: &str,
        token: &str,
        fingerprint: &str,
    ) -> Result<Option<TasksResponse>, EcsError> {
        let Some((rec, _)) = self
            .get::<IdempotencyRecord>(&keys::idempotency(cluster, token))
            .await?
        else {
            return Ok(None);
        };
        if rec.fingerprint != fingerprint {
            return Err(EcsError::Conflict(format!(
                "clientToken `{token}` was already used with different parameters"
            )));
        }
        let kvs = self
            .get_many(
                rec.task_ids
                    .iter()
                    .map(|id| keys::task(cluster, id))
                    .collect(),
            )
            .await?;
        let mut tasks = Vec::new();
        let mut failures = Vec::new();
        for (id, kv) in rec.task_ids.iter().zip(kvs) {
            match kv {
                Some(kv) => tasks.push(decode::<TaskRecord>(&kv)?.task),
                None => failures.push(Failure::missing(self.scope(ctx).task(cluster, id))),
            }
        }
        Ok(Some(TasksResponse { tasks, failures }))
    }

    async fn prepare(
        &self,
        cluster: &str,
        task_definition: &str,
        overrides: Option<TaskOverride>,
        group: Option<String>,
    ) -> Result<(TaskDefRecord, TaskSpec, TaskOverride, String), EcsError> {
        validate::name("cluster", cluster)?;
        let (td, _) = self.find_task_definition(task_definition).await?;
        if td.task_definition.status != "ACTIVE" {
            return Err(EcsError::client(format!(
                "task definition {} is {}: register a new revision to run it",
                td.task_definition.task_definition_arn, td.task_definition.status
            )));
        }
        let spec = task_spec(&td.task_definition, &overrides.clone().unwrap_or_default())?;
        let overrides = filled_overrides(&td, overrides);
        let group = group.unwrap_or_else(|| format!("family:{}", td.task_definition.family));
        Ok((td, spec, overrides, group))
    }

    pub async fn run_task(
        &self,
        ctx: &Ctx,
        req: RunTaskRequest,
    ) -> Result<TasksResponse, EcsError> {
        let count = validate::run_task_count(req.count)?;
        let cluster = cluster_name(req.cluster.as_deref())?;
        check_common(
            req.group.as_deref(),
            req.started_by.as_deref(),
            req.tags.as_deref(),
        )?;
        if req.launch_type.is_some() && req.capacity_provider_strategy.is_some() {
            return Err(EcsError::invalid(
                "specify either launchType or capacityProviderStrategy, not both",
            ));
        }
        let launch_type = req.launch_type.clone().unwrap_or_else(|| "EC2".into());
        validate::one_of("launchType", &launch_type, LAUNCH_TYPES)?;
        if launch_type == "FARGATE" || launch_type == "MANAGED_INSTANCES" {
            return Err(EcsError::UnsupportedFeature(format!(
                "launch type {launch_type} is not supported: berth runs tasks on registered container instances (EC2 or EXTERNAL)"
            )));
        }
        if let Some(t) = &req.client_token {
            if t.is_empty() || t.len() > 64 || !t.is_ascii() {
                return Err(EcsError::invalid(
                    "clientToken must be 1 to 64 ASCII characters",
                ));
            }
        }
        let strategy = strategies(req.placement_strategy.as_deref().unwrap_or(&[]))?;
        let (td, spec, overrides, group) = self
            .prepare(
                &cluster,
                &req.task_definition,
                req.overrides.clone(),
                req.group.clone(),
            )
            .await?;
        let constraints = constraints(
            &td.task_definition,
            req.placement_constraints.as_deref().unwrap_or(&[]),
        )?;
        let mut preq = PlacementRequest::new(spec.clone(), count, group.clone());
        preq.constraints = constraints;
        preq.strategy = strategy;
        let idempotency = req.client_token.clone().map(|t| {
            let fp = format!(
                "{}|{count}|{group}|{}",
                td.task_definition.task_definition_arn,
                req.started_by.as_deref().unwrap_or("")
            );
            (t, fp)
        });
        let n = NewTasks {
            cluster,
            td,
            spec,
            overrides,
            group,
            started_by: req.started_by,
            tags: req.tags.unwrap_or_default(),
            launch_type,
            enable_execute_command: req.enable_execute_command.unwrap_or(false),
        };
        self.create_tasks(ctx, n, Target::Place(preq), idempotency)
            .await
    }

    pub async fn start_task(
        &self,
        ctx: &Ctx,
        req: StartTaskRequest,
    ) -> Result<TasksResponse, EcsError> {
        let cluster = cluster_name(req.cluster.as_deref())?;
        validate::batch(
            "containerInstances",
            req.container_instances.len(),
            1,
            validate::MAX_START_TASK_INSTANCES,
        )?;
        check_common(
            req.group.as_deref(),
            req.started_by.as_deref(),
            req.tags.as_deref(),
        )?;
        let ids = req
            .container_instances
            .iter()
            .map(|r| container_instance_id(r, &cluster))
            .collect::<Result<Vec<_>, _>>()?;
        let (td, spec, overrides, group) = self
            .prepare(
                &cluster,
                &req.task_definition,
                req.overrides.clone(),
                req.group.clone(),
            )
            .await?;
        let n = NewTasks {
            cluster,
            td,
            spec,
            overrides,
            group,
            started_by: req.started_by,
            tags: req.tags.unwrap_or_default(),
            launch_type: "EC2".into(),
            enable_execute_command: req.enable_execute_command.unwrap_or(false),
        };
        self.create_tasks(ctx, n, Target::Instances(ids), None)
            .await
    }

    pub async fn stop_task(
        &self,
        _ctx: &Ctx,
        req: StopTaskRequest,
    ) -> Result<StopTaskResponse, EcsError> {
        let cluster = cluster_name(req.cluster.as_deref())?;
        let id = task_id(&req.task, &cluster)?;
        if req.reason.as_deref().is_some_and(|r| r.len() > 255) {
            return Err(EcsError::invalid("reason must be at most 255 characters"));
        }
        let key = keys::task(&cluster, &id);
        let _guard = self.lock(&cluster).await;
        for _ in 0..CAS_ATTEMPTS {
            let (mut c, crev) = self.active_cluster(&cluster).await?;
            let Some((mut t, trev)) = self.get::<TaskRecord>(&key).await? else {
                return Err(EcsError::invalid("The referenced task was not found."));
            };
            if Phase::of(&t.task.last_status) == Phase::Stopped
                || t.task.desired_status == "STOPPED"
            {
                return Ok(StopTaskResponse { task: t.task });
            }
            let at = now();
            t.task.desired_status = "STOPPED".into();
            t.task.stop_code = Some("UserInitiated".into());
            t.task.stopped_reason = Some(
                req.reason
                    .clone()
                    .unwrap_or_else(|| "Task stopped by user".into()),
            );
            t.task.stopping_at = Some(at);
            t.task.version += 1;
            let mut batch = Batch::new();
            let akey = t.instance_id.as_deref().map(|i| keys::assignment(i, &id));
            let agent_listening = t
                .instance_id
                .as_deref()
                .is_some_and(|i| self.presence.open_channels(i) > 0);
            if !t.reported && !agent_listening {
                // No agent ever reported on the task and none is listening for it: nothing
                // runs, so it stops now. Otherwise the agent gets the new desiredStatus from
                // the assignment and reports STOPPED once the task's containers are down.
                let ikey = t
                    .instance_id
                    .as_deref()
                    .map(|i| keys::instance(&cluster, i));
                let mut inst = match &ikey {
                    Some(k) => self.get::<InstanceRecord>(k).await?,
                    None => None,
                };
                transition(&mut t, "STOPPED", &mut c, inst.as_mut().map(|(r, _)| r), at);
                if let (Some(k), Some((r, rev))) = (ikey, &inst) {
                    batch.put(k, r, Some(*rev))?;
                }
                batch.put(keys::cluster(&cluster), &c, Some(crev))?;
                if let Some(a) = akey {
                    batch.delete(a);
                }
            } else if let Some(a) = akey {
                batch.put(a, &AssignmentRecord::of(&t), None)?;
            }
            batch.put(key.clone(), &t, Some(trev))?;
            if self.commit(batch).await? {
                return Ok(StopTaskResponse { task: t.task });
            }
        }
        Err(contention())
    }

    pub async fn describe_tasks(
        &self,
        ctx: &Ctx,
        req: DescribeTasksRequest,
    ) -> Result<TasksResponse, EcsError> {
        let cluster = cluster_name(req.cluster.as_deref())?;
        validate::batch("tasks", req.tasks.len(), 1, validate::MAX_DESCRIBE_TASKS)?;
        let mut tags = false;
        for i in req.include.iter().flatten() {
            validate::one_of("include value", i, &["TAGS"])?;
            tags = true;
        }
        let ids = req
            .tasks
            .iter()
            .map(|r| task_id(r, &cluster))
            .collect::<Result<Vec<_>, _>>()?;
        let mut keys_ = Vec::with_capacity(ids.len() + 1);
        keys_.push(keys::cluster(&cluster));
        keys_.extend(ids.iter().map(|id| keys::task(&cluster, id)));
        let mut kvs = self.get_many(keys_).await?.into_iter();
        match kvs.next().flatten() {
            Some(kv) if decode::<Cluster>(&kv)?.status == "ACTIVE" => {}
            _ => return Err(EcsError::cluster_not_found()),
        }
        let mut tasks = Vec::with_capacity(ids.len());
        let mut failures = Vec::new();
        for (id, kv) in ids.iter().zip(kvs) {
            match kv {
                Some(kv) => tasks.push(task_view(decode::<TaskRecord>(&kv)?.task, tags)),
                None => failures.push(Failure::missing(self.scope(ctx).task(&cluster, id))),
            }
        }
        Ok(TasksResponse { tasks, failures })
    }

    pub async fn list_tasks(
        &self,
        _ctx: &Ctx,
        req: ListTasksRequest,
    ) -> Result<ListTasksResponse, EcsError> {
        let cluster = cluster_name(req.cluster.as_deref())?;
        let limit = paging::max_results(req.max_results, 100, 100)?;
        let desired = req
            .desired_status
            .clone()
            .unwrap_or_else(|| "RUNNING".into());
        validate::one_of("desiredStatus", &desired, DESIRED)?;
        if let Some(l) = &req.launch_type {
            validate::one_of("launchType", l, LAUNCH_TYPES)?;
        }
        if req.family.is_some() && req.service_name.is_some() {
            return Err(EcsError::invalid(
                "family and serviceName cannot be used together",
            ));
        }
        let instance = req
            .container_instance
            .as_deref()
            .map(|i| container_instance_id(i, &cluster))
            .transpose()?;
        self.active_cluster(&cluster).await?;
        let service_group = req.service_name.as_ref().map(|s| format!("service:{s}"));
        let keep = |t: &TaskRecord| -> bool {
            t.task.desired_status == desired
                && instance
                    .as_ref()
                    .is_none_or(|i| t.instance_id.as_ref() == Some(i))
                && req.family.as_ref().is_none_or(|f| &t.family == f)
                && req
                    .started_by
                    .as_ref()
                    .is_none_or(|s| t.task.started_by.as_ref() == Some(s))
                && service_group
                    .as_ref()
                    .is_none_or(|g| t.task.group.as_ref() == Some(g))
                && req
                    .launch_type
                    .as_ref()
                    .is_none_or(|l| &t.task.launch_type == l)
        };
        match (&instance, desired.as_str()) {
            // Tasks of one instance that are not STOPPED: its assignments are the index.
            (Some(i), "RUNNING" | "PENDING") => {
                let ids: Vec<String> = self
                    .range_all(&keys::assignments_of(i))
                    .await?
                    .iter()
                    .map(|kv| keys::last_segment(&kv.key).to_owned())
                    .collect();
                let mut task_keys: Vec<String> =
                    ids.iter().map(|id| keys::task(&cluster, id)).collect();
                task_keys.sort();
                let after = req
                    .next_token
                    .as_deref()
                    .map(paging::decode_token)
                    .transpose()?;
                task_keys.retain(|k| after.as_ref().is_none_or(|a| k > a));
                let kvs: Vec<KeyValue> = self
                    .get_many(task_keys)
                    .await?
                    .into_iter()
                    .flatten()
                    .collect();
                let mut out: Vec<(String, String)> = Vec::new();
                for kv in &kvs {
                    let t: TaskRecord = decode(kv)?;
                    if keep(&t) {
                        out.push((kv.key.clone(), t.task.task_arn));
                    }
                }
                let more = out.len() > limit;
                out.truncate(limit);
                let next_token = more
                    .then(|| out.last().map(|(k, _)| paging::encode_token(k)))
                    .flatten();
                Ok(ListTasksResponse {
                    task_arns: out.into_iter().map(|(_, a)| a).collect(),
                    next_token,
                })
            }
            _ => {
                let (task_arns, next_token) = self
                    .scan(
                        &keys::tasks_of(&cluster),
                        req.next_token.as_deref(),
                        limit,
                        |kv| {
                            let t: TaskRecord = decode(kv)?;
                            Ok(keep(&t).then_some(t.task.task_arn))
                        },
                    )
                    .await?;
                Ok(ListTasksResponse {
                    task_arns,
                    next_token,
                })
            }
        }
    }
}

fn host_ports(n: &NewTasks, ports: &[berth_scheduler::HostPort]) -> Vec<HostPortRecord> {
    let names: HashMap<usize, &str> = n
        .spec
        .containers
        .iter()
        .enumerate()
        .map(|(i, c)| (i, c.name.as_str()))
        .collect();
    ports
        .iter()
        .map(|p| HostPortRecord {
            container_name: names
                .get(&usize::from(p.container))
                .copied()
                .unwrap_or("")
                .to_owned(),
            container_port: p.container_port,
            host_port: p.host_port,
            protocol: match p.protocol {
                Protocol::Udp => "udp".into(),
                Protocol::Tcp => "tcp".into(),
            },
        })
        .collect()
}
