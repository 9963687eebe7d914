//! Durable state: write through a server on a RedbStore, stop it, start a new one on the same
//! directory and read everything back (counts included).

mod common;

use std::sync::Arc;

use common::TestServer;
use serde_json::json;

async fn open(dir: &std::path::Path) -> Arc<dyn berth_store::Store> {
    Arc::new(berth_store::RedbStore::open(dir).unwrap())
}

#[tokio::test]
async fn state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::with_store(open(dir.path()).await).await;
    s.ok("CreateCluster", json!({"clusterName": "keep"})).await;
    s.ok(
        "RegisterTaskDefinition",
        json!({"family": "web", "containerDefinitions": [{"name": "web", "image": "nginx", "memory": 128}]}),
    )
    .await;
    let i = s
        .ok(
            "RegisterContainerInstance",
            json!({"cluster": "keep", "totalResources": [
                {"name": "CPU", "type": "INTEGER", "integerValue": 1024},
                {"name": "MEMORY", "type": "INTEGER", "integerValue": 1024}]}),
        )
        .await;
    let instance = i["containerInstance"]["containerInstanceArn"].clone();
    let run = s
        .ok(
            "RunTask",
            json!({"cluster": "keep", "taskDefinition": "web", "count": 2}),
        )
        .await;
    let arns: Vec<_> = run["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["taskArn"].clone())
        .collect();
    assert_eq!(arns.len(), 2);
    s.ok(
        "SubmitTaskStateChange",
        json!({"cluster": "keep", "task": arns[0], "status": "RUNNING"}),
    )
    .await;
    s.stop().await;

    let s = TestServer::with_store(open(dir.path()).await).await;
    let c = s
        .ok("DescribeClusters", json!({"clusters": ["keep"]}))
        .await;
    let c = &c["clusters"][0];
    assert_eq!(c["status"], "ACTIVE");
    assert_eq!(c["registeredContainerInstancesCount"], 1);
    assert_eq!(c["runningTasksCount"], 1);
    assert_eq!(c["pendingTasksCount"], 1);
    let d = s
        .ok("DescribeTasks", json!({"cluster": "keep", "tasks": arns}))
        .await;
    assert_eq!(d["tasks"].as_array().unwrap().len(), 2);
    assert_eq!(d["failures"], json!([]));
    let td = s
        .ok("DescribeTaskDefinition", json!({"taskDefinition": "web"}))
        .await;
    assert_eq!(td["taskDefinition"]["revision"], 1);
    let l = s
        .ok(
            "ListTasks",
            json!({"cluster": "keep", "containerInstance": instance}),
        )
        .await;
    assert_eq!(l["taskArns"].as_array().unwrap().len(), 2);
    // And it keeps working: a new revision continues the numbering.
    let r = s
        .ok(
            "RegisterTaskDefinition",
            json!({"family": "web", "containerDefinitions": [{"name": "web", "image": "nginx", "memory": 128}]}),
        )
        .await;
    assert_eq!(r["taskDefinition"]["revision"], 2);
    s.stop().await;
}
