//! The conformance suite against each backend: one test per case per backend.

use berth_store::conformance::TestStore;

mod memory {
    use super::*;
    use berth_store::MemoryStore;

    berth_store::conformance_tests!(async { TestStore::new(MemoryStore::new()) });
}

mod redb {
    use super::*;
    use berth_store::RedbStore;

    async fn fresh() -> TestStore {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = RedbStore::open(dir.path()).expect("open store");
        TestStore::with_guard(store, dir)
    }

    berth_store::conformance_tests!(fresh());
}

/// redb with a log so small that a checkpoint is due after every batch: writes are answered
/// from the overlay while checkpoints hold redb's write lock, and reads merge the two.
mod redb_busy_checkpoints {
    use super::*;
    use berth_store::{RedbOptions, RedbStore};

    async fn fresh() -> TestStore {
        let dir = tempfile::tempdir().expect("temporary directory");
        let options = RedbOptions {
            wal_max_bytes: 1,
            ..RedbOptions::default()
        };
        let store = RedbStore::open_with(dir.path(), options).expect("open store");
        TestStore::with_guard(store, dir)
    }

    berth_store::conformance_tests!(fresh());
}

/// redb with the log, every answered batch applied to redb as soon as the applier is free
/// (the default waits `apply_delay`, so most reads above merge the overlay).
mod redb_eager_apply {
    use super::*;
    use berth_store::{RedbOptions, RedbStore};

    async fn fresh() -> TestStore {
        let dir = tempfile::tempdir().expect("temporary directory");
        let options = RedbOptions {
            apply_delay: std::time::Duration::ZERO,
            ..RedbOptions::default()
        };
        let store = RedbStore::open_with(dir.path(), options).expect("open store");
        TestStore::with_guard(store, dir)
    }

    berth_store::conformance_tests!(fresh());
}

/// redb without the log: every group commit durable in redb itself.
mod redb_no_log {
    use super::*;
    use berth_store::{RedbOptions, RedbStore};

    async fn fresh() -> TestStore {
        let dir = tempfile::tempdir().expect("temporary directory");
        let options = RedbOptions {
            wal: false,
            ..RedbOptions::default()
        };
        let store = RedbStore::open_with(dir.path(), options).expect("open store");
        TestStore::with_guard(store, dir)
    }

    berth_store::conformance_tests!(fresh());
}
