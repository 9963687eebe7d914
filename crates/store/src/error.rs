//! [`StoreError`]: what a store operation can fail with.

use crate::Revision;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// A watch asked for history that compaction removed; re-read and watch from now.
    /// `compacted` is the oldest revision a watch may still start from.
    #[error("revision {requested} has been compacted (the oldest revision kept is {compacted})")]
    Compacted {
        requested: Revision,
        compacted: Revision,
    },
    /// A watch or compaction named a revision the store has not reached.
    #[error("revision {requested} is in the future (current revision is {current})")]
    FutureRevision {
        requested: Revision,
        current: Revision,
    },
    /// A malformed request (an empty key, one key written twice in a transaction, ...).
    #[error("invalid store request: {0}")]
    InvalidRequest(String),
    /// The watcher fell too far behind the writers and was dropped; watch again from the
    /// revision after the last event it saw.
    #[error("watch fell behind and was cancelled; watch again from revision {resume_from}")]
    WatchLagged { resume_from: Revision },
    /// The backend failed (I/O, corruption, lost connection). Nothing of the failing
    /// transaction was applied.
    #[error("store backend failed: {0}")]
    Backend(String),
    /// The store is closed or shutting down.
    #[error("store is closed")]
    Closed,
}
