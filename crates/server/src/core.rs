//! The core: handles typed commands against the store. Shared state ([`Core`]) and the
//! helpers every operation module uses: JSON reads, batched conditional writes, per-cluster
//! writer locks, the cluster lookup.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use berth_api::shapes::Cluster;
use berth_api::{ArnScope, EcsError};
use berth_store::{Compare, KeyValue, Op, OpResult, RangeRequest, Revision, Store, Txn};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::keys;

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

/// The control plane's shared state.
pub struct Core {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) account: String,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
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
    /// so their compare-and-swap writes do not race each other.
    pub async fn lock(&self, scope: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let m = {
            let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            locks
                .entry(scope.to_owned())
                .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(())))
                .clone()
        };
        m.lock_owned().await
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
