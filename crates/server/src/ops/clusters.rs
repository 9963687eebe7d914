//! CreateCluster, DescribeClusters, ListClusters, UpdateCluster, UpdateClusterSettings,
//! DeleteCluster.

use berth_api::shapes::{
    Cluster, ClusterResponse, ClusterSetting, CreateClusterRequest, DeleteClusterRequest,
    DescribeClustersRequest, DescribeClustersResponse, Failure, KeyValuePair, ListClustersResponse,
    ListRequest, UpdateClusterRequest, UpdateClusterSettingsRequest,
};
use berth_api::{cluster_name, paging, validate, EcsError};

use crate::core::{contention, decode, Batch, Core, Ctx, CAS_ATTEMPTS};
use crate::keys;

const INCLUDE: &[&str] = &[
    "ATTACHMENTS",
    "CONFIGURATIONS",
    "SETTINGS",
    "STATISTICS",
    "TAGS",
];

fn statistics(c: &Cluster) -> Vec<KeyValuePair> {
    let kv = |n: &str, v: i64| KeyValuePair {
        name: Some(n.into()),
        value: Some(v.to_string()),
    };
    vec![
        kv("runningEC2TasksCount", c.running_tasks_count),
        kv("runningFargateTasksCount", 0),
        kv("pendingEC2TasksCount", c.pending_tasks_count),
        kv("pendingFargateTasksCount", 0),
        kv("runningExternalTasksCount", 0),
        kv("pendingExternalTasksCount", 0),
        kv("activeEC2ServiceCount", c.active_services_count),
        kv("activeFargateServiceCount", 0),
        kv("drainingEC2ServiceCount", 0),
        kv("drainingFargateServiceCount", 0),
    ]
}

/// The cluster as DescribeClusters shows it with the given `include` fields.
pub fn view(mut c: Cluster, include: &[String]) -> Cluster {
    let has = |f: &str| include.iter().any(|i| i == f);
    if !has("TAGS") {
        c.tags = None;
    } else if c.tags.is_none() {
        c.tags = Some(Vec::new());
    }
    if !has("SETTINGS") {
        c.settings = None;
    }
    if !has("CONFIGURATIONS") {
        c.configuration = None;
    }
    if !has("ATTACHMENTS") {
        c.attachments = None;
        c.attachments_status = None;
    }
    if has("STATISTICS") {
        c.statistics = Some(statistics(&c));
    }
    c
}

fn default_settings() -> Vec<ClusterSetting> {
    vec![ClusterSetting {
        name: Some("containerInsights".into()),
        value: Some("disabled".into()),
    }]
}

fn merge_settings(existing: &mut Vec<ClusterSetting>, new: &[ClusterSetting]) {
    for s in new {
        match existing.iter_mut().find(|e| e.name == s.name) {
            Some(e) => e.value = s.value.clone(),
            None => existing.push(s.clone()),
        }
    }
}

impl Core {
    pub async fn create_cluster(
        &self,
        ctx: &Ctx,
        req: CreateClusterRequest,
    ) -> Result<ClusterResponse, EcsError> {
        let name = req.cluster_name.clone().unwrap_or_else(|| "default".into());
        validate::name("cluster", &name)?;
        if let Some(t) = &req.tags {
            validate::tags(t)?;
        }
        if let Some(s) = &req.settings {
            validate::cluster_settings(s)?;
        }
        let key = keys::cluster(&name);
        let _guard = self.lock(&name).await;
        for _ in 0..CAS_ATTEMPTS {
            let existing = self.get::<Cluster>(&key).await?;
            if let Some((c, _)) = &existing {
                if c.status == "ACTIVE" {
                    // CreateCluster is idempotent: the existing cluster comes back unchanged.
                    return Ok(ClusterResponse { cluster: c.clone() });
                }
            }
            let mut settings = default_settings();
            merge_settings(&mut settings, req.settings.as_deref().unwrap_or(&[]));
            let cluster = Cluster {
                cluster_arn: self.scope(ctx).cluster(&name),
                cluster_name: name.clone(),
                status: "ACTIVE".into(),
                tags: Some(req.tags.clone().unwrap_or_default()),
                settings: Some(settings),
                configuration: req.configuration.clone(),
                capacity_providers: Some(req.capacity_providers.clone().unwrap_or_default()),
                default_capacity_provider_strategy: Some(
                    req.default_capacity_provider_strategy
                        .clone()
                        .unwrap_or_default(),
                ),
                service_connect_defaults: req.service_connect_defaults.clone(),
                ..Cluster::default()
            };
            let mut batch = Batch::new();
            batch.put(key.clone(), &cluster, Some(existing.map_or(0, |(_, r)| r)))?;
            if self.commit(batch).await? {
                return Ok(ClusterResponse { cluster });
            }
        }
        Err(contention())
    }

    pub async fn describe_clusters(
        &self,
        ctx: &Ctx,
        req: DescribeClustersRequest,
    ) -> Result<DescribeClustersResponse, EcsError> {
        let include = req.include.unwrap_or_default();
        for i in &include {
            validate::one_of("include value", i, INCLUDE)?;
        }
        let refs = req.clusters.unwrap_or_else(|| vec!["default".into()]);
        validate::batch("clusters", refs.len(), 0, validate::MAX_DESCRIBE_CLUSTERS)?;
        let names = refs
            .iter()
            .map(|r| cluster_name(Some(r)))
            .collect::<Result<Vec<_>, _>>()?;
        let kvs = self
            .get_many(names.iter().map(|n| keys::cluster(n)).collect())
            .await?;
        let mut clusters = Vec::new();
        let mut failures = Vec::new();
        for (name, kv) in names.iter().zip(kvs) {
            match kv {
                Some(kv) => clusters.push(view(decode(&kv)?, &include)),
                None => failures.push(Failure::missing(self.scope(ctx).cluster(name))),
            }
        }
        Ok(DescribeClustersResponse { clusters, failures })
    }

    pub async fn list_clusters(
        &self,
        _ctx: &Ctx,
        req: ListRequest,
    ) -> Result<ListClustersResponse, EcsError> {
        let limit = paging::max_results(req.max_results, 100, 100)?;
        let (cluster_arns, next_token) = self
            .scan(keys::CLUSTERS, req.next_token.as_deref(), limit, |kv| {
                let c: Cluster = decode(kv)?;
                Ok((c.status == "ACTIVE").then_some(c.cluster_arn))
            })
            .await?;
        Ok(ListClustersResponse {
            cluster_arns,
            next_token,
        })
    }

    async fn change_cluster(
        &self,
        cluster: Option<&str>,
        change: impl Fn(&mut Cluster) -> Result<(), EcsError>,
    ) -> Result<ClusterResponse, EcsError> {
        let name = cluster_name(cluster)?;
        let _guard = self.lock(&name).await;
        for _ in 0..CAS_ATTEMPTS {
            let (mut c, rev) = self.active_cluster(&name).await?;
            change(&mut c)?;
            let mut batch = Batch::new();
            batch.put(keys::cluster(&name), &c, Some(rev))?;
            if self.commit(batch).await? {
                return Ok(ClusterResponse { cluster: c });
            }
        }
        Err(contention())
    }

    pub async fn update_cluster(
        &self,
        _ctx: &Ctx,
        req: UpdateClusterRequest,
    ) -> Result<ClusterResponse, EcsError> {
        if let Some(s) = &req.settings {
            validate::cluster_settings(s)?;
        }
        self.change_cluster(Some(&req.cluster), |c| {
            if let Some(s) = &req.settings {
                merge_settings(c.settings.get_or_insert_with(Vec::new), s);
            }
            if let Some(conf) = &req.configuration {
                c.configuration = Some(conf.clone());
            }
            if let Some(d) = &req.service_connect_defaults {
                c.service_connect_defaults = Some(d.clone());
            }
            Ok(())
        })
        .await
    }

    pub async fn update_cluster_settings(
        &self,
        _ctx: &Ctx,
        req: UpdateClusterSettingsRequest,
    ) -> Result<ClusterResponse, EcsError> {
        validate::cluster_settings(&req.settings)?;
        self.change_cluster(Some(&req.cluster), |c| {
            merge_settings(c.settings.get_or_insert_with(Vec::new), &req.settings);
            Ok(())
        })
        .await
    }

    pub async fn delete_cluster(
        &self,
        _ctx: &Ctx,
        req: DeleteClusterRequest,
    ) -> Result<ClusterResponse, EcsError> {
        let name = cluster_name(Some(&req.cluster))?;
        let _guard = self.lock(&name).await;
        for _ in 0..CAS_ATTEMPTS {
            let (mut c, rev) = self.active_cluster(&name).await?;
            if c.registered_container_instances_count > 0 {
                return Err(EcsError::ClusterContainsContainerInstances(
                    "The Cluster cannot be deleted while Container Instances are active or draining."
                        .into(),
                ));
            }
            if c.active_services_count > 0 {
                return Err(EcsError::ClusterContainsServices(
                    "The Cluster cannot be deleted while Services are active.".into(),
                ));
            }
            if c.running_tasks_count + c.pending_tasks_count > 0 {
                return Err(EcsError::ClusterContainsTasks(
                    "The Cluster cannot be deleted while Tasks are active.".into(),
                ));
            }
            c.status = "INACTIVE".into();
            let mut batch = Batch::new();
            batch.put(keys::cluster(&name), &c, Some(rev))?;
            batch.delete_prefix(keys::tasks_of(&name));
            batch.delete_prefix(keys::instances_of(&name));
            batch.delete_prefix(keys::idempotency_of(&name));
            if self.commit(batch).await? {
                return Ok(ClusterResponse { cluster: c });
            }
        }
        Err(contention())
    }
}
