//! SigV4 at the edge: signed requests pass (and set the ARN region), unsigned and wrongly
//! signed ones get AWS's error codes.

mod common;

use std::sync::Arc;

use berth_server::Auth;
use common::TestServer;

#[tokio::test]
async fn signatures_are_verified() {
    let dir = tempfile::tempdir().unwrap();
    let (creds, created) = berth_auth::CredentialStore::load_or_create(dir.path()).unwrap();
    assert!(created);
    let pair = creds.profile("default").unwrap().clone();
    let s = TestServer::with(
        Arc::new(berth_store::MemoryStore::new()),
        Auth::Enabled(Arc::new(creds)),
    )
    .await;
    let ok = s
        .signed(
            "CreateCluster",
            r#"{"clusterName": "signed"}"#,
            &pair.access_key_id,
            &pair.secret_access_key,
            "ap-south-1",
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(
        ok.body["cluster"]["clusterArn"],
        "arn:aws:ecs:ap-south-1:123456789012:cluster/signed"
    );
    let unsigned = s
        .raw(
            Some("AmazonEC2ContainerServiceV20141113.ListClusters"),
            "{}",
        )
        .await;
    assert_eq!(unsigned.status, 400);
    assert_eq!(unsigned.code(), "MissingAuthenticationTokenException");
    assert!(unsigned.headers.contains_key("x-amzn-requestid"));
    let unknown = s
        .signed("ListClusters", "{}", "AKIAUNKNOWN", "secret", "us-east-1")
        .await;
    assert_eq!(unknown.code(), "UnrecognizedClientException");
    let wrong = s
        .signed(
            "ListClusters",
            "{}",
            &pair.access_key_id,
            "wrong-secret",
            "us-east-1",
        )
        .await;
    assert_eq!(wrong.code(), "InvalidSignatureException");
    s.stop().await;
}
