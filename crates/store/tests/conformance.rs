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
