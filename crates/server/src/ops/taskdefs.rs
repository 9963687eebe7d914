//! RegisterTaskDefinition, DescribeTaskDefinition, ListTaskDefinitions,
//! ListTaskDefinitionFamilies, DeregisterTaskDefinition, DeleteTaskDefinitions.

use berth_api::shapes::{
    DeleteTaskDefinitionsRequest, DeleteTaskDefinitionsResponse, DeregisterTaskDefinitionRequest,
    DescribeTaskDefinitionRequest, Failure, ListTaskDefinitionFamiliesRequest,
    ListTaskDefinitionFamiliesResponse, ListTaskDefinitionsRequest, ListTaskDefinitionsResponse,
    RegisterTaskDefinitionRequest, TaskDefinition, TaskDefinitionResponse,
};
use berth_api::{paging, validate, EcsError, TaskDefinitionRef};
use berth_store::Revision;

use crate::core::{contention, decode, now, Batch, Core, Ctx, CAS_ATTEMPTS};
use crate::keys;
use crate::records::{FamilyRecord, TaskDefRecord};

fn not_found() -> EcsError {
    EcsError::client("Unable to describe task definition.")
}

impl Core {
    /// Resolves a task definition reference (`family`: its latest ACTIVE revision).
    pub async fn find_task_definition(
        &self,
        reference: &str,
    ) -> Result<(TaskDefRecord, Revision), EcsError> {
        let r = TaskDefinitionRef::parse(reference)?;
        match r.revision {
            Some(rev) => self
                .get::<TaskDefRecord>(&keys::taskdef(&r.family, rev))
                .await?
                .ok_or_else(not_found),
            // The latest ACTIVE revision: walk down from the last one (usually it is ACTIVE).
            None => {
                let Some((fam, _)) = self.get::<FamilyRecord>(&keys::family(&r.family)).await?
                else {
                    return Err(not_found());
                };
                if fam.active == 0 {
                    return Err(not_found());
                }
                for rev in (1..=fam.last_revision).rev() {
                    if let Some((rec, mod_rev)) = self
                        .get::<TaskDefRecord>(&keys::taskdef(&r.family, rev))
                        .await?
                    {
                        if rec.task_definition.status == "ACTIVE" {
                            return Ok((rec, mod_rev));
                        }
                    }
                }
                Err(not_found())
            }
        }
    }

    pub async fn register_task_definition(
        &self,
        ctx: &Ctx,
        mut req: RegisterTaskDefinitionRequest,
    ) -> Result<TaskDefinitionResponse, EcsError> {
        validate::task_definition(&mut req)?;
        let family = req.family.clone();
        let _guard = self.lock(&format!("family:{family}")).await;
        let fkey = keys::family(&family);
        for _ in 0..CAS_ATTEMPTS {
            let (mut fam, frev) = match self.get::<FamilyRecord>(&fkey).await? {
                Some((f, r)) => (f, r),
                None => (FamilyRecord::default(), 0),
            };
            fam.last_revision += 1;
            fam.active += 1;
            let revision = fam.last_revision;
            let mut compatibilities = vec!["EXTERNAL".to_string(), "EC2".to_string()];
            if req.network_mode.as_deref() == Some("awsvpc")
                && req
                    .requires_compatibilities
                    .as_deref()
                    .unwrap_or(&[])
                    .iter()
                    .any(|c| c == "FARGATE")
            {
                compatibilities.push("FARGATE".into());
            }
            let td = TaskDefinition {
                task_definition_arn: self.scope(ctx).task_definition(&family, revision),
                container_definitions: req.container_definitions.clone(),
                family: family.clone(),
                task_role_arn: req.task_role_arn.clone(),
                execution_role_arn: req.execution_role_arn.clone(),
                network_mode: req.network_mode.clone(),
                revision,
                volumes: req.volumes.clone().unwrap_or_default(),
                status: "ACTIVE".into(),
                requires_attributes: Vec::new(),
                placement_constraints: req.placement_constraints.clone().unwrap_or_default(),
                compatibilities,
                runtime_platform: req.runtime_platform.clone(),
                requires_compatibilities: req.requires_compatibilities.clone(),
                cpu: req.cpu.clone(),
                memory: req.memory.clone(),
                inference_accelerators: req.inference_accelerators.clone(),
                pid_mode: req.pid_mode.clone(),
                ipc_mode: req.ipc_mode.clone(),
                proxy_configuration: req.proxy_configuration.clone(),
                registered_at: Some(now()),
                deregistered_at: None,
                delete_requested_at: None,
                registered_by: Some(format!("arn:aws:iam::{}:root", self.account)),
                ephemeral_storage: req.ephemeral_storage.clone(),
                enable_fault_injection: req.enable_fault_injection,
            };
            let tags = req.tags.clone().unwrap_or_default();
            let rec = TaskDefRecord {
                task_definition: td,
                tags: tags.clone(),
            };
            let mut batch = Batch::new();
            batch.put(fkey.clone(), &fam, Some(frev))?;
            batch.put(keys::taskdef(&family, revision), &rec, Some(0))?;
            if self.commit(batch).await? {
                return Ok(TaskDefinitionResponse {
                    task_definition: rec.task_definition,
                    tags: Some(tags),
                });
            }
        }
        Err(contention())
    }

    pub async fn describe_task_definition(
        &self,
        _ctx: &Ctx,
        req: DescribeTaskDefinitionRequest,
    ) -> Result<TaskDefinitionResponse, EcsError> {
        let include = req.include.unwrap_or_default();
        for i in &include {
            validate::one_of("include value", i, &["TAGS"])?;
        }
        let (rec, _) = self.find_task_definition(&req.task_definition).await?;
        let tags = include.iter().any(|i| i == "TAGS").then_some(rec.tags);
        Ok(TaskDefinitionResponse {
            task_definition: rec.task_definition,
            tags,
        })
    }

    pub async fn list_task_definitions(
        &self,
        _ctx: &Ctx,
        req: ListTaskDefinitionsRequest,
    ) -> Result<ListTaskDefinitionsResponse, EcsError> {
        let limit = paging::max_results(req.max_results, 100, 100)?;
        let status = req.status.unwrap_or_else(|| "ACTIVE".into());
        validate::one_of(
            "status",
            &status,
            &["ACTIVE", "INACTIVE", "DELETE_IN_PROGRESS"],
        )?;
        let sort = req.sort.unwrap_or_else(|| "ASC".into());
        validate::one_of("sort", &sort, &["ASC", "DESC"])?;
        let prefix = match &req.family_prefix {
            Some(f) => {
                validate::name("family", f)?;
                keys::taskdefs_of(f)
            }
            None => keys::TASKDEFS.to_owned(),
        };
        let keep = |kv: &berth_store::KeyValue| -> Result<Option<(String, String)>, EcsError> {
            let rec: TaskDefRecord = decode(kv)?;
            Ok((rec.task_definition.status == status)
                .then(|| (kv.key.clone(), rec.task_definition.task_definition_arn)))
        };
        if sort == "ASC" {
            let (items, next_token) = self
                .scan(&prefix, req.next_token.as_deref(), limit, |kv| {
                    keep(kv).map(|o| o.map(|(_, a)| a))
                })
                .await?;
            return Ok(ListTaskDefinitionsResponse {
                task_definition_arns: items,
                next_token,
            });
        }
        // DESC: task definitions are few; read the matching ones and page backwards.
        let before = req
            .next_token
            .as_deref()
            .map(paging::decode_token)
            .transpose()?;
        let mut all = Vec::new();
        for kv in self.range_all(&prefix).await? {
            if let Some(item) = keep(&kv)? {
                all.push(item);
            }
        }
        all.reverse();
        let start = match &before {
            Some(b) => all.iter().position(|(k, _)| k < b).unwrap_or(all.len()),
            None => 0,
        };
        let page: Vec<(String, String)> = all[start..].iter().take(limit).cloned().collect();
        let next_token = (start + page.len() < all.len())
            .then(|| page.last().map(|(k, _)| paging::encode_token(k)))
            .flatten();
        Ok(ListTaskDefinitionsResponse {
            task_definition_arns: page.into_iter().map(|(_, a)| a).collect(),
            next_token,
        })
    }

    pub async fn list_task_definition_families(
        &self,
        _ctx: &Ctx,
        req: ListTaskDefinitionFamiliesRequest,
    ) -> Result<ListTaskDefinitionFamiliesResponse, EcsError> {
        let limit = paging::max_results(req.max_results, 100, 100)?;
        // No status: every family (ACTIVE and INACTIVE ones).
        let status = req.status.unwrap_or_else(|| "ALL".into());
        validate::one_of("status", &status, &["ACTIVE", "INACTIVE", "ALL"])?;
        let prefix = format!(
            "{}{}",
            keys::FAMILIES,
            req.family_prefix.as_deref().unwrap_or("")
        );
        let (families, next_token) = self
            .scan(&prefix, req.next_token.as_deref(), limit, |kv| {
                let f: FamilyRecord = decode(kv)?;
                let keep = match status.as_str() {
                    "ACTIVE" => f.active > 0,
                    "INACTIVE" => f.active == 0,
                    _ => true,
                };
                Ok(keep.then(|| keys::last_segment(&kv.key).to_owned()))
            })
            .await?;
        Ok(ListTaskDefinitionFamiliesResponse {
            families,
            next_token,
        })
    }

    pub async fn deregister_task_definition(
        &self,
        _ctx: &Ctx,
        req: DeregisterTaskDefinitionRequest,
    ) -> Result<TaskDefinitionResponse, EcsError> {
        let r = TaskDefinitionRef::parse(&req.task_definition)?;
        let Some(revision) = r.revision else {
            return Err(EcsError::client(
                "a revision is required to deregister a task definition: use FAMILY:REVISION or an ARN",
            ));
        };
        let _guard = self.lock(&format!("family:{}", r.family)).await;
        let key = keys::taskdef(&r.family, revision);
        let fkey = keys::family(&r.family);
        for _ in 0..CAS_ATTEMPTS {
            let (mut rec, rev) = self
                .get::<TaskDefRecord>(&key)
                .await?
                .ok_or_else(not_found)?;
            if rec.task_definition.status != "ACTIVE" {
                return Ok(TaskDefinitionResponse {
                    task_definition: rec.task_definition,
                    tags: None,
                });
            }
            let (mut fam, frev) = self
                .get::<FamilyRecord>(&fkey)
                .await?
                .ok_or_else(|| EcsError::server("task definition without a family record"))?;
            fam.active = fam.active.saturating_sub(1);
            rec.task_definition.status = "INACTIVE".into();
            rec.task_definition.deregistered_at = Some(now());
            let mut batch = Batch::new();
            batch.put(key.clone(), &rec, Some(rev))?;
            batch.put(fkey.clone(), &fam, Some(frev))?;
            if self.commit(batch).await? {
                return Ok(TaskDefinitionResponse {
                    task_definition: rec.task_definition,
                    tags: None,
                });
            }
        }
        Err(contention())
    }

    pub async fn delete_task_definitions(
        &self,
        ctx: &Ctx,
        req: DeleteTaskDefinitionsRequest,
    ) -> Result<DeleteTaskDefinitionsResponse, EcsError> {
        validate::batch(
            "taskDefinitions",
            req.task_definitions.len(),
            1,
            validate::MAX_DELETE_TASK_DEFINITIONS,
        )?;
        let mut task_definitions = Vec::new();
        let mut failures = Vec::new();
        for reference in &req.task_definitions {
            let r = TaskDefinitionRef::parse(reference)?;
            let Some(revision) = r.revision else {
                failures.push(Failure {
                    arn: Some(reference.clone()),
                    reason: "The specified task definition identifier is invalid. Specify a valid name or ARN and try again.".into(),
                    detail: None,
                });
                continue;
            };
            let arn = self.scope(ctx).task_definition(&r.family, revision);
            let _guard = self.lock(&format!("family:{}", r.family)).await;
            let key = keys::taskdef(&r.family, revision);
            let mut done = false;
            for _ in 0..CAS_ATTEMPTS {
                let Some((mut rec, rev)) = self.get::<TaskDefRecord>(&key).await? else {
                    failures.push(Failure::new(
                        Some(arn.clone()),
                        "The specified task definition does not exist. Specify a valid account, family, revision and try again.",
                    ));
                    done = true;
                    break;
                };
                match rec.task_definition.status.as_str() {
                    "ACTIVE" => {
                        failures.push(Failure::new(
                            Some(arn.clone()),
                            "The specified task definition is still in ACTIVE status. Please deregister the target and try again.",
                        ));
                        done = true;
                        break;
                    }
                    "DELETE_IN_PROGRESS" => {
                        task_definitions.push(rec.task_definition);
                        done = true;
                        break;
                    }
                    _ => {}
                }
                rec.task_definition.status = "DELETE_IN_PROGRESS".into();
                rec.task_definition.delete_requested_at = Some(now());
                let mut batch = Batch::new();
                batch.put(key.clone(), &rec, Some(rev))?;
                if self.commit(batch).await? {
                    task_definitions.push(rec.task_definition);
                    done = true;
                    break;
                }
            }
            if !done {
                return Err(contention());
            }
        }
        Ok(DeleteTaskDefinitionsResponse {
            task_definitions,
            failures,
        })
    }
}
