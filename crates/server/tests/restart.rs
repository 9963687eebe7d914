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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_runs_on_redb_keep_counts_exact() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(TestServer::with_store(open(dir.path()).await).await);
    s.ok("CreateCluster", json!({"clusterName": "p"})).await;
    s.ok(
        "RegisterTaskDefinition",
        json!({"family": "small", "containerDefinitions": [{"name": "a", "image": "x", "memory": 10, "cpu": 1}]}),
    )
    .await;
    let mut instances = Vec::new();
    for _ in 0..2 {
        let i = s
            .ok(
                "RegisterContainerInstance",
                json!({"cluster": "p", "totalResources": [
                    {"name": "CPU", "type": "INTEGER", "integerValue": 4096},
                    {"name": "MEMORY", "type": "INTEGER", "integerValue": 500}]}),
            )
            .await;
        instances.push(i["containerInstance"]["containerInstanceArn"].clone());
    }
    // Capacity is 100 tasks; 120 concurrent single-task runs race for it.
    let started = std::time::Instant::now();
    let mut handles = Vec::new();
    for _ in 0..120 {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            let r = s
                .ok(
                    "RunTask",
                    json!({"cluster": "p", "taskDefinition": "small"}),
                )
                .await;
            r["tasks"].as_array().unwrap().len()
        }));
    }
    let mut placed = 0;
    for h in handles {
        placed += h.await.unwrap();
    }
    eprintln!(
        "120 concurrent RunTask on RedbStore: {:?}",
        started.elapsed()
    );
    assert_eq!(placed, 100);
    let c = s.ok("DescribeClusters", json!({"clusters": ["p"]})).await;
    assert_eq!(c["clusters"][0]["pendingTasksCount"], 100);
    let d = s
        .ok(
            "DescribeContainerInstances",
            json!({"cluster": "p", "containerInstances": instances}),
        )
        .await;
    for i in d["containerInstances"].as_array().unwrap() {
        assert_eq!(i["pendingTasksCount"], 50);
        let mem = i["remainingResources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "MEMORY")
            .unwrap()["integerValue"]
            .clone();
        assert_eq!(mem, 0);
    }
    let mut listed = 0;
    let mut token: Option<serde_json::Value> = None;
    loop {
        let mut req = json!({"cluster": "p", "maxResults": 100});
        if let Some(t) = &token {
            req["nextToken"] = t.clone();
        }
        let l = s.ok("ListTasks", req).await;
        listed += l["taskArns"].as_array().unwrap().len();
        match l.get("nextToken") {
            Some(t) => token = Some(t.clone()),
            None => break,
        }
    }
    assert_eq!(listed, 100);
}
