//! The client against a real `berth_server` on 127.0.0.1:0 with authentication on: signed
//! calls succeed, ECS errors decode, wrong keys are refused.

use std::sync::Arc;

use berth_ecs_client::{Credentials, EcsClient};
use berth_server::{Auth, ServerConfig};
use serde_json::{json, Value};

struct Server {
    url: String,
    creds: Credentials,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

async fn server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = berth_auth::CredentialStore::load_or_create(dir.path()).unwrap();
    let creds = Credentials::from_shared_file(store.path(), "default").unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let config = ServerConfig {
        store: Arc::new(berth_store::MemoryStore::new()),
        account_id: "123456789012".into(),
        default_region: "us-east-1".into(),
        auth: Auth::Enabled(Arc::new(store)),
    };
    tokio::spawn(async move {
        let _ = berth_server::run(listener, config, async {
            let _ = rx.await;
        })
        .await;
    });
    Server {
        url,
        creds,
        _dir: dir,
        stop: Some(tx),
    }
}

#[tokio::test]
async fn signed_calls_succeed_and_take_the_region_from_the_client() {
    let s = server().await;
    let client = EcsClient::new(&s.url, "eu-west-3", Some(s.creds.clone())).unwrap();
    let created: Value = client
        .call("CreateCluster", &json!({"clusterName": "demo"}))
        .await
        .unwrap();
    assert_eq!(
        created["cluster"]["clusterArn"],
        "arn:aws:ecs:eu-west-3:123456789012:cluster/demo"
    );
    let listed: Value = client.call("ListClusters", &json!({})).await.unwrap();
    assert_eq!(listed["clusterArns"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn ecs_errors_carry_their_code() {
    let s = server().await;
    let client = EcsClient::new(&s.url, "us-east-1", Some(s.creds.clone())).unwrap();
    let err = client
        .call::<_, Value>("DeleteCluster", &json!({"cluster": "nope"}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ClusterNotFoundException"), "{err}");
}

#[tokio::test]
async fn unsigned_and_wrongly_signed_calls_are_refused() {
    let s = server().await;
    let unsigned = EcsClient::new(&s.url, "us-east-1", None).unwrap();
    let err = unsigned
        .call::<_, Value>("ListClusters", &json!({}))
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some("MissingAuthenticationTokenException"),
        "{err}"
    );
    let mut wrong = s.creds.clone();
    wrong.secret_access_key.push('x');
    let bad = EcsClient::new(&s.url, "us-east-1", Some(wrong)).unwrap();
    let err = bad
        .call::<_, Value>("ListClusters", &json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidSignatureException"), "{err}");
}

#[tokio::test]
async fn an_unreachable_server_is_a_retryable_transport_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let client = EcsClient::new(&url, "us-east-1", None).unwrap();
    let err = client
        .call::<_, Value>("ListClusters", &json!({}))
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
}
