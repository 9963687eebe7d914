//! Agent reports (SubmitTaskStateChange, SubmitContainerStateChange) over real HTTP: the
//! lifecycle never moves backwards, Berth's extensions show in DescribeTasks, repeated reports
//! change nothing and keep counts exact.

mod common;

use common::TestServer;
use serde_json::{json, Value};

/// Cluster `c`, one instance (1024 CPU, 1024 MiB), task definition `app` with containers
/// `app` (essential) and `side`, 100 CPU and 100 MiB each.
async fn setup(s: &TestServer) -> String {
    s.ok("CreateCluster", json!({"clusterName": "c"})).await;
    let i = s
        .ok(
            "RegisterContainerInstance",
            json!({"cluster": "c", "totalResources": [
                {"name": "CPU", "type": "INTEGER", "integerValue": 1024},
                {"name": "MEMORY", "type": "INTEGER", "integerValue": 1024}]}),
        )
        .await;
    s.ok(
        "RegisterTaskDefinition",
        json!({"family": "app", "containerDefinitions": [
            {"name": "app", "image": "busybox", "memory": 100, "cpu": 100},
            {"name": "side", "image": "busybox", "memory": 100, "cpu": 100, "essential": false}]}),
    )
    .await;
    i["containerInstance"]["containerInstanceArn"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn run(s: &TestServer, count: u32) -> Vec<String> {
    let r = s
        .ok(
            "RunTask",
            json!({"cluster": "c", "taskDefinition": "app", "count": count}),
        )
        .await;
    r["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["taskArn"].as_str().unwrap().to_owned())
        .collect()
}

async fn report(s: &TestServer, body: Value) -> Value {
    let mut body = body;
    body["cluster"] = json!("c");
    let r = s.ok("SubmitTaskStateChange", body).await;
    assert_eq!(r["acknowledgment"], "true");
    r
}

async fn describe(s: &TestServer, task: &str) -> Value {
    let d = s
        .ok("DescribeTasks", json!({"cluster": "c", "tasks": [task]}))
        .await;
    d["tasks"][0].clone()
}

fn container<'a>(t: &'a Value, name: &str) -> &'a Value {
    t["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap()
}

async fn counts(s: &TestServer, instance: &str) -> (Value, Value) {
    let c = s.ok("DescribeClusters", json!({"clusters": ["c"]})).await["clusters"][0].clone();
    let i = s
        .ok(
            "DescribeContainerInstances",
            json!({"cluster": "c", "containerInstances": [instance]}),
        )
        .await["containerInstances"][0]
        .clone();
    (c, i)
}

fn remaining(instance: &Value, name: &str) -> i64 {
    instance["remainingResources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap()["integerValue"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn reports_never_move_a_task_backwards() {
    let s = TestServer::start().await;
    let instance = setup(&s).await;
    let t = run(&s, 1).await.remove(0);
    let fresh = describe(&s, &t).await;
    assert!(fresh.get("connectivity").is_none());
    assert!(fresh.get("startedAt").is_none());

    report(&s, json!({"task": t, "status": "ACTIVATING"})).await;
    assert_eq!(describe(&s, &t).await["lastStatus"], "ACTIVATING");
    report(
        &s,
        json!({"task": t, "status": "RUNNING", "containers": [
        {"containerName": "app", "status": "RUNNING", "runtimeId": "r1"},
        {"containerName": "side", "status": "RUNNING"}]}),
    )
    .await;
    let d = describe(&s, &t).await;
    assert_eq!(d["lastStatus"], "RUNNING");
    assert_eq!(d["connectivity"], "CONNECTED");
    assert!(d["connectivityAt"].is_number());
    let started = d["startedAt"].clone();
    assert!(started.is_number());
    assert!(d.get("stoppingAt").is_none());
    let version = d["version"].clone();

    // Late and repeated reports are acknowledged and change nothing.
    report(
        &s,
        json!({"task": t, "status": "PENDING", "containers": [
        {"containerName": "app", "status": "PENDING"}]}),
    )
    .await;
    report(
        &s,
        json!({"task": t, "status": "RUNNING", "containers": [
        {"containerName": "app", "status": "RUNNING", "runtimeId": "r1"},
        {"containerName": "side", "status": "RUNNING"}]}),
    )
    .await;
    let d = describe(&s, &t).await;
    assert_eq!(d["lastStatus"], "RUNNING");
    assert_eq!(container(&d, "app")["lastStatus"], "RUNNING");
    assert_eq!(d["startedAt"], started);
    assert_eq!(d["version"], version, "a repeated report writes nothing");

    // A container does not go backwards either (a report without a task status).
    s.ok(
        "SubmitContainerStateChange",
        json!({"cluster": "c", "task": t, "containerName": "side", "status": "STOPPED", "exitCode": 0}),
    )
    .await;
    s.ok(
        "SubmitContainerStateChange",
        json!({"cluster": "c", "task": t, "containerName": "side", "status": "RUNNING"}),
    )
    .await;
    let d = describe(&s, &t).await;
    assert_eq!(container(&d, "side")["lastStatus"], "STOPPED");
    assert_eq!(container(&d, "side")["exitCode"], 0);
    assert_eq!(d["lastStatus"], "RUNNING");

    report(&s, json!({"task": t, "status": "STOPPING"})).await;
    let d = describe(&s, &t).await;
    assert_eq!(d["lastStatus"], "STOPPING");
    let stopping = d["stoppingAt"].clone();
    assert!(stopping.is_number());
    report(&s, json!({"task": t, "status": "RUNNING"})).await;
    assert_eq!(describe(&s, &t).await["lastStatus"], "STOPPING");
    let (c, i) = counts(&s, &instance).await;
    assert_eq!(
        (&c["runningTasksCount"], &c["pendingTasksCount"]),
        (&json!(1), &json!(0))
    );
    assert_eq!(i["runningTasksCount"], 1);

    report(&s, json!({"task": t, "status": "STOPPED", "executionStoppedAt": 1700000000.5,
                      "containers": [{"containerName": "app", "status": "STOPPED", "exitCode": 2}]}))
    .await;
    let d = describe(&s, &t).await;
    assert_eq!(d["lastStatus"], "STOPPED");
    assert_eq!(d["desiredStatus"], "STOPPED");
    assert_eq!(d["stoppingAt"], stopping);
    assert!(d["stoppedAt"].is_number());
    assert_eq!(d["executionStoppedAt"], 1700000000.5);
    assert_eq!(container(&d, "app")["exitCode"], 2);
    report(&s, json!({"task": t, "status": "RUNNING"})).await;
    report(&s, json!({"task": t, "status": "PROVISIONING"})).await;
    assert_eq!(describe(&s, &t).await["lastStatus"], "STOPPED");
    s.stop().await;
}

#[tokio::test]
async fn report_extensions_appear_in_describe_tasks() {
    let s = TestServer::start().await;
    setup(&s).await;
    let t = run(&s, 1).await.remove(0);
    let attachment = json!({"id": "eni-1", "type": "ElasticNetworkInterface", "status": "ATTACHED",
                            "details": [{"name": "privateIPv4Address", "value": "10.0.0.5"}]});
    let eni = json!({"attachmentId": "eni-1", "privateIpv4Address": "10.0.0.5"});
    report(
        &s,
        json!({"task": t, "status": "RUNNING", "healthStatus": "HEALTHY",
                      "taskAttachments": [attachment],
                      "containers": [{"containerName": "app", "status": "RUNNING",
                                      "healthStatus": "HEALTHY", "networkInterfaces": [eni]}]}),
    )
    .await;
    let d = describe(&s, &t).await;
    assert_eq!(d["healthStatus"], "HEALTHY");
    assert_eq!(d["attachments"], json!([attachment]));
    let app = container(&d, "app");
    assert_eq!(app["healthStatus"], "HEALTHY");
    assert_eq!(app["networkInterfaces"], json!([eni]));

    report(
        &s,
        json!({"task": t, "status": "RUNNING", "healthStatus": "UNHEALTHY",
                      "containers": [{"containerName": "app", "healthStatus": "UNHEALTHY"}]}),
    )
    .await;
    let d = describe(&s, &t).await;
    assert_eq!(d["healthStatus"], "UNHEALTHY");
    assert_eq!(container(&d, "app")["healthStatus"], "UNHEALTHY");

    // The agent's stop code and reason.
    report(
        &s,
        json!({"task": t, "status": "STOPPED", "stopCode": "TaskFailedToStart",
                      "reason": "CannotPullContainerError: no such image"}),
    )
    .await;
    let d = describe(&s, &t).await;
    assert_eq!(d["stopCode"], "TaskFailedToStart");
    assert_eq!(
        d["stoppedReason"],
        "CannotPullContainerError: no such image"
    );

    // Bad values are refused.
    for bad in [
        json!({"cluster": "c", "task": t, "status": "STOPPED", "stopCode": "Nope"}),
        json!({"cluster": "c", "task": t, "healthStatus": "GOOD"}),
        json!({"cluster": "c", "task": t, "taskAttachments": ["eni"]}),
        json!({"cluster": "c", "task": t, "status": "SLEEPING"}),
        json!({"cluster": "c", "task": t, "containers": [{"containerName": "app", "healthStatus": "OK"}]}),
        json!({"cluster": "c", "task": t, "containers": [{"containerName": "ghost"}]}),
    ] {
        s.err("SubmitTaskStateChange", bad, "InvalidParameterException")
            .await;
    }
    s.stop().await;
}

#[tokio::test]
async fn stop_codes() {
    let s = TestServer::start().await;
    setup(&s).await;
    let ts = run(&s, 3).await;
    for t in &ts {
        report(&s, json!({"task": t, "status": "RUNNING"})).await;
    }
    // Not stopped by StopTask, no stop code: the essential container exited.
    report(&s, json!({"task": ts[0], "status": "STOPPED"})).await;
    let d = describe(&s, &ts[0]).await;
    assert_eq!(d["stopCode"], "EssentialContainerExited");
    assert_eq!(d["stoppedReason"], "Essential container in task exited");

    // StopTask: UserInitiated stays whatever the agent then says.
    let stopped = s
        .ok("StopTask", json!({"cluster": "c", "task": ts[1]}))
        .await;
    assert_eq!(stopped["task"]["stopCode"], "UserInitiated");
    assert_eq!(stopped["task"]["stoppedReason"], "Task stopped by user");
    assert!(stopped["task"]["stoppingAt"].is_number());
    assert_eq!(stopped["task"]["lastStatus"], "RUNNING");
    report(
        &s,
        json!({"task": ts[1], "status": "STOPPED", "stopCode": "EssentialContainerExited",
                      "reason": "Essential container in task exited"}),
    )
    .await;
    let d = describe(&s, &ts[1]).await;
    assert_eq!(d["stopCode"], "UserInitiated");
    assert_eq!(d["stoppedReason"], "Task stopped by user");

    s.ok(
        "StopTask",
        json!({"cluster": "c", "task": ts[2], "reason": "deploy"}),
    )
    .await;
    report(&s, json!({"task": ts[2], "status": "STOPPED"})).await;
    let d = describe(&s, &ts[2]).await;
    assert_eq!(d["stopCode"], "UserInitiated");
    assert_eq!(d["stoppedReason"], "deploy");
    s.stop().await;
}

#[tokio::test]
async fn repeated_stopped_reports_keep_counts_exact() {
    let s = TestServer::start().await;
    let instance = setup(&s).await;
    let ts = run(&s, 3).await;
    for t in &ts {
        report(&s, json!({"task": t, "status": "RUNNING"})).await;
    }
    let stop = json!({"task": ts[0], "status": "STOPPED", "containers": [
        {"containerName": "app", "status": "STOPPED", "exitCode": 0},
        {"containerName": "side", "status": "STOPPED", "exitCode": 0}]});
    report(&s, stop.clone()).await;
    let version = describe(&s, &ts[0]).await["version"].clone();
    // Resent, also concurrently, also mixed with stale RUNNING reports.
    let mut calls = Vec::new();
    for i in 0..8 {
        let body = if i % 2 == 0 {
            stop.clone()
        } else {
            json!({"task": ts[0], "status": "RUNNING"})
        };
        calls.push(report(&s, body));
    }
    futures_util::future::join_all(calls).await;
    assert_eq!(describe(&s, &ts[0]).await["version"], version);

    let (c, i) = counts(&s, &instance).await;
    assert_eq!(c["runningTasksCount"], 2);
    assert_eq!(c["pendingTasksCount"], 0);
    assert_eq!(i["runningTasksCount"], 2);
    assert_eq!(i["pendingTasksCount"], 0);
    assert_eq!(remaining(&i, "CPU"), 1024 - 2 * 200);
    assert_eq!(remaining(&i, "MEMORY"), 1024 - 2 * 200);

    // StopTask on a stopped task changes nothing either.
    s.ok("StopTask", json!({"cluster": "c", "task": ts[0]}))
        .await;
    for t in &ts[1..] {
        report(&s, json!({"task": t, "status": "STOPPED"})).await;
        report(&s, json!({"task": t, "status": "STOPPED"})).await;
    }
    let (c, i) = counts(&s, &instance).await;
    assert_eq!(
        (&c["runningTasksCount"], &c["pendingTasksCount"]),
        (&json!(0), &json!(0))
    );
    assert_eq!(
        (&i["runningTasksCount"], &i["pendingTasksCount"]),
        (&json!(0), &json!(0))
    );
    assert_eq!(remaining(&i, "CPU"), 1024);
    assert_eq!(remaining(&i, "MEMORY"), 1024);
    s.stop().await;
}
