//! The data model shared by every backend: keys, revisions, transactions, watch events.
//!
//! The model is etcd's (v3) so an etcd backend maps one to one: a single store-wide
//! revision counter that every writing transaction bumps by exactly one; per key a
//! `create_revision`, `mod_revision` and `version` (number of writes since creation, 0 for a
//! missing key); transactions made of compares plus the ops to run when they all hold
//! (`success`) or not (`failure`).

use std::pin::Pin;

use futures_util::Stream;

use crate::StoreError;

/// A store-wide revision. Revision 0 is "before any write"; the first write makes it 1.
pub type Revision = i64;

/// One stored key and its value with etcd's bookkeeping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    /// Revision of the write that created the key (since its last deletion).
    pub create_revision: Revision,
    /// Revision of the last write to the key.
    pub mod_revision: Revision,
    /// Writes since creation: 1 after the create, 0 for a missing/deleted key.
    pub version: i64,
}

/// What a [`Compare`] looks at. A missing key has version 0, create and mod revision 0 and
/// compares unequal to every value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CompareTarget {
    Version(i64),
    CreateRevision(Revision),
    ModRevision(Revision),
    Value(Vec<u8>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    Equal,
    NotEqual,
    Greater,
    Less,
}

/// One condition of a transaction: `key`'s `target` field `op` the given value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compare {
    pub key: String,
    pub op: CompareOp,
    pub target: CompareTarget,
}

impl Compare {
    /// Holds when the key does not exist.
    pub fn missing(key: impl Into<String>) -> Self {
        Compare {
            key: key.into(),
            op: CompareOp::Equal,
            target: CompareTarget::Version(0),
        }
    }

    /// Holds when the key exists.
    pub fn exists(key: impl Into<String>) -> Self {
        Compare {
            key: key.into(),
            op: CompareOp::Greater,
            target: CompareTarget::Version(0),
        }
    }

    /// Holds when the key was last written at `revision` (compare-and-swap on a read).
    pub fn mod_revision(key: impl Into<String>, revision: Revision) -> Self {
        Compare {
            key: key.into(),
            op: CompareOp::Equal,
            target: CompareTarget::ModRevision(revision),
        }
    }
}

/// One operation of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Put {
        key: String,
        value: Vec<u8>,
    },
    Delete {
        key: String,
    },
    /// Deletes every key starting with `prefix`.
    DeletePrefix {
        prefix: String,
    },
    Get {
        key: String,
    },
}

impl Op {
    pub fn put(key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        Op::Put {
            key: key.into(),
            value: value.into(),
        }
    }

    pub fn delete(key: impl Into<String>) -> Self {
        Op::Delete { key: key.into() }
    }

    pub fn get(key: impl Into<String>) -> Self {
        Op::Get { key: key.into() }
    }

    /// Whether this op writes (and so makes its transaction take a new revision).
    pub fn writes(&self) -> bool {
        !matches!(self, Op::Get { .. })
    }
}

/// A transaction: if every compare holds run `success`, else `failure`. All ops of the
/// chosen branch apply atomically under one new revision (if any of them writes); an op may
/// not write the same key twice in one branch (etcd's rule; backends reject it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Txn {
    pub compares: Vec<Compare>,
    pub success: Vec<Op>,
    pub failure: Vec<Op>,
}

impl Txn {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn when(mut self, compare: Compare) -> Self {
        self.compares.push(compare);
        self
    }

    pub fn and_then(mut self, op: Op) -> Self {
        self.success.push(op);
        self
    }

    pub fn or_else(mut self, op: Op) -> Self {
        self.failure.push(op);
        self
    }
}

/// The result of one op, in the order of the branch that ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpResult {
    /// The key's previous value, if it existed.
    Put {
        prev: Option<KeyValue>,
    },
    /// The deleted keys' previous values (at most one for `Op::Delete`).
    Delete {
        deleted: Vec<KeyValue>,
    },
    Get {
        kv: Option<KeyValue>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnResponse {
    /// Whether the compares held (so `success` ran).
    pub succeeded: bool,
    /// The store revision after the transaction (its own revision if it wrote).
    pub revision: Revision,
    pub results: Vec<OpResult>,
}

/// A read of the keys starting with `prefix`, in key order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeRequest {
    pub prefix: String,
    /// Only keys strictly greater than this (pagination: pass the last key seen).
    pub start_after: Option<String>,
    /// At most this many keys; `None` for all.
    pub limit: Option<usize>,
}

impl RangeRequest {
    pub fn prefix(prefix: impl Into<String>) -> Self {
        RangeRequest {
            prefix: prefix.into(),
            ..Self::default()
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeResponse {
    pub kvs: Vec<KeyValue>,
    /// Whether more keys matched beyond `limit`.
    pub more: bool,
    /// The store revision the read saw.
    pub revision: Revision,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
}

/// One change seen by a watch. For a delete, `kv` has the key, an empty value, version 0,
/// and `mod_revision` set to the deleting revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    pub kind: EventKind,
    pub kv: KeyValue,
    pub prev_kv: Option<KeyValue>,
}

impl WatchEvent {
    pub fn revision(&self) -> Revision {
        self.kv.mod_revision
    }
}

/// The events of a watch, in revision order; the events of one transaction in the order of its
/// ops (the keys of one `DeletePrefix` in key order), as etcd orders them.
/// It ends with an error if the watcher falls too far behind or the store closes.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent, StoreError>> + Send>>;
