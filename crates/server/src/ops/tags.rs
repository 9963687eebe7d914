//! TagResource, UntagResource, ListTagsForResource: tags live in the tagged resource's record.

use berth_api::shapes::{
    Cluster, Empty, ListTagsForResourceRequest, ListTagsForResourceResponse, Tag,
    TagResourceRequest, UntagResourceRequest,
};
use berth_api::{validate, Arn, EcsError, Resource};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::core::{contention, Batch, Core, Ctx, CAS_ATTEMPTS};
use crate::keys;
use crate::records::{InstanceRecord, TaskDefRecord, TaskRecord};

impl Core {
    /// Reads the tags of the record at `key`, changes them with `change` and writes the record
    /// back when `write`; returns the tags after the change.
    async fn edit_tags<T: Serialize + DeserializeOwned>(
        &self,
        key: String,
        lock: String,
        missing: EcsError,
        tags_of: impl Fn(&mut T) -> Option<&mut Vec<Tag>>,
        change: &(dyn Fn(&mut Vec<Tag>) -> Result<(), EcsError> + Sync),
        write: bool,
    ) -> Result<Vec<Tag>, EcsError> {
        let _guard = self.lock(&lock).await;
        for _ in 0..CAS_ATTEMPTS {
            let Some((mut rec, rev)) = self.get::<T>(&key).await? else {
                return Err(missing);
            };
            let Some(tags) = tags_of(&mut rec) else {
                return Err(missing);
            };
            change(tags)?;
            let out = tags.clone();
            if !write {
                return Ok(out);
            }
            let mut batch = Batch::new();
            batch.put(key.clone(), &rec, Some(rev))?;
            if self.commit(batch).await? {
                return Ok(out);
            }
        }
        Err(contention())
    }

    async fn tags_of_arn(
        &self,
        arn: &str,
        change: &(dyn Fn(&mut Vec<Tag>) -> Result<(), EcsError> + Sync),
        write: bool,
    ) -> Result<Vec<Tag>, EcsError> {
        let parsed = Arn::parse(arn)?;
        let not_found = || {
            EcsError::ResourceNotFound(format!(
                "The specified resource `{arn}` could not be found."
            ))
        };
        match parsed.resource {
            Resource::Cluster { name } => {
                self.edit_tags::<Cluster>(
                    keys::cluster(&name),
                    name.clone(),
                    EcsError::cluster_not_found(),
                    |c| (c.status == "ACTIVE").then(|| c.tags.get_or_insert_with(Vec::new)),
                    change,
                    write,
                )
                .await
            }
            Resource::TaskDefinition { family, revision } => {
                self.edit_tags::<TaskDefRecord>(
                    keys::taskdef(&family, revision),
                    format!("family:{family}"),
                    not_found(),
                    |r| Some(&mut r.tags),
                    change,
                    write,
                )
                .await
            }
            Resource::Task {
                cluster: Some(cluster),
                id,
            } => {
                self.edit_tags::<TaskRecord>(
                    keys::task(&cluster, &id),
                    cluster.clone(),
                    not_found(),
                    |t| Some(t.task.tags.get_or_insert_with(Vec::new)),
                    change,
                    write,
                )
                .await
            }
            Resource::ContainerInstance {
                cluster: Some(cluster),
                id,
            } => {
                self.edit_tags::<InstanceRecord>(
                    keys::instance(&cluster, &id),
                    cluster.clone(),
                    not_found(),
                    |i| Some(i.instance.tags.get_or_insert_with(Vec::new)),
                    change,
                    write,
                )
                .await
            }
            _ => Err(EcsError::invalid(format!(
                "tagging `{arn}` is not supported: tag clusters, task definitions, tasks and container instances by their long-format arn"
            ))),
        }
    }

    pub async fn tag_resource(
        &self,
        _ctx: &Ctx,
        req: TagResourceRequest,
    ) -> Result<Empty, EcsError> {
        validate::tags(&req.tags)?;
        let new = req.tags.clone();
        self.tags_of_arn(
            &req.resource_arn,
            &move |tags| {
                validate::merge_tags(tags, &new);
                validate::tags(tags)
            },
            true,
        )
        .await?;
        Ok(Empty {})
    }

    pub async fn untag_resource(
        &self,
        _ctx: &Ctx,
        req: UntagResourceRequest,
    ) -> Result<Empty, EcsError> {
        let keys_ = req.tag_keys.clone();
        self.tags_of_arn(
            &req.resource_arn,
            &move |tags| {
                tags.retain(|t| !t.key.as_ref().is_some_and(|k| keys_.contains(k)));
                Ok(())
            },
            true,
        )
        .await?;
        Ok(Empty {})
    }

    pub async fn list_tags_for_resource(
        &self,
        _ctx: &Ctx,
        req: ListTagsForResourceRequest,
    ) -> Result<ListTagsForResourceResponse, EcsError> {
        let tags = self
            .tags_of_arn(&req.resource_arn, &|_| Ok(()), false)
            .await?;
        Ok(ListTagsForResourceResponse { tags })
    }
}
