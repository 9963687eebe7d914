//! RegisterContainerInstance, DeregisterContainerInstance, DescribeContainerInstances,
//! ListContainerInstances, UpdateContainerInstancesState.

use std::collections::BTreeMap;

use berth_api::shapes::{
    Attribute, ContainerInstance, ContainerInstanceResponse, ContainerInstancesResponse,
    DeregisterContainerInstanceRequest, DescribeContainerInstancesRequest, Failure,
    ListContainerInstancesRequest, ListContainerInstancesResponse,
    RegisterContainerInstanceRequest, ResourceAmount, UpdateContainerInstancesStateRequest,
    VersionInfo,
};
use berth_api::{cluster_name, container_instance_id, paging, validate, EcsError};
use berth_scheduler::DEFAULT_RESERVED_PORTS;

use crate::core::{contention, decode, now, Batch, Core, Ctx, CAS_ATTEMPTS};
use crate::counts::transition;
use crate::keys;
use crate::records::{InstanceRecord, TaskRecord};

const STATUSES: &[&str] = &[
    "ACTIVE",
    "DRAINING",
    "REGISTERING",
    "DEREGISTERING",
    "REGISTRATION_FAILED",
];

fn ports(r: &ResourceAmount) -> Result<Vec<u16>, EcsError> {
    r.string_set_value
        .iter()
        .flatten()
        .map(|p| {
            p.trim().parse::<u16>().map_err(|_| {
                EcsError::invalid(format!(
                    "invalid port `{p}` in resource {}",
                    r.name.as_deref().unwrap_or("")
                ))
            })
        })
        .collect()
}

/// (cpu, memory, tcp ports, udp ports) from `totalResources`.
fn resources(total: &[ResourceAmount]) -> Result<(u32, u32, Vec<u16>, Vec<u16>), EcsError> {
    let mut cpu = 1024;
    let mut memory = 2048;
    let mut tcp = DEFAULT_RESERVED_PORTS.to_vec();
    let mut udp = Vec::new();
    for r in total {
        let amount = || {
            u32::try_from(r.amount()).map_err(|_| {
                EcsError::invalid(format!(
                    "invalid amount {} for resource {}",
                    r.amount(),
                    r.name.as_deref().unwrap_or("")
                ))
            })
        };
        match r.name.as_deref() {
            Some("CPU") => cpu = amount()?,
            Some("MEMORY") => memory = amount()?,
            Some("PORTS") => tcp = ports(r)?,
            Some("PORTS_UDP") => udp = ports(r)?,
            _ => {}
        }
    }
    tcp.sort_unstable();
    tcp.dedup();
    udp.sort_unstable();
    udp.dedup();
    Ok((cpu, memory, tcp, udp))
}

fn set_attribute(attrs: &mut Vec<Attribute>, name: &str, value: Option<&str>) {
    match attrs.iter_mut().find(|a| a.name == name) {
        Some(a) => a.value = value.map(str::to_owned),
        None => attrs.push(Attribute::new(name, value)),
    }
}

/// The instance as Describe shows it.
pub fn instance_view(mut i: ContainerInstance, tags: bool) -> ContainerInstance {
    if !tags {
        i.tags = None;
    } else if i.tags.is_none() {
        i.tags = Some(Vec::new());
    }
    i
}

impl Core {
    pub async fn register_container_instance(
        &self,
        ctx: &Ctx,
        req: RegisterContainerInstanceRequest,
    ) -> Result<ContainerInstanceResponse, EcsError> {
        let cluster = cluster_name(req.cluster.as_deref())?;
        if let Some(t) = &req.tags {
            validate::tags(t)?;
        }
        let (cpu, memory, tcp, udp) = resources(req.total_resources.as_deref().unwrap_or(&[]))?;
        let doc: serde_json::Value = req
            .instance_identity_document
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok())
            .unwrap_or_default();
        let doc_str = |k: &str| doc.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        let given_id = req
            .container_instance_arn
            .as_deref()
            .map(|a| container_instance_id(a, &cluster))
            .transpose()?;
        let _guard = self.lock(&cluster).await;
        for _ in 0..CAS_ATTEMPTS {
            let (mut c, crev) = self.active_cluster(&cluster).await?;
            let id = given_id.clone().unwrap_or_else(crate::ids::hex_id);
            let key = keys::instance(&cluster, &id);
            let existing = match &given_id {
                Some(_) => self.get::<InstanceRecord>(&key).await?,
                None => None,
            };
            let mut batch = Batch::new();
            let rec = match existing {
                // Re-registration by the agent: new resources and attributes, same identity.
                Some((mut rec, rev)) => {
                    let was_registered = rec.registered();
                    let used_cpu = rec.registered_cpu.saturating_sub(rec.remaining_cpu);
                    let used_mem = rec.registered_memory.saturating_sub(rec.remaining_memory);
                    rec.registered_cpu = cpu;
                    rec.registered_memory = memory;
                    rec.remaining_cpu = cpu.saturating_sub(used_cpu);
                    rec.remaining_memory = memory.saturating_sub(used_mem);
                    rec.reserved_tcp = tcp.clone();
                    rec.reserved_udp = udp.clone();
                    rec.instance.registered_resources = vec![
                        ResourceAmount::integer("CPU", i64::from(cpu)),
                        ResourceAmount::integer("MEMORY", i64::from(memory)),
                        ResourceAmount::string_set(
                            "PORTS",
                            tcp.iter().map(u16::to_string).collect(),
                        ),
                        ResourceAmount::string_set(
                            "PORTS_UDP",
                            udp.iter().map(u16::to_string).collect(),
                        ),
                    ];
                    for a in req.attributes.iter().flatten() {
                        set_attribute(&mut rec.instance.attributes, &a.name, a.value.as_deref());
                    }
                    if let Some(v) = &req.version_info {
                        rec.instance.version_info = Some(v.clone());
                    }
                    rec.instance.agent_connected = true;
                    if !was_registered {
                        rec.instance.status = "ACTIVE".into();
                        c.registered_container_instances_count += 1;
                        batch.put(keys::cluster(&cluster), &c, Some(crev))?;
                    }
                    rec.sync();
                    batch.put(key.clone(), &rec, Some(rev))?;
                    rec
                }
                None => {
                    let mut attributes = Vec::new();
                    set_attribute(&mut attributes, "ecs.os-type", Some("linux"));
                    let arch = match std::env::consts::ARCH {
                        "aarch64" => "arm64",
                        _ => "x86_64",
                    };
                    set_attribute(&mut attributes, "ecs.cpu-architecture", Some(arch));
                    if let Some(az) = doc_str("availabilityZone") {
                        set_attribute(&mut attributes, "ecs.availability-zone", Some(&az));
                    }
                    if let Some(t) = doc_str("instanceType") {
                        set_attribute(&mut attributes, "ecs.instance-type", Some(&t));
                    }
                    for a in req.attributes.iter().flatten() {
                        set_attribute(&mut attributes, &a.name, a.value.as_deref());
                    }
                    let instance = ContainerInstance {
                        container_instance_arn: self.scope(ctx).container_instance(&cluster, &id),
                        ec2_instance_id: doc_str("instanceId")
                            .unwrap_or_else(crate::ids::ec2_instance_id),
                        version: 0,
                        version_info: Some(req.version_info.clone().unwrap_or(VersionInfo {
                            agent_version: Some("1.0.0".into()),
                            agent_hash: None,
                            docker_version: None,
                        })),
                        remaining_resources: Vec::new(),
                        registered_resources: vec![
                            ResourceAmount::integer("CPU", i64::from(cpu)),
                            ResourceAmount::integer("MEMORY", i64::from(memory)),
                            ResourceAmount::string_set(
                                "PORTS",
                                tcp.iter().map(u16::to_string).collect(),
                            ),
                            ResourceAmount::string_set(
                                "PORTS_UDP",
                                udp.iter().map(u16::to_string).collect(),
                            ),
                        ],
                        status: "ACTIVE".into(),
                        status_reason: None,
                        agent_connected: true,
                        running_tasks_count: 0,
                        pending_tasks_count: 0,
                        attributes,
                        registered_at: now(),
                        attachments: Vec::new(),
                        tags: Some(req.tags.clone().unwrap_or_default()),
                    };
                    let mut rec = InstanceRecord {
                        id: id.clone(),
                        cluster: cluster.clone(),
                        instance,
                        registered_cpu: cpu,
                        registered_memory: memory,
                        remaining_cpu: cpu,
                        remaining_memory: memory,
                        reserved_tcp: tcp.clone(),
                        reserved_udp: udp.clone(),
                        used_tcp: Vec::new(),
                        used_udp: Vec::new(),
                        groups: BTreeMap::new(),
                        agent_channel: false,
                    };
                    rec.sync();
                    c.registered_container_instances_count += 1;
                    batch.put(keys::cluster(&cluster), &c, Some(crev))?;
                    batch.put(key.clone(), &rec, Some(0))?;
                    rec
                }
            };
            if self.commit(batch).await? {
                return Ok(ContainerInstanceResponse {
                    container_instance: instance_view(rec.instance, true),
                });
            }
        }
        Err(contention())
    }

    pub async fn deregister_container_instance(
        &self,
        _ctx: &Ctx,
        req: DeregisterContainerInstanceRequest,
    ) -> Result<ContainerInstanceResponse, EcsError> {
        let cluster = cluster_name(req.cluster.as_deref())?;
        let id = container_instance_id(&req.container_instance, &cluster)?;
        let key = keys::instance(&cluster, &id);
        let _guard = self.lock(&cluster).await;
        for _ in 0..CAS_ATTEMPTS {
            let (mut c, crev) = self.active_cluster(&cluster).await?;
            let Some((mut rec, rev)) = self.get::<InstanceRecord>(&key).await? else {
                return Err(EcsError::invalid(format!(
                    "container instance `{}` not found in cluster `{cluster}`",
                    req.container_instance
                )));
            };
            if !rec.registered() {
                return Ok(ContainerInstanceResponse {
                    container_instance: instance_view(rec.instance, false),
                });
            }
            let active_tasks = rec.instance.running_tasks_count + rec.instance.pending_tasks_count;
            if active_tasks > 0 && !req.force.unwrap_or(false) {
                return Err(EcsError::invalid(format!(
                    "container instance `{id}` has {active_tasks} tasks that are not stopped: stop them first or pass force"
                )));
            }
            let mut batch = Batch::new();
            // With force, the instance's tasks stop with it (nothing will run or report them).
            let t = now();
            for kv in self.range_all(&keys::assignments_of(&id)).await? {
                let task_id = keys::last_segment(&kv.key).to_owned();
                let tkey = keys::task(&cluster, &task_id);
                if let Some((mut task, trev)) = self.get::<TaskRecord>(&tkey).await? {
                    task.task
                        .stopped_reason
                        .get_or_insert_with(|| "Container instance deregistered".to_owned());
                    if transition(&mut task, "STOPPED", &mut c, Some(&mut rec), t) {
                        batch.put(tkey, &task, Some(trev))?;
                    }
                }
                batch.delete(kv.key.clone());
            }
            rec.instance.status = "INACTIVE".into();
            rec.instance.agent_connected = false;
            rec.sync();
            c.registered_container_instances_count =
                (c.registered_container_instances_count - 1).max(0);
            batch.put(key.clone(), &rec, Some(rev))?;
            batch.put(keys::cluster(&cluster), &c, Some(crev))?;
            if self.commit(batch).await? {
                return Ok(ContainerInstanceResponse {
                    container_instance: instance_view(rec.instance, false),
                });
            }
        }
        Err(contention())
    }

    pub async fn describe_container_instances(
        &self,
        ctx: &Ctx,
        req: DescribeContainerInstancesRequest,
    ) -> Result<ContainerInstancesResponse, EcsError> {
        let cluster = cluster_name(req.cluster.as_deref())?;
        validate::batch(
            "containerInstances",
            req.container_instances.len(),
            1,
            validate::MAX_DESCRIBE_INSTANCES,
        )?;
        let include = req.include.unwrap_or_default();
        for i in &include {
            validate::one_of("include value", i, &["TAGS", "CONTAINER_INSTANCE_HEALTH"])?;
        }
        let tags = include.iter().any(|i| i == "TAGS");
        let ids = req
            .container_instances
            .iter()
            .map(|r| container_instance_id(r, &cluster))
            .collect::<Result<Vec<_>, _>>()?;
        let mut keys_ = vec![keys::cluster(&cluster)];
        keys_.extend(ids.iter().map(|id| keys::instance(&cluster, id)));
        let mut kvs = self.get_many(keys_).await?.into_iter();
        match kvs.next().flatten() {
            Some(kv) if decode::<berth_api::shapes::Cluster>(&kv)?.status == "ACTIVE" => {}
            _ => return Err(EcsError::cluster_not_found()),
        }
        let mut container_instances = Vec::new();
        let mut failures = Vec::new();
        for (id, kv) in ids.iter().zip(kvs) {
            match kv {
                Some(kv) => {
                    let rec: InstanceRecord = decode(&kv)?;
                    container_instances.push(instance_view(rec.instance, tags));
                }
                None => failures.push(Failure::missing(
                    self.scope(ctx).container_instance(&cluster, id),
                )),
            }
        }
        Ok(ContainerInstancesResponse {
            container_instances,
            failures,
        })
    }

    pub async fn list_container_instances(
        &self,
        _ctx: &Ctx,
        req: ListContainerInstancesRequest,
    ) -> Result<ListContainerInstancesResponse, EcsError> {
        let cluster = cluster_name(req.cluster.as_deref())?;
        let limit = paging::max_results(req.max_results, 100, 100)?;
        if let Some(s) = &req.status {
            validate::one_of("status", s, STATUSES)?;
        }
        let filter = req
            .filter
            .as_deref()
            .filter(|f| !f.trim().is_empty())
            .map(crate::filter::parse)
            .transpose()?;
        self.active_cluster(&cluster).await?;
        let (container_instance_arns, next_token) = self
            .scan(
                &keys::instances_of(&cluster),
                req.next_token.as_deref(),
                limit,
                |kv| {
                    let rec: InstanceRecord = decode(kv)?;
                    let status_ok = match &req.status {
                        Some(s) => &rec.instance.status == s,
                        None => rec.registered(),
                    };
                    let filter_ok = filter
                        .as_ref()
                        .is_none_or(|f| crate::filter::matches(f, &rec));
                    Ok((status_ok && filter_ok).then_some(rec.instance.container_instance_arn))
                },
            )
            .await?;
        Ok(ListContainerInstancesResponse {
            container_instance_arns,
            next_token,
        })
    }

    pub async fn update_container_instances_state(
        &self,
        ctx: &Ctx,
        req: UpdateContainerInstancesStateRequest,
    ) -> Result<ContainerInstancesResponse, EcsError> {
        let cluster = cluster_name(req.cluster.as_deref())?;
        validate::one_of("status", &req.status, &["ACTIVE", "DRAINING"])?;
        validate::batch(
            "containerInstances",
            req.container_instances.len(),
            1,
            validate::MAX_DESCRIBE_INSTANCES,
        )?;
        let ids = req
            .container_instances
            .iter()
            .map(|r| container_instance_id(r, &cluster))
            .collect::<Result<Vec<_>, _>>()?;
        let _guard = self.lock(&cluster).await;
        for _ in 0..CAS_ATTEMPTS {
            self.active_cluster(&cluster).await?;
            let kvs = self
                .get_many(ids.iter().map(|id| keys::instance(&cluster, id)).collect())
                .await?;
            let mut batch = Batch::new();
            let mut container_instances = Vec::new();
            let mut failures = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for (id, kv) in ids.iter().zip(kvs) {
                let arn = self.scope(ctx).container_instance(&cluster, id);
                let Some(kv) = kv else {
                    failures.push(Failure::missing(arn));
                    continue;
                };
                if !seen.insert(id.clone()) {
                    continue;
                }
                let mut rec: InstanceRecord = decode(&kv)?;
                if !rec.registered() {
                    failures.push(Failure::new(Some(arn), "INACTIVE"));
                    continue;
                }
                if rec.instance.status != req.status {
                    rec.instance.status = req.status.clone();
                    rec.sync();
                    batch.put(kv.key.clone(), &rec, Some(kv.mod_revision))?;
                }
                container_instances.push(instance_view(rec.instance, false));
            }
            if self.commit(batch).await? {
                return Ok(ContainerInstancesResponse {
                    container_instances,
                    failures,
                });
            }
        }
        Err(contention())
    }
}
