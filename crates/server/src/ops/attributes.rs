//! PutAttributes, ListAttributes, DeleteAttributes (target type `container-instance`).

use berth_api::shapes::{
    Attribute, AttributesRequest, AttributesResponse, ListAttributesRequest, ListAttributesResponse,
};
use berth_api::{cluster_name, container_instance_id, paging, validate, EcsError};

use crate::core::{contention, decode, Batch, Core, Ctx, CAS_ATTEMPTS};
use crate::keys;
use crate::records::InstanceRecord;

/// ECS's limit on custom attributes per container instance.
const MAX_CUSTOM_ATTRIBUTES: usize = 10;

fn check(a: &Attribute) -> Result<(), EcsError> {
    let ok_name = !a.name.is_empty()
        && a.name.len() <= 128
        && a.name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./@".contains(&b));
    if !ok_name {
        return Err(EcsError::invalid(format!(
            "invalid attribute name `{}`: use up to 128 letters, digits, hyphens, underscores, periods, at signs and slashes",
            a.name
        )));
    }
    if a.value.as_deref().is_some_and(|v| v.len() > 128) {
        return Err(EcsError::invalid(format!(
            "invalid value for attribute `{}`: values are at most 128 characters",
            a.name
        )));
    }
    if let Some(t) = &a.target_type {
        validate::one_of("targetType", t, &["container-instance"])?;
    }
    if a.target_id.as_deref().unwrap_or("").is_empty() {
        return Err(EcsError::invalid(format!(
            "attribute `{}` has no targetId: set it to a container instance id or arn",
            a.name
        )));
    }
    Ok(())
}

impl Core {
    async fn change_attributes(
        &self,
        req: AttributesRequest,
        put: bool,
    ) -> Result<AttributesResponse, EcsError> {
        let cluster = cluster_name(req.cluster.as_deref())?;
        validate::batch(
            "attributes",
            req.attributes.len(),
            1,
            validate::MAX_ATTRIBUTES_PER_CALL,
        )?;
        for a in &req.attributes {
            check(a)?;
        }
        let _guard = self.lock(&cluster).await;
        'attempt: for _ in 0..CAS_ATTEMPTS {
            self.active_cluster(&cluster).await?;
            let mut changed: Vec<(String, InstanceRecord, i64)> = Vec::new();
            for a in &req.attributes {
                let target = a.target_id.as_deref().unwrap_or("");
                let id = container_instance_id(target, &cluster)?;
                let key = keys::instance(&cluster, &id);
                if !changed.iter().any(|(k, _, _)| k == &key) {
                    match self.get::<InstanceRecord>(&key).await? {
                        Some((rec, rev)) if rec.registered() => {
                            changed.push((key.clone(), rec, rev))
                        }
                        _ => {
                            return Err(EcsError::TargetNotFound(format!(
                                "Could not find {target}."
                            )))
                        }
                    }
                }
                let Some((_, rec, _)) = changed.iter_mut().find(|(k, _, _)| k == &key) else {
                    continue 'attempt;
                };
                let attrs = &mut rec.instance.attributes;
                if put {
                    match attrs.iter_mut().find(|x| x.name == a.name) {
                        Some(x) => x.value = a.value.clone(),
                        None => attrs.push(Attribute::new(&a.name, a.value.as_deref())),
                    }
                    let custom = attrs.iter().filter(|x| !x.name.starts_with("ecs.")).count();
                    if custom > MAX_CUSTOM_ATTRIBUTES {
                        return Err(EcsError::AttributeLimitExceeded(format!(
                            "container instance `{id}` would have {custom} custom attributes; the limit is {MAX_CUSTOM_ATTRIBUTES}"
                        )));
                    }
                } else {
                    attrs.retain(|x| x.name != a.name);
                }
            }
            let mut batch = Batch::new();
            for (key, mut rec, rev) in changed {
                rec.sync();
                batch.put(key, &rec, Some(rev))?;
            }
            if self.commit(batch).await? {
                return Ok(AttributesResponse {
                    attributes: req.attributes,
                });
            }
        }
        Err(contention())
    }

    pub async fn put_attributes(
        &self,
        _ctx: &Ctx,
        req: AttributesRequest,
    ) -> Result<AttributesResponse, EcsError> {
        self.change_attributes(req, true).await
    }

    pub async fn delete_attributes(
        &self,
        _ctx: &Ctx,
        req: AttributesRequest,
    ) -> Result<AttributesResponse, EcsError> {
        self.change_attributes(req, false).await
    }

    pub async fn list_attributes(
        &self,
        _ctx: &Ctx,
        req: ListAttributesRequest,
    ) -> Result<ListAttributesResponse, EcsError> {
        let cluster = cluster_name(req.cluster.as_deref())?;
        validate::one_of("targetType", &req.target_type, &["container-instance"])?;
        let limit = paging::max_results(req.max_results, 100, 100)?;
        if req.attribute_value.is_some() && req.attribute_name.is_none() {
            return Err(EcsError::invalid(
                "attributeValue needs attributeName: filter on a name first",
            ));
        }
        self.active_cluster(&cluster).await?;
        let after = req
            .next_token
            .as_deref()
            .map(paging::decode_token)
            .transpose()?;
        // Items are ordered by (instance key, attribute name); the token is "KEY\u{0}NAME".
        let mut items: Vec<(String, Attribute)> = Vec::new();
        for kv in self.range_all(&keys::instances_of(&cluster)).await? {
            let rec: InstanceRecord = decode(&kv)?;
            if !rec.registered() {
                continue;
            }
            let mut attrs = rec.instance.attributes.clone();
            attrs.sort_by(|a, b| a.name.cmp(&b.name));
            for a in attrs {
                if req.attribute_name.as_ref().is_some_and(|n| n != &a.name) {
                    continue;
                }
                if req.attribute_value.is_some() && req.attribute_value != a.value {
                    continue;
                }
                let pos = format!("{}\u{0}{}", kv.key, a.name);
                if after.as_ref().is_some_and(|t| pos.as_str() <= t.as_str()) {
                    continue;
                }
                items.push((
                    pos,
                    Attribute {
                        name: a.name,
                        value: a.value,
                        target_type: Some("container-instance".into()),
                        target_id: Some(rec.instance.container_instance_arn.clone()),
                    },
                ));
            }
        }
        let more = items.len() > limit;
        items.truncate(limit);
        let next_token = more
            .then(|| items.last().map(|(p, _)| paging::encode_token(p)))
            .flatten();
        Ok(ListAttributesResponse {
            attributes: items.into_iter().map(|(_, a)| a).collect(),
            next_token,
        })
    }
}
