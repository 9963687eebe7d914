//! The core: handles typed commands against the store. Shared state ([`Core`]) and the
//! helpers every operation module uses: JSON reads, batched conditional writes, per-cluster
//! writer locks, the cluster lookup.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use berth_api::shapes::Cluster;
use berth_api::{ArnScope, EcsError};
use berth_store::{
    Compare, CompareOp, CompareTarget, KeyValue, Op, OpResult, RangeRequest, Revision, Store, Txn,
};
use futures_util::future::{BoxFuture, FutureExt, Shared};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::keys;
use crate::records::InstanceRecord;

/// How many times a conditional write is retried after another writer got in first.
pub const CAS_ATTEMPTS: usize = 8;

/// The per-request context the edge passes in.
#[derive(Clone, Debug)]
pub struct Ctx {
    /// From the SigV4 credential scope, else the server's default region.
    pub region: String,
    /// The URL clients reached the server at (for DiscoverPollEndpoint).
    pub endpoint: String,
}

/// What task creation keeps of a cluster between requests, so it can place and write without
/// waiting for the previous write's commit (see `ops::tasks`): the records as they will be
/// once every write submitted so far commits, with their store versions.
pub struct ClusterCache {
    pub cluster: Cluster,
    pub cluster_version: i64,
    /// The registered (ACTIVE/DRAINING) instances and their versions, in key order.
    pub instances: Vec<(InstanceRecord, i64)>,
}

/// The in-process state of one writer scope (a cluster, a task definition family).
#[derive(Default)]
pub struct Slot {
    pub cache: Option<ClusterCache>,
    /// Completes when the last pipelined write of the scope has its answer (writes commit in
    /// submission order, so then all of them have).
    last_commit: Option<Shared<BoxFuture<'static, ()>>>,
}

impl Slot {
    /// Waits for every pipelined write of the scope and drops the cache: afterwards the store
    /// holds everything written so far.
    pub async fn settle(&mut self) {
        if let Some(f) = self.last_commit.take() {
            f.await;
        }
        self.cache = None;
    }

    /// Records a write submitted without waiting for it; send on the sender once its answer
    /// is in.
    pub fn pipelined(&mut self) -> tokio::sync::oneshot::Sender<()> {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        self.last_commit = Some(rx.map(|_| ()).boxed().shared());
        tx
    }
}

/// The control plane's shared state.
pub struct Core {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) account: String,
    /// The agent channels open in this process.
    pub(crate) presence: crate::presence::Presence,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Slot>>>>,
}

/// Seconds since the Unix epoch, with millisecond precision.
pub fn now() -> f64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_millis() as f64) / 1000.0
}

pub fn store_err(e: berth_store::StoreError) -> EcsError {
    EcsError::server(e)
}

pub fn decode<T: DeserializeOwned>(kv: &KeyValue) -> Result<T, EcsError> {
    serde_json::from_slice(&kv.value)
        .map_err(|e| EcsError::server(format!("corrupt record at {}: {e}", kv.key)))
}

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, EcsError> {
    serde_json::to_vec(value).map_err(EcsError::server)
}

/// A transaction under construction: puts and deletes, each guarded by the revision the
/// value was read at (compare-and-swap).
#[derive(Default)]
pub struct Batch {
    txn: Txn,
}

impl Batch {
    pub fn new() -> Self {
        Batch::default()
    }
    /// Writes `key` if it is still at `read_at` (0: if it does not exist); `None`: always.
    pub fn put<T: Serialize>(
        &mut self,
        key: String,
        value: &T,
        read_at: Option<Revision>,
    ) -> Result<(), EcsError> {
        if let Some(rev) = read_at {
            self.expect(&key, rev);
        }
        self.txn.success.push(Op::put(key, encode(value)?));
        Ok(())
    }
    pub fn delete(&mut self, key: String) {
        self.txn.success.push(Op::delete(key));
    }
    pub fn delete_prefix(&mut self, prefix: String) {
        self.txn.success.push(Op::DeletePrefix { prefix });
    }
    /// Writes `key` if its version is still `version` (0: if it does not exist).
    pub fn put_at_version<T: Serialize>(
        &mut self,
        key: String,
        value: &T,
        version: i64,
    ) -> Result<(), EcsError> {
        self.txn.compares.push(Compare {
            key: key.clone(),
            op: CompareOp::Equal,
            target: CompareTarget::Version(version),
        });
        self.txn.success.push(Op::put(key, encode(value)?));
        Ok(())
    }
    pub fn into_txn(self) -> Txn {
        self.txn
    }
    /// Adds the condition that `key` is still at `rev` (0: missing).
    pub fn expect(&mut self, key: &str, rev: Revision) {
        self.txn.compares.push(if rev == 0 {
            Compare::missing(key)
        } else {
            Compare::mod_revision(key, rev)
        });
    }
}

impl Core {
    pub fn new(store: Arc<dyn Store>, account: String) -> Self {
        Core {
            store,
            account,
            presence: crate::presence::Presence::default(),
            locks: Mutex::new(HashMap::new()),
        }
    }

    pub fn scope<'a>(&'a self, ctx: &'a Ctx) -> ArnScope<'a> {
        ArnScope {
            region: &ctx.region,
            account: &self.account,
        }
    }

    /// Serializes writers of one scope (a cluster, a task definition family) in this process,
    /// so their compare-and-swap writes do not race each other, and waits for the scope's
    /// pipelined writes: reads made under the guard see everything written before.
    pub async fn lock(&self, scope: &str) -> tokio::sync::OwnedMutexGuard<Slot> {
        let mut guard = self.lock_raw(scope).await;
        guard.settle().await;
        guard
    }

    /// The scope's lock without waiting for pipelined writes (task creation).
    pub async fn lock_raw(&self, scope: &str) -> tokio::sync::OwnedMutexGuard<Slot> {
        let m = {
            let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            locks
                .entry(scope.to_owned())
                .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(Slot::default())))
                .clone()
        };
        m.lock_owned().await
    }

    /// Reads an ACTIVE cluster and its registered instances with their versions.
    pub async fn load_cluster_cache(&self, name: &str) -> Result<ClusterCache, EcsError> {
        let kv = self
            .store
            .get(&keys::cluster(name))
            .await
            .map_err(store_err)?
            .ok_or_else(EcsError::cluster_not_found)?;
        let cluster: Cluster = decode(&kv)?;
        if cluster.status != "ACTIVE" {
            return Err(EcsError::cluster_not_found());
        }
        let mut instances = Vec::new();
        for ikv in self.range_all(&keys::instances_of(name)).await? {
            let rec: InstanceRecord = decode(&ikv)?;
            if rec.registered() {
                instances.push((rec, ikv.version));
            }
        }
        Ok(ClusterCache {
            cluster,
            cluster_version: kv.version,
            instances,
        })
    }

    /// Reads and decodes one key; returns the value and its mod revision.
    pub async fn get<T: DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<(T, Revision)>, EcsError> {
        match self.store.get(key).await.map_err(store_err)? {
            Some(kv) => Ok(Some((decode(&kv)?, kv.mod_revision))),
            None => Ok(None),
        }
    }

    /// Reads several keys in one transaction (missing keys are `None`).
    pub async fn get_many(&self, keys: Vec<String>) -> Result<Vec<Option<KeyValue>>, EcsError> {
        let txn = Txn {
            compares: Vec::new(),
            success: keys.into_iter().map(Op::get).collect(),
            failure: Vec::new(),
        };
        let response = self.store.txn(txn).await.map_err(store_err)?;
        Ok(response
            .results
            .into_iter()
            .map(|r| match r {
                OpResult::Get { kv } => kv,
                _ => None,
            })
            .collect())
    }

    /// Every key-value under a prefix.
    pub async fn range_all(&self, prefix: &str) -> Result<Vec<KeyValue>, EcsError> {
        Ok(self
            .store
            .range(RangeRequest::prefix(prefix))
            .await
            .map_err(store_err)?
            .kvs)
    }

    /// One page of keys under `prefix` after `start_after`.
    pub async fn range_page(
        &self,
        prefix: &str,
        start_after: Option<String>,
        limit: usize,
    ) -> Result<(Vec<KeyValue>, bool), EcsError> {
        let r = self
            .store
            .range(RangeRequest {
                prefix: prefix.to_owned(),
                start_after,
                limit: Some(limit),
            })
            .await
            .map_err(store_err)?;
        Ok((r.kvs, r.more))
    }

    /// Scans `prefix` from `token` keeping the items `keep` maps to `Some`, until `limit`
    /// items are kept; returns them and the `nextToken` when more keys remain.
    pub async fn scan<T>(
        &self,
        prefix: &str,
        token: Option<&str>,
        limit: usize,
        mut keep: impl FnMut(&KeyValue) -> Result<Option<T>, EcsError>,
    ) -> Result<(Vec<T>, Option<String>), EcsError> {
        let mut after = token.map(berth_api::paging::decode_token).transpose()?;
        if let Some(a) = &after {
            if !a.starts_with(prefix) {
                return Err(EcsError::invalid(
                    "invalid nextToken: it belongs to another request",
                ));
            }
        }
        let mut out = Vec::new();
        loop {
            let chunk = (limit - out.len()).max(64);
            let (kvs, more) = self.range_page(prefix, after.clone(), chunk).await?;
            let n = kvs.len();
            for (i, kv) in kvs.iter().enumerate() {
                if let Some(t) = keep(kv)? {
                    out.push(t);
                    if out.len() == limit {
                        let rest = more || i + 1 < n;
                        let token = rest.then(|| berth_api::paging::encode_token(&kv.key));
                        return Ok((out, token));
                    }
                }
            }
            match kvs.last() {
                Some(last) if more => after = Some(last.key.clone()),
                _ => return Ok((out, None)),
            }
        }
    }

    /// Runs a batch; returns whether its conditions held (false: another writer got in first,
    /// re-read and retry).
    pub async fn commit(&self, batch: Batch) -> Result<bool, EcsError> {
        let r = self.store.txn(batch.txn).await.map_err(store_err)?;
        Ok(r.succeeded)
    }

    /// An ACTIVE cluster and its revision, else `ClusterNotFoundException`.
    pub async fn active_cluster(&self, name: &str) -> Result<(Cluster, Revision), EcsError> {
        match self.get::<Cluster>(&keys::cluster(name)).await? {
            Some((c, rev)) if c.status == "ACTIVE" => Ok((c, rev)),
            _ => Err(EcsError::cluster_not_found()),
        }
    }
}

/// The error for a write that lost every compare-and-swap attempt.
pub fn contention() -> EcsError {
    EcsError::UpdateInProgress("the resource is being changed by another request: retry".into())
}
