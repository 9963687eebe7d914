//! The conformance suite every [`Store`] backend passes (feature `conformance`).
//!
//! Each case is an async function taking a fresh, empty, isolated store ([`TestStore`]); it
//! panics on a failure. Cases only assume revisions relative to the store's revision when the
//! case starts (a fresh etcd starts at revision 1, the embedded backends at 0). A backend's
//! integration test runs every case as its own test with [`conformance_tests!`]:
//!
//! ```ignore
//! berth_store::conformance_tests!(async { TestStore::new(MemoryStore::new()) });
//! ```
//!
//! The macro's argument is an expression evaluating to a future of a [`TestStore`]; it is
//! evaluated once per test. Tests run on a multi-threaded tokio runtime.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use crate::{
    Compare, CompareOp, CompareTarget, EventKind, KeyValue, Op, OpResult, RangeRequest,
    RangeResponse, Revision, Store, StoreError, Txn, WatchEvent, WatchStream,
};

/// A store under test, with whatever must live as long as it (a temporary directory, a
/// server process guard, ...).
pub struct TestStore {
    // Fields drop in order: the store goes before its guard (e.g. its directory).
    store: Arc<dyn Store>,
    _guard: Option<Box<dyn Any + Send + Sync>>,
}

impl TestStore {
    pub fn new(store: impl Store) -> Self {
        TestStore {
            store: Arc::new(store),
            _guard: None,
        }
    }

    /// A store that needs `guard` kept alive (dropped after the store).
    pub fn with_guard(store: impl Store, guard: impl Any + Send + Sync) -> Self {
        TestStore {
            store: Arc::new(store),
            _guard: Some(Box::new(guard)),
        }
    }

    /// A shared handle, for spawned tasks.
    pub fn shared(&self) -> Arc<dyn Store> {
        self.store.clone()
    }
}

impl Deref for TestStore {
    type Target = dyn Store;

    fn deref(&self) -> &Self::Target {
        &*self.store
    }
}

/// Generates one `#[tokio::test]` per conformance case, each calling the case with a store made
/// by `$make` (an expression evaluating to a future of a [`TestStore`]).
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@cases $make;
            revision_per_write,
            key_metadata,
            compare_version,
            compare_create_revision,
            compare_mod_revision,
            compare_value,
            compare_missing_key,
            txn_branches,
            txn_results,
            delete_prefix,
            range_prefix_order,
            range_pagination,
            helpers,
            watch_from_now,
            watch_from_old_revision,
            watch_prefix_filter,
            watch_txn_event_order,
            watch_delete_events,
            compaction,
            future_revision,
            watch_from_next_revision_under_writes,
            invalid_requests,
            concurrent_cas_increments,
            concurrent_watchers_see_every_revision,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                $crate::conformance::$case($make.await).await;
            }
        )*
    };
}

const WAIT: Duration = Duration::from_secs(20);

async fn rev(store: &TestStore) -> Revision {
    store.revision().await.expect("revision")
}

async fn next_event(stream: &mut WatchStream) -> WatchEvent {
    match tokio::time::timeout(WAIT, stream.next()).await {
        Ok(Some(Ok(event))) => event,
        Ok(Some(Err(e))) => panic!("watch failed: {e}"),
        Ok(None) => panic!("watch ended"),
        Err(_) => panic!("no watch event within {WAIT:?}"),
    }
}

async fn next_events(stream: &mut WatchStream, n: usize) -> Vec<WatchEvent> {
    let mut events = Vec::with_capacity(n);
    for _ in 0..n {
        events.push(next_event(stream).await);
    }
    events
}

async fn assert_quiet(stream: &mut WatchStream) {
    if let Ok(item) = tokio::time::timeout(Duration::from_millis(200), stream.next()).await {
        panic!("unexpected watch item: {item:?}");
    }
}

fn summary(events: &[WatchEvent]) -> Vec<(EventKind, String, Revision)> {
    events
        .iter()
        .map(|e| (e.kind, e.kv.key.clone(), e.kv.mod_revision))
        .collect()
}

fn compare(key: &str, op: CompareOp, target: CompareTarget) -> Compare {
    Compare {
        key: key.into(),
        op,
        target,
    }
}

/// Whether the single compare holds, checked through a transaction.
/// Checks each `(operator, target, expected)` compare on key "k"; `what` names the compared
/// field in failure messages.
async fn check_compares<T: Copy + std::fmt::Display>(
    store: &TestStore,
    what: &str,
    target: impl Fn(T) -> CompareTarget,
    cases: &[(CompareOp, T, bool)],
) {
    for &(op, t, expected) in cases {
        assert_eq!(
            holds(store, compare("k", op, target(t))).await,
            expected,
            "{what} {op:?} {t}"
        );
    }
}

async fn holds(store: &TestStore, c: Compare) -> bool {
    let before = rev(store).await;
    let response = store
        .txn(Txn::new().when(c).and_then(Op::get("any")))
        .await
        .expect("txn");
    assert_eq!(response.revision, before, "a read-only txn took a revision");
    response.succeeded
}

/// Every writing transaction takes exactly one new revision; reads, failed compares with an
/// empty branch and deletes of missing keys take none.
pub async fn revision_per_write(store: TestStore) {
    let base = rev(&store).await;
    assert_eq!(store.put("a", b"1".to_vec()).await.unwrap(), base + 1);
    assert_eq!(rev(&store).await, base + 1);
    store.get("a").await.unwrap();
    store.range(RangeRequest::prefix("")).await.unwrap();
    assert_eq!(rev(&store).await, base + 1);
    // Several writes in one transaction: one revision.
    let response = store
        .txn(
            Txn::new()
                .and_then(Op::put("b", "2"))
                .and_then(Op::put("c", "3"))
                .and_then(Op::delete("a")),
        )
        .await
        .unwrap();
    assert_eq!(response.revision, base + 2);
    assert_eq!(rev(&store).await, base + 2);
    // No-op delete.
    assert!(!store.delete("missing").await.unwrap());
    let response = store
        .txn(Txn::new().and_then(Op::DeletePrefix {
            prefix: "zzz/".into(),
        }))
        .await
        .unwrap();
    assert_eq!(response.revision, base + 2);
    // Failed compare, empty failure branch.
    let response = store
        .txn(
            Txn::new()
                .when(Compare::exists("missing"))
                .and_then(Op::put("x", "1")),
        )
        .await
        .unwrap();
    assert!(!response.succeeded);
    assert_eq!(response.revision, base + 2);
    assert_eq!(rev(&store).await, base + 2);
    // Rewriting the same value still writes.
    assert_eq!(store.put("b", b"2".to_vec()).await.unwrap(), base + 3);
    // The range response reports the revision it saw.
    let range = store.range(RangeRequest::prefix("")).await.unwrap();
    assert_eq!(range.revision, base + 3);
}

/// create_revision, mod_revision and version follow etcd's rules across put, put, delete, put.
pub async fn key_metadata(store: TestStore) {
    let base = rev(&store).await;
    store.put("k", b"1".to_vec()).await.unwrap();
    let kv = store.get("k").await.unwrap().unwrap();
    assert_eq!(
        kv,
        KeyValue {
            key: "k".into(),
            value: b"1".to_vec(),
            create_revision: base + 1,
            mod_revision: base + 1,
            version: 1,
        }
    );
    store.put("other", b"x".to_vec()).await.unwrap();
    store.put("k", b"2".to_vec()).await.unwrap();
    let kv = store.get("k").await.unwrap().unwrap();
    assert_eq!(
        (kv.create_revision, kv.mod_revision, kv.version, kv.value),
        (base + 1, base + 3, 2, b"2".to_vec())
    );
    assert!(store.delete("k").await.unwrap());
    assert_eq!(store.get("k").await.unwrap(), None);
    store.put("k", b"3".to_vec()).await.unwrap();
    let kv = store.get("k").await.unwrap().unwrap();
    assert_eq!(
        (kv.create_revision, kv.mod_revision, kv.version),
        (base + 5, base + 5, 1)
    );
}

/// Version compares with each operator, on an existing key (version 2).
pub async fn compare_version(store: TestStore) {
    store.put("k", b"a".to_vec()).await.unwrap();
    store.put("k", b"b".to_vec()).await.unwrap();
    let cases = number_cases(2);
    check_compares(&store, "version", CompareTarget::Version, &cases).await;
}

/// Create-revision compares with each operator.
pub async fn compare_create_revision(store: TestStore) {
    let created = store.put("k", b"a".to_vec()).await.unwrap();
    store.put("k", b"b".to_vec()).await.unwrap();
    let cases = number_cases(created);
    check_compares(
        &store,
        "create_revision",
        CompareTarget::CreateRevision,
        &cases,
    )
    .await;
}

/// Mod-revision compares with each operator.
pub async fn compare_mod_revision(store: TestStore) {
    store.put("k", b"a".to_vec()).await.unwrap();
    let modified = store.put("k", b"b".to_vec()).await.unwrap();
    let cases = number_cases(modified);
    check_compares(&store, "mod_revision", CompareTarget::ModRevision, &cases).await;
}

/// Each operator against a numeric field whose value is `n`, both ways: `(op, target,
/// whether "field op target" holds)`.
fn number_cases(n: i64) -> [(CompareOp, i64, bool); 8] {
    use CompareOp::*;
    [
        (Equal, n, true),
        (Equal, n + 1, false),
        (NotEqual, n + 1, true),
        (NotEqual, n, false),
        (Greater, n - 1, true),
        (Greater, n, false),
        (Less, n + 1, true),
        (Less, n, false),
    ]
}

/// Value compares (byte-wise) with each operator.
pub async fn compare_value(store: TestStore) {
    store.put("k", b"m".to_vec()).await.unwrap();
    use CompareOp::*;
    let val = |v: &str| CompareTarget::Value(v.as_bytes().to_vec());
    check_compares(
        &store,
        "value",
        val,
        &[
            (Equal, "m", true),
            (Equal, "n", false),
            (NotEqual, "n", true),
            (NotEqual, "m", false),
            (Greater, "a", true),
            (Greater, "m", false),
            (Greater, "ma", false),
            (Less, "z", true),
            (Less, "ma", true),
            (Less, "m", false),
        ],
    )
    .await;
}

/// A missing key has version, create and mod revision 0, and no value.
pub async fn compare_missing_key(store: TestStore) {
    use CompareOp::*;
    assert!(holds(&store, Compare::missing("nope")).await);
    assert!(!holds(&store, Compare::exists("nope")).await);
    assert!(
        holds(
            &store,
            compare("nope", Equal, CompareTarget::CreateRevision(0))
        )
        .await
    );
    assert!(
        holds(
            &store,
            compare("nope", Equal, CompareTarget::ModRevision(0))
        )
        .await
    );
    assert!(holds(&store, compare("nope", Less, CompareTarget::ModRevision(1))).await);
    assert!(!holds(&store, compare("nope", Equal, CompareTarget::Value(vec![]))).await);
    assert!(
        holds(
            &store,
            compare("nope", NotEqual, CompareTarget::Value(vec![]))
        )
        .await
    );
    store.put("k", b"v".to_vec()).await.unwrap();
    assert!(!holds(&store, Compare::missing("k")).await);
    assert!(holds(&store, Compare::exists("k")).await);
}

/// The success branch runs when every compare holds, the failure branch otherwise; only the
/// chosen branch's ops apply.
pub async fn txn_branches(store: TestStore) {
    let base = rev(&store).await;
    store.put("a", b"1".to_vec()).await.unwrap();
    let both = |a_version: i64| {
        Txn::new()
            .when(compare(
                "a",
                CompareOp::Equal,
                CompareTarget::Version(a_version),
            ))
            .when(Compare::missing("b"))
            .and_then(Op::put("b", "from-success"))
            .or_else(Op::put("c", "from-failure"))
    };
    // Second compare fails? No: both hold.
    let response = store.txn(both(1)).await.unwrap();
    assert!(response.succeeded);
    assert_eq!(response.revision, base + 2);
    assert_eq!(
        store.get("b").await.unwrap().unwrap().value,
        b"from-success"
    );
    assert_eq!(store.get("c").await.unwrap(), None);
    // Now "b" exists: the second compare fails, the failure branch runs and writes.
    let response = store.txn(both(1)).await.unwrap();
    assert!(!response.succeeded);
    assert_eq!(response.revision, base + 3);
    assert_eq!(
        store.get("c").await.unwrap().unwrap().value,
        b"from-failure"
    );
    assert_eq!(store.get("b").await.unwrap().unwrap().version, 1);
    // First compare fails.
    let response = store
        .txn(
            Txn::new()
                .when(compare("a", CompareOp::Equal, CompareTarget::Version(9)))
                .and_then(Op::delete("a"))
                .or_else(Op::get("a")),
        )
        .await
        .unwrap();
    assert!(!response.succeeded);
    assert_eq!(response.revision, base + 3);
    assert!(store.get("a").await.unwrap().is_some());
    // No compares: success runs.
    let response = store
        .txn(Txn::new().and_then(Op::delete("a")))
        .await
        .unwrap();
    assert!(response.succeeded);
    assert_eq!(store.get("a").await.unwrap(), None);
}

/// Op results come in op order: previous values of puts, deleted values, reads that see the
/// transaction's earlier writes.
pub async fn txn_results(store: TestStore) {
    let base = rev(&store).await;
    store.put("a", b"old".to_vec()).await.unwrap();
    store.put("d", b"gone".to_vec()).await.unwrap();
    let response = store
        .txn(
            Txn::new()
                .and_then(Op::put("a", "new"))
                .and_then(Op::put("b", "fresh"))
                .and_then(Op::delete("d"))
                .and_then(Op::get("a"))
                .and_then(Op::get("d"))
                .and_then(Op::get("nope")),
        )
        .await
        .unwrap();
    assert_eq!(response.revision, base + 3);
    let r = &response.results;
    assert_eq!(r.len(), 6);
    match &r[0] {
        OpResult::Put { prev: Some(prev) } => {
            assert_eq!(
                (prev.value.as_slice(), prev.mod_revision),
                (&b"old"[..], base + 1)
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(r[1], OpResult::Put { prev: None });
    match &r[2] {
        OpResult::Delete { deleted } => {
            assert_eq!(deleted.len(), 1);
            assert_eq!(
                (deleted[0].key.as_str(), deleted[0].value.as_slice()),
                ("d", &b"gone"[..])
            );
        }
        other => panic!("{other:?}"),
    }
    match &r[3] {
        OpResult::Get { kv: Some(kv) } => {
            assert_eq!(
                (kv.value.as_slice(), kv.mod_revision, kv.version),
                (&b"new"[..], base + 3, 2)
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(r[4], OpResult::Get { kv: None });
    assert_eq!(r[5], OpResult::Get { kv: None });
    // A read-only transaction reports the current revision.
    let response = store.txn(Txn::new().and_then(Op::get("b"))).await.unwrap();
    assert_eq!(response.revision, base + 3);
    assert!(matches!(&response.results[0], OpResult::Get { kv: Some(kv) } if kv.value == b"fresh"));
}

/// DeletePrefix removes exactly the keys under the prefix, in one revision, reported in key
/// order.
pub async fn delete_prefix(store: TestStore) {
    for key in ["t/1", "t/3", "t/2", "t", "u/1", "t0"] {
        store.put(key, key.as_bytes().to_vec()).await.unwrap();
    }
    let base = rev(&store).await;
    let response = store
        .txn(Txn::new().and_then(Op::DeletePrefix {
            prefix: "t/".into(),
        }))
        .await
        .unwrap();
    assert_eq!(response.revision, base + 1);
    match &response.results[0] {
        OpResult::Delete { deleted } => {
            let keys: Vec<&str> = deleted.iter().map(|kv| kv.key.as_str()).collect();
            assert_eq!(keys, ["t/1", "t/2", "t/3"]);
            assert_eq!(deleted[1].value, b"t/2");
        }
        other => panic!("{other:?}"),
    }
    let left = all_keys(&store).await;
    assert_eq!(left, ["t", "t0", "u/1"]);
    // Nothing left under the prefix: no revision.
    let response = store
        .txn(Txn::new().and_then(Op::DeletePrefix {
            prefix: "t/".into(),
        }))
        .await
        .unwrap();
    assert_eq!(response.revision, base + 1);
}

/// Ranges return the keys under a prefix in byte order, with the values and metadata.
pub async fn range_prefix_order(store: TestStore) {
    for key in [
        "b/2", "a/1", "b/10", "b/1", "b", "b/", "c/1", "b0", "b/\u{e9}",
    ] {
        store
            .put(key, format!("v-{key}").into_bytes())
            .await
            .unwrap();
    }
    let keys = |kvs: &[KeyValue]| kvs.iter().map(|kv| kv.key.clone()).collect::<Vec<_>>();
    let response = store.range(RangeRequest::prefix("b/")).await.unwrap();
    assert_eq!(
        keys(&response.kvs),
        ["b/", "b/1", "b/10", "b/2", "b/\u{e9}"]
    );
    assert!(!response.more);
    assert_eq!(response.kvs[2].value, b"v-b/10");
    assert_eq!(response.kvs[2].version, 1);
    let all = store.range(RangeRequest::prefix("")).await.unwrap();
    assert_eq!(all.kvs.len(), 9);
    let mut sorted = keys(&all.kvs);
    sorted.sort();
    assert_eq!(keys(&all.kvs), sorted);
    assert!(store
        .range(RangeRequest::prefix("zz"))
        .await
        .unwrap()
        .kvs
        .is_empty());
    // An exact key is a prefix too.
    let response = store.range(RangeRequest::prefix("c/1")).await.unwrap();
    assert_eq!(keys(&response.kvs), ["c/1"]);
}

/// One page of the keys under "p/".
async fn page(store: &TestStore, start_after: Option<&str>, limit: Option<usize>) -> RangeResponse {
    store
        .range(RangeRequest {
            prefix: "p/".into(),
            start_after: start_after.map(Into::into),
            limit,
        })
        .await
        .unwrap()
}

/// Every key in the store, in order.
async fn all_keys(store: &TestStore) -> Vec<String> {
    let all = store.range(RangeRequest::prefix("")).await.unwrap();
    all.kvs.into_iter().map(|kv| kv.key).collect()
}

/// Pagination with `limit` and `start_after` walks every key once; `more` tells whether
/// keys remain.
pub async fn range_pagination(store: TestStore) {
    for i in 0..25 {
        store
            .put(&format!("p/{i:03}"), vec![i as u8])
            .await
            .unwrap();
    }
    store.put("q/000", vec![]).await.unwrap();
    store.put("o/999", vec![]).await.unwrap();
    let mut seen = Vec::new();
    let mut start_after = None;
    let mut pages = 0;
    loop {
        let response = page(&store, start_after.as_deref(), Some(10)).await;
        pages += 1;
        assert!(response.kvs.len() <= 10);
        seen.extend(response.kvs.iter().map(|kv| kv.key.clone()));
        start_after = response.kvs.last().map(|kv| kv.key.clone());
        if !response.more {
            break;
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..25).map(|i| format!("p/{i:03}")).collect();
    assert_eq!(seen, expected);
    // Exactly `limit` keys left: more is false.
    let response = page(&store, Some("p/014"), Some(10)).await;
    assert_eq!(response.kvs.len(), 10);
    assert!(!response.more);
    // start_after before the prefix starts at the prefix; after it, nothing.
    let response = page(&store, Some("a"), Some(1)).await;
    assert_eq!(response.kvs[0].key, "p/000");
    assert!(response.more);
    let response = page(&store, Some("p/024"), None).await;
    assert!(response.kvs.is_empty() && !response.more);
    // limit 0 returns nothing, and tells whether there is more.
    let response = page(&store, None, Some(0)).await;
    assert!(response.kvs.is_empty() && response.more);
}

/// The provided helpers: get, put, create, update (compare-and-swap), delete.
pub async fn helpers(store: TestStore) {
    let base = rev(&store).await;
    assert_eq!(store.get("k").await.unwrap(), None);
    assert_eq!(
        store.create("k", b"1".to_vec()).await.unwrap(),
        Some(base + 1)
    );
    assert_eq!(store.create("k", b"2".to_vec()).await.unwrap(), None);
    assert_eq!(store.get("k").await.unwrap().unwrap().value, b"1");
    assert_eq!(store.update("k", base, b"x".to_vec()).await.unwrap(), None);
    assert_eq!(
        store.update("k", base + 1, b"3".to_vec()).await.unwrap(),
        Some(base + 2)
    );
    // The old mod revision no longer matches.
    assert_eq!(
        store.update("k", base + 1, b"4".to_vec()).await.unwrap(),
        None
    );
    // update of a missing key with mod revision 0 creates it (etcd's semantics).
    assert_eq!(
        store.update("new", 0, b"n".to_vec()).await.unwrap(),
        Some(base + 3)
    );
    assert_eq!(store.put("k", b"5".to_vec()).await.unwrap(), base + 4);
    assert!(store.delete("k").await.unwrap());
    assert!(!store.delete("k").await.unwrap());
    assert_eq!(rev(&store).await, base + 5);
}

/// A watch from 0 sees only writes after it was created, in order, and put events carry the
/// previous value.
pub async fn watch_from_now(store: TestStore) {
    store.put("a", b"before".to_vec()).await.unwrap();
    let base = rev(&store).await;
    let mut watch = store.watch("", 0).await.unwrap();
    store.put("a", b"after".to_vec()).await.unwrap();
    store.put("b", b"1".to_vec()).await.unwrap();
    let events = next_events(&mut watch, 2).await;
    assert_eq!(
        summary(&events),
        [
            (EventKind::Put, "a".into(), base + 1),
            (EventKind::Put, "b".into(), base + 2)
        ]
    );
    assert_eq!(events[0].kv.value, b"after");
    assert_eq!(events[0].kv.version, 2);
    assert_eq!(events[0].revision(), base + 1);
    let prev = events[0].prev_kv.as_ref().expect("prev_kv");
    assert_eq!((prev.value.as_slice(), prev.version), (&b"before"[..], 1));
    assert_eq!(events[1].prev_kv, None);
    assert_quiet(&mut watch).await;
}

/// A watch from an old revision replays the history from it, then goes on with live
/// writes, without gap or duplicate.
pub async fn watch_from_old_revision(store: TestStore) {
    let base = rev(&store).await;
    for i in 1..=5 {
        store.put(&format!("k{i}"), vec![i]).await.unwrap();
    }
    let mut watch = store.watch("", base + 3).await.unwrap();
    let events = next_events(&mut watch, 3).await;
    assert_eq!(
        summary(&events),
        [
            (EventKind::Put, "k3".into(), base + 3),
            (EventKind::Put, "k4".into(), base + 4),
            (EventKind::Put, "k5".into(), base + 5)
        ]
    );
    store.put("k6", vec![6]).await.unwrap();
    let event = next_event(&mut watch).await;
    assert_eq!(event.revision(), base + 6);
    assert_quiet(&mut watch).await;
    // From the first revision: everything.
    let mut all = store.watch("", base + 1).await.unwrap();
    let events = next_events(&mut all, 6).await;
    let revisions: Vec<Revision> = events.iter().map(|e| e.revision()).collect();
    assert_eq!(revisions, (base + 1..=base + 6).collect::<Vec<_>>());
    assert_quiet(&mut all).await;
    // From the next revision (= from now).
    let mut next = store.watch("", base + 7).await.unwrap();
    store.put("k7", vec![7]).await.unwrap();
    assert_eq!(next_event(&mut next).await.revision(), base + 7);
}

/// A watch sees only the keys under its prefix, from history and live.
pub async fn watch_prefix_filter(store: TestStore) {
    let base = rev(&store).await;
    store.put("tasks/1", b"a".to_vec()).await.unwrap();
    store.put("clusters/1", b"b".to_vec()).await.unwrap();
    store.put("tasks", b"c".to_vec()).await.unwrap();
    let mut from_history = store.watch("tasks/", base + 1).await.unwrap();
    let mut live = store.watch("tasks/", 0).await.unwrap();
    store
        .txn(
            Txn::new()
                .and_then(Op::put("clusters/2", "x"))
                .and_then(Op::put("tasks/2", "y")),
        )
        .await
        .unwrap();
    store.put("tasks0", b"d".to_vec()).await.unwrap();
    store.delete("tasks/1").await.unwrap();
    let expected = [
        (EventKind::Put, "tasks/2".to_string(), base + 4),
        (EventKind::Delete, "tasks/1".to_string(), base + 6),
    ];
    let first = next_event(&mut from_history).await;
    assert_eq!(
        summary(&[first]),
        [(EventKind::Put, "tasks/1".into(), base + 1)]
    );
    assert_eq!(summary(&next_events(&mut from_history, 2).await), expected);
    assert_eq!(summary(&next_events(&mut live, 2).await), expected);
    assert_quiet(&mut from_history).await;
    assert_quiet(&mut live).await;
}

/// The events of one transaction share its revision and come in op order (a DeletePrefix's
/// keys in key order), both live and replayed.
pub async fn watch_txn_event_order(store: TestStore) {
    store.put("x/b", b"1".to_vec()).await.unwrap();
    store.put("x/a", b"1".to_vec()).await.unwrap();
    let base = rev(&store).await;
    let mut live = store.watch("", 0).await.unwrap();
    store
        .txn(
            Txn::new()
                .and_then(Op::put("z", "1"))
                .and_then(Op::DeletePrefix {
                    prefix: "x/".into(),
                })
                .and_then(Op::get("z"))
                .and_then(Op::put("m", "1")),
        )
        .await
        .unwrap();
    let expected = [
        (EventKind::Put, "z".to_string(), base + 1),
        (EventKind::Delete, "x/a".to_string(), base + 1),
        (EventKind::Delete, "x/b".to_string(), base + 1),
        (EventKind::Put, "m".to_string(), base + 1),
    ];
    assert_eq!(summary(&next_events(&mut live, 4).await), expected);
    let mut replay = store.watch("", base + 1).await.unwrap();
    assert_eq!(summary(&next_events(&mut replay, 4).await), expected);
    assert_quiet(&mut live).await;
    assert_quiet(&mut replay).await;
}

/// A delete event has the key, an empty value, version 0, the deleting revision, and the
/// deleted value as prev_kv.
pub async fn watch_delete_events(store: TestStore) {
    let created = store.put("k", b"v1".to_vec()).await.unwrap();
    store.put("k", b"v2".to_vec()).await.unwrap();
    let mut watch = store.watch("k", 0).await.unwrap();
    let deleted_at = store
        .txn(Txn::new().and_then(Op::delete("k")))
        .await
        .unwrap()
        .revision;
    let event = next_event(&mut watch).await;
    assert_eq!(event.kind, EventKind::Delete);
    assert_eq!(event.kv.key, "k");
    assert!(event.kv.value.is_empty());
    assert_eq!(event.kv.version, 0);
    assert_eq!(event.kv.mod_revision, deleted_at);
    assert_eq!(event.revision(), deleted_at);
    let prev = event.prev_kv.expect("prev_kv");
    assert_eq!(
        (prev.value.as_slice(), prev.create_revision, prev.version),
        (&b"v2"[..], created, 2)
    );
    // Replayed the same way.
    let mut replay = store.watch("k", deleted_at).await.unwrap();
    let replayed = next_event(&mut replay).await;
    assert_eq!(replayed.kind, EventKind::Delete);
    assert_eq!(replayed.kv.mod_revision, deleted_at);
    assert_eq!(replayed.prev_kv.unwrap().value, b"v2");
}

/// Compaction drops history before a revision: watches from before it fail with Compacted
/// naming it, watches from it replay; keys are untouched; compacting again lower is a no-op.
pub async fn compaction(store: TestStore) {
    let base = rev(&store).await;
    for i in 1..=5 {
        store.put(&format!("k{i}"), vec![i]).await.unwrap();
    }
    store.compact(base + 3).await.unwrap();
    match store.watch("", base + 2).await {
        Err(StoreError::Compacted {
            requested,
            compacted,
        }) => assert_eq!((requested, compacted), (base + 2, base + 3)),
        Err(e) => panic!("expected Compacted, got {e}"),
        Ok(_) => panic!("expected Compacted, got a stream"),
    }
    let mut watch = store.watch("", base + 3).await.unwrap();
    let revisions: Vec<Revision> = next_events(&mut watch, 3)
        .await
        .iter()
        .map(|e| e.revision())
        .collect();
    assert_eq!(revisions, [base + 3, base + 4, base + 5]);
    // Lower or equal compactions do nothing.
    store.compact(base + 1).await.unwrap();
    store.compact(base + 3).await.unwrap();
    assert!(store.watch("", base + 3).await.is_ok());
    // Compacting does not take a revision or touch keys.
    assert_eq!(rev(&store).await, base + 5);
    assert_eq!(
        store
            .range(RangeRequest::prefix("k"))
            .await
            .unwrap()
            .kvs
            .len(),
        5
    );
    assert_eq!(
        store.get("k1").await.unwrap().unwrap().mod_revision,
        base + 1
    );
    // Compact up to the current revision: only live and the last revision remain.
    store.compact(base + 5).await.unwrap();
    assert!(matches!(
        store.watch("", base + 4).await,
        Err(StoreError::Compacted { .. })
    ));
    let mut watch = store.watch("", 0).await.unwrap();
    store.put("k6", vec![6]).await.unwrap();
    assert_eq!(next_event(&mut watch).await.revision(), base + 6);
}

/// Watching or compacting beyond the current revision fails with FutureRevision.
pub async fn future_revision(store: TestStore) {
    store.put("a", b"1".to_vec()).await.unwrap();
    let current = rev(&store).await;
    match store.compact(current + 1).await {
        Err(StoreError::FutureRevision {
            requested,
            current: c,
        }) => {
            assert_eq!((requested, c), (current + 1, current))
        }
        other => panic!("expected FutureRevision, got {other:?}"),
    }
    match store.watch("", current + 2).await {
        Err(StoreError::FutureRevision {
            requested,
            current: c,
        }) => {
            assert_eq!((requested, c), (current + 2, current))
        }
        Err(e) => panic!("expected FutureRevision, got {e}"),
        Ok(_) => panic!("expected FutureRevision, got a stream"),
    }
    // Neither took a revision; the store still works.
    assert_eq!(rev(&store).await, current);
    assert_eq!(store.put("b", b"2".to_vec()).await.unwrap(), current + 1);
}

/// While writers run, a watch from `revision() + 1` is always accepted (never a spurious
/// FutureRevision) and its first event is exactly that revision.
pub async fn watch_from_next_revision_under_writes(store: TestStore) {
    let writer = {
        let store = store.shared();
        tokio::spawn(async move {
            for i in 0..150 {
                store
                    .put(&format!("w/{}", i % 10), vec![i as u8])
                    .await
                    .unwrap();
            }
        })
    };
    let mut checked = 0;
    while !writer.is_finished() && checked < 50 {
        let current = rev(&store).await;
        let mut watch = store
            .watch("", current + 1)
            .await
            .unwrap_or_else(|e| panic!("watch from {}: {e}", current + 1));
        if let Ok(Some(Ok(event))) =
            tokio::time::timeout(Duration::from_secs(2), watch.next()).await
        {
            assert_eq!(event.revision(), current + 1);
        }
        checked += 1;
    }
    writer.await.unwrap();
}

/// Malformed requests fail with InvalidRequest and change nothing.
pub async fn invalid_requests(store: TestStore) {
    store.put("a", b"1".to_vec()).await.unwrap();
    let base = rev(&store).await;
    let invalid = [
        Txn::new().and_then(Op::put("", "x")),
        Txn::new().and_then(Op::delete("")),
        Txn::new().and_then(Op::get("")),
        Txn::new()
            .when(Compare::missing(""))
            .and_then(Op::put("b", "x")),
        Txn::new()
            .and_then(Op::put("b", "1"))
            .and_then(Op::put("b", "2")),
        Txn::new()
            .and_then(Op::put("b", "1"))
            .and_then(Op::delete("b")),
        Txn::new()
            .and_then(Op::put("p/1", "1"))
            .and_then(Op::DeletePrefix {
                prefix: "p/".into(),
            }),
        // The branch not taken is checked too.
        Txn::new()
            .and_then(Op::put("c", "1"))
            .or_else(Op::put("d", "1"))
            .or_else(Op::put("d", "2")),
    ];
    for txn in invalid {
        match store.txn(txn.clone()).await {
            Err(StoreError::InvalidRequest(_)) => {}
            other => panic!("{txn:?}: expected InvalidRequest, got {other:?}"),
        }
    }
    assert!(matches!(
        store.put("", vec![]).await,
        Err(StoreError::InvalidRequest(_))
    ));
    assert!(matches!(
        store.get("").await,
        Err(StoreError::InvalidRequest(_))
    ));
    assert_eq!(rev(&store).await, base);
    let keys = all_keys(&store).await;
    assert_eq!(keys, ["a"]);
    // Writing one key in each branch is fine.
    store
        .txn(
            Txn::new()
                .and_then(Op::put("b", "1"))
                .or_else(Op::put("b", "2")),
        )
        .await
        .unwrap();
}

/// Many tasks increment one counter with get + update (compare-and-swap) retry loops: no
/// update is lost.
pub async fn concurrent_cas_increments(store: TestStore) {
    const TASKS: usize = 8;
    const INCREMENTS: usize = 25;
    store.put("counter", b"0".to_vec()).await.unwrap();
    let base = rev(&store).await;
    let mut handles = Vec::new();
    for _ in 0..TASKS {
        let store = store.shared();
        handles.push(tokio::spawn(async move {
            let mut conflicts = 0u64;
            for _ in 0..INCREMENTS {
                loop {
                    let kv = store.get("counter").await.unwrap().unwrap();
                    let n: u64 = std::str::from_utf8(&kv.value).unwrap().parse().unwrap();
                    let next = (n + 1).to_string().into_bytes();
                    if store
                        .update("counter", kv.mod_revision, next)
                        .await
                        .unwrap()
                        .is_some()
                    {
                        break;
                    }
                    conflicts += 1;
                }
            }
            conflicts
        }));
    }
    for handle in handles {
        handle.await.unwrap();
    }
    let kv = store.get("counter").await.unwrap().unwrap();
    let total = TASKS * INCREMENTS;
    assert_eq!(kv.value, total.to_string().into_bytes());
    assert_eq!(kv.version as usize, total + 1);
    // Failed compare-and-swaps took no revision.
    assert_eq!(rev(&store).await, base + total as Revision);
}

/// Watchers started before and during concurrent writes each see every revision exactly once,
/// in order, with all of each transaction's events.
pub async fn concurrent_watchers_see_every_revision(store: TestStore) {
    const WRITERS: usize = 4;
    const WRITES: usize = 30;
    let base = rev(&store).await;
    let everything = store.watch("", base + 1).await.unwrap();
    let only_a = store.watch("w/a/", 0).await.unwrap();
    let mut handles = Vec::new();
    for writer in 0..WRITERS {
        let store = store.shared();
        handles.push(tokio::spawn(async move {
            // (revision, number of events, whether it touched w/a/)
            let mut acknowledged = Vec::new();
            for i in 0..WRITES {
                let (txn, events, touches_a) = if i % 3 == 0 {
                    (
                        Txn::new()
                            .and_then(Op::put(format!("w/a/{writer}/{i}"), "1"))
                            .and_then(Op::put(format!("w/b/{writer}/{i}"), "1")),
                        2,
                        true,
                    )
                } else if writer % 2 == 0 {
                    (
                        Txn::new().and_then(Op::put(format!("w/a/{writer}"), i.to_string())),
                        1,
                        true,
                    )
                } else {
                    (
                        Txn::new().and_then(Op::put(format!("w/b/{writer}"), i.to_string())),
                        1,
                        false,
                    )
                };
                let response = store.txn(txn).await.unwrap();
                acknowledged.push((response.revision, events, touches_a));
            }
            acknowledged
        }));
    }
    // A watcher that joins in the middle, replaying history while writes go on.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let late = store.watch("", base + 1).await.unwrap();
    let mut acknowledged = BTreeMap::new();
    for handle in handles {
        for (revision, events, touches_a) in handle.await.unwrap() {
            assert!(
                acknowledged.insert(revision, (events, touches_a)).is_none(),
                "revision {revision} acknowledged twice"
            );
        }
    }
    let last = base + (WRITERS * WRITES) as Revision;
    assert_eq!(
        acknowledged.keys().copied().collect::<Vec<_>>(),
        (base + 1..=last).collect::<Vec<_>>()
    );

    async fn collect_until(
        mut stream: WatchStream,
        last: Revision,
        expected: usize,
    ) -> Vec<WatchEvent> {
        let mut events = Vec::new();
        while events.len() < expected {
            events.push(next_event(&mut stream).await);
        }
        assert_quiet(&mut stream).await;
        assert!(events.last().is_none_or(|e| e.revision() <= last));
        events
    }
    let total_events: usize = acknowledged.values().map(|(n, _)| n).sum();
    for stream in [everything, late] {
        let events = collect_until(stream, last, total_events).await;
        let mut per_revision: BTreeMap<Revision, usize> = BTreeMap::new();
        let mut previous = base;
        for event in &events {
            assert!(event.revision() >= previous, "events out of order");
            previous = event.revision();
            *per_revision.entry(event.revision()).or_default() += 1;
        }
        let expected: BTreeMap<Revision, usize> =
            acknowledged.iter().map(|(r, (n, _))| (*r, *n)).collect();
        assert_eq!(per_revision, expected);
    }
    let a_revisions: BTreeSet<Revision> = acknowledged
        .iter()
        .filter(|(_, (_, a))| *a)
        .map(|(r, _)| *r)
        .collect();
    let events = collect_until(only_a, last, a_revisions.len()).await;
    let seen: Vec<Revision> = events.iter().map(|e| e.revision()).collect();
    assert!(events.iter().all(|e| e.kv.key.starts_with("w/a/")));
    assert_eq!(seen, a_revisions.into_iter().collect::<Vec<_>>());
}
