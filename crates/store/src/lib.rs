//! Berth's state store: one [`Store`] trait with etcd-like semantics, so the embedded backend
//! used by `berth server`/`berth up` and the etcd backend used for a highly available control
//! plane are interchangeable.
//!
//! Semantics (etcd v3's): keyed byte values; one store-wide [`Revision`] that every writing
//! transaction bumps by one; per key create/mod revisions and a version; transactions of
//! compares and ops ([`Txn`]) for compare-and-swap; range reads by prefix with pagination; and
//! [`Store::watch`] from any revision not yet compacted, which is what controllers are fed by.
//! An acknowledged write is durable in the durable backends.
//!
//! Layout:
//! - `types`: the data model ([`KeyValue`], [`Txn`], [`WatchEvent`], ...);
//! - `error`: [`StoreError`];
//! - `logic`: backend-independent rules (compare evaluation, transaction validation);
//! - `memory`: [`MemoryStore`], the in-process reference backend (tests, throwaway servers);
//! - `redb_store`: [`RedbStore`], the embedded durable backend (one redb file, group commit);
//! - `wal`: its write-ahead log (one fdatasync per group commit, replayed on open);
//! - `overlay`: logged writes not yet applied to redb, merged into every read;
//! - `conformance` (feature `conformance`): the test suite every backend passes.

#[cfg(feature = "conformance")]
pub mod conformance;
mod error;
pub mod logic;
mod memory;
mod overlay;
mod redb_store;
mod types;
mod wal;

pub use error::StoreError;
pub use memory::MemoryStore;
pub use redb_store::{RedbOptions, RedbStore};
pub use types::{
    Compare, CompareOp, CompareTarget, EventKind, KeyValue, Op, OpResult, RangeRequest,
    RangeResponse, Revision, Txn, TxnResponse, WatchEvent, WatchStream,
};

/// An etcd-like key-value store. Every method is atomic; implementations are shared between
/// tasks (`Arc<dyn Store>`).
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Runs a transaction atomically (see [`Txn`]).
    async fn txn(&self, txn: Txn) -> Result<TxnResponse, StoreError>;

    /// Reads the keys under a prefix, in key order.
    async fn range(&self, request: RangeRequest) -> Result<RangeResponse, StoreError>;

    /// Streams every change to keys under `prefix` with revision >= `from_revision`, first the
    /// history still kept, then live changes. `from_revision` 0 means "changes after now"
    /// (after every write already acknowledged). A revision older than the oldest kept one
    /// fails with [`StoreError::Compacted`]; one beyond the next revision (current + 1) with
    /// [`StoreError::FutureRevision`].
    async fn watch(&self, prefix: &str, from_revision: Revision)
        -> Result<WatchStream, StoreError>;

    /// The current store revision.
    async fn revision(&self) -> Result<Revision, StoreError>;

    /// Drops the change history older than `revision`: watches from before it then fail with
    /// [`StoreError::Compacted`] (whose `compacted` is this revision), watches from it still
    /// work. Compacting to a revision at or below the current compaction point does nothing;
    /// beyond the current revision fails with [`StoreError::FutureRevision`].
    async fn compact(&self, revision: Revision) -> Result<(), StoreError>;

    /// Reads one key.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let response = self.txn(Txn::new().and_then(Op::get(key))).await?;
        Ok(match response.results.into_iter().next() {
            Some(OpResult::Get { kv }) => kv,
            _ => None,
        })
    }

    /// Writes one key unconditionally; returns the write's revision.
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<Revision, StoreError> {
        Ok(self
            .txn(Txn::new().and_then(Op::put(key, value)))
            .await?
            .revision)
    }

    /// Writes `key` only if it does not exist; returns the revision, or `None` if it existed.
    async fn create(&self, key: &str, value: Vec<u8>) -> Result<Option<Revision>, StoreError> {
        let response = self
            .txn(
                Txn::new()
                    .when(Compare::missing(key))
                    .and_then(Op::put(key, value)),
            )
            .await?;
        Ok(response.succeeded.then_some(response.revision))
    }

    /// Writes `key` only if it was last written at `mod_revision` (compare-and-swap); returns
    /// the new revision, or `None` if someone else wrote it since.
    async fn update(
        &self,
        key: &str,
        mod_revision: Revision,
        value: Vec<u8>,
    ) -> Result<Option<Revision>, StoreError> {
        let response = self
            .txn(
                Txn::new()
                    .when(Compare::mod_revision(key, mod_revision))
                    .and_then(Op::put(key, value)),
            )
            .await?;
        Ok(response.succeeded.then_some(response.revision))
    }

    /// Deletes one key; returns whether it existed.
    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        let response = self.txn(Txn::new().and_then(Op::delete(key))).await?;
        Ok(matches!(
            response.results.first(),
            Some(OpResult::Delete { deleted }) if !deleted.is_empty()
        ))
    }
}
