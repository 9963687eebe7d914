//! Smoke tests of the in-memory backend; the shared conformance suite covers the rest.

use berth_store::{Compare, EventKind, MemoryStore, Op, RangeRequest, Store, Txn};
use futures_util::StreamExt;

#[tokio::test]
async fn revisions_cas_and_watch() {
    let store = MemoryStore::new();
    assert_eq!(store.revision().await.unwrap(), 0);
    let r1 = store.put("a/1", b"x".to_vec()).await.unwrap();
    assert_eq!(r1, 1);
    assert_eq!(store.create("a/1", b"y".to_vec()).await.unwrap(), None);
    let kv = store.get("a/1").await.unwrap().unwrap();
    assert_eq!((kv.version, kv.create_revision, kv.mod_revision), (1, 1, 1));
    assert_eq!(store.update("a/1", 0, b"z".to_vec()).await.unwrap(), None);
    assert_eq!(
        store.update("a/1", 1, b"z".to_vec()).await.unwrap(),
        Some(2)
    );

    let mut watch = store.watch("a/", 1).await.unwrap();
    let response = store
        .txn(
            Txn::new()
                .when(Compare::exists("a/1"))
                .and_then(Op::put("a/2", "two"))
                .and_then(Op::delete("a/1")),
        )
        .await
        .unwrap();
    assert!(response.succeeded);
    assert_eq!(response.revision, 3);
    let kinds: Vec<_> = watch
        .by_ref()
        .take(4)
        .map(|e| {
            let e = e.unwrap();
            (e.kind, e.kv.key, e.kv.mod_revision)
        })
        .collect()
        .await;
    assert_eq!(
        kinds,
        vec![
            (EventKind::Put, "a/1".to_string(), 1),
            (EventKind::Put, "a/1".to_string(), 2),
            (EventKind::Put, "a/2".to_string(), 3),
            (EventKind::Delete, "a/1".to_string(), 3),
        ]
    );
    let page = store
        .range(RangeRequest {
            prefix: "a/".into(),
            start_after: None,
            limit: Some(1),
        })
        .await
        .unwrap();
    assert_eq!(page.kvs.len(), 1);
    assert!(!page.more);
}
