//! The agent channel (`GET /v1/agent/watch`) over real HTTP: the snapshot, task and removed
//! events as RunTask/StopTask/reports happen, agentConnected following the open channels,
//! errors before the stream, SigV4, and shutdown with channels open.

mod common;

use std::sync::Arc;
use std::time::Duration;

use berth_server::Auth;
use common::{enc, TestServer, Watch};
use serde_json::{json, Value};

/// A cluster `c` with one instance; a task definition `web` (one container, host port 8080).
async fn setup(s: &TestServer) -> String {
    s.ok("CreateCluster", json!({"clusterName": "c"})).await;
    let arn = register(s).await;
    s.ok(
        "RegisterTaskDefinition",
        json!({"family": "web", "containerDefinitions": [
            {"name": "web", "image": "nginx", "memory": 64, "cpu": 10,
             "portMappings": [{"containerPort": 80, "hostPort": 8080}]}]}),
    )
    .await;
    s.ok(
        "RegisterTaskDefinition",
        json!({"family": "tiny", "containerDefinitions": [
            {"name": "app", "image": "busybox", "memory": 16}]}),
    )
    .await;
    arn
}

async fn register(s: &TestServer) -> String {
    let i = s
        .ok(
            "RegisterContainerInstance",
            json!({"cluster": "c", "totalResources": [
                {"name": "CPU", "type": "INTEGER", "integerValue": 4096},
                {"name": "MEMORY", "type": "INTEGER", "integerValue": 4096}]}),
        )
        .await;
    i["containerInstance"]["containerInstanceArn"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn query(instance: &str) -> String {
    format!("cluster=c&containerInstance={}", enc(instance))
}

async fn open(s: &TestServer, instance: &str) -> (Watch, Value) {
    let mut w = s.watch(&query(instance)).await;
    assert_eq!(w.status, 200);
    assert_eq!(w.headers["content-type"], "application/x-ndjson");
    let snapshot = w.expect(5).await;
    assert_eq!(snapshot["type"], "snapshot", "{snapshot}");
    (w, snapshot)
}

async fn agent_connected(s: &TestServer, instance: &str) -> bool {
    let d = s
        .ok(
            "DescribeContainerInstances",
            json!({"cluster": "c", "containerInstances": [instance]}),
        )
        .await;
    d["containerInstances"][0]["agentConnected"]
        .as_bool()
        .unwrap()
}

/// Waits up to 5 s for the instance's agentConnected to be `want`.
async fn wait_connected(s: &TestServer, instance: &str, want: bool) {
    for _ in 0..100 {
        if agent_connected(s, instance).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("agentConnected did not become {want}");
}

async fn run(s: &TestServer, family: &str, count: u32) -> Vec<String> {
    let r = s
        .ok(
            "RunTask",
            json!({"cluster": "c", "taskDefinition": family, "count": count}),
        )
        .await;
    assert_eq!(r["failures"], json!([]), "{r}");
    r["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["taskArn"].as_str().unwrap().to_owned())
        .collect()
}

async fn report(s: &TestServer, task: &str, status: &str) {
    s.ok(
        "SubmitTaskStateChange",
        json!({"cluster": "c", "task": task, "status": status}),
    )
    .await;
}

fn snapshot_arns(snapshot: &Value) -> Vec<String> {
    let mut arns: Vec<String> = snapshot["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["task"]["taskArn"].as_str().unwrap().to_owned())
        .collect();
    arns.sort();
    arns
}

#[tokio::test]
async fn channel_pushes_the_tasks_of_its_instance() {
    let s = TestServer::start().await;
    let instance = setup(&s).await;
    let (mut w, snapshot) = open(&s, &instance).await;
    assert_eq!(snapshot["tasks"], json!([]));
    let r0 = snapshot["revision"].as_i64().unwrap();
    assert!(r0 > 0);

    // RunTask: a task event with the definition and the host ports.
    let arn = run(&s, "web", 1).await.remove(0);
    let e = w.expect(5).await;
    assert_eq!(e["type"], "task", "{e}");
    let r1 = e["revision"].as_i64().unwrap();
    assert!(r1 > r0);
    let a = &e["assignment"];
    assert_eq!(a["cluster"], "c");
    assert_eq!(a["task"]["taskArn"], arn);
    assert_eq!(a["task"]["desiredStatus"], "RUNNING");
    assert_eq!(a["task"]["containerInstanceArn"], instance);
    assert_eq!(a["taskDefinition"]["family"], "web");
    assert_eq!(
        a["taskDefinition"]["containerDefinitions"][0]["image"],
        "nginx"
    );
    assert_eq!(
        a["hostPorts"],
        json!([{"containerName": "web", "containerPort": 80, "hostPort": 8080, "protocol": "tcp"}])
    );

    // StopTask while the agent listens: a task event with desiredStatus STOPPED; the task
    // waits for its agent's report.
    s.ok("StopTask", json!({"cluster": "c", "task": arn})).await;
    let e = w.expect(5).await;
    assert_eq!(e["type"], "task", "{e}");
    assert!(e["revision"].as_i64().unwrap() > r1);
    assert_eq!(e["assignment"]["task"]["desiredStatus"], "STOPPED");
    assert_eq!(e["assignment"]["task"]["stopCode"], "UserInitiated");
    let d = s
        .ok("DescribeTasks", json!({"cluster": "c", "tasks": [arn]}))
        .await;
    assert_eq!(d["tasks"][0]["lastStatus"], "PENDING");
    assert_eq!(d["tasks"][0]["stoppedReason"], "Task stopped by user");

    // The agent reports STOPPED: removed.
    report(&s, &arn, "STOPPED").await;
    let e = w.expect(5).await;
    assert_eq!(
        e,
        json!({"type": "removed", "revision": e["revision"], "taskArn": arn})
    );
    let d = s
        .ok("DescribeTasks", json!({"cluster": "c", "tasks": [arn]}))
        .await;
    assert_eq!(d["tasks"][0]["lastStatus"], "STOPPED");
    assert_eq!(d["tasks"][0]["stopCode"], "UserInitiated");

    // Tasks of another instance are not on this channel.
    let other = register(&s).await;
    s.ok(
        "StartTask",
        json!({"cluster": "c", "taskDefinition": "tiny", "containerInstances": [other]}),
    )
    .await;
    let mine = s
        .ok(
            "StartTask",
            json!({"cluster": "c", "taskDefinition": "tiny", "containerInstances": [instance]}),
        )
        .await;
    let e = w.expect(5).await;
    assert_eq!(e["type"], "task");
    let mine = mine["tasks"][0]["taskArn"].clone();
    assert_eq!(e["assignment"]["task"]["taskArn"], mine);
    assert_eq!(e["assignment"]["hostPorts"], json!([]));

    // A forced deregistration stops the instance's tasks: removed.
    s.ok(
        "DeregisterContainerInstance",
        json!({"cluster": "c", "containerInstance": instance, "force": true}),
    )
    .await;
    let e = w.expect(5).await;
    assert_eq!(e["type"], "removed", "{e}");
    assert_eq!(e["taskArn"], mine);
    s.stop().await;
}

#[tokio::test]
async fn snapshot_lists_exactly_the_tasks_not_stopped() {
    let s = TestServer::start().await;
    let instance = setup(&s).await;
    let arns = run(&s, "tiny", 5).await;
    report(&s, &arns[0], "RUNNING").await;
    // Reported on, then stopped while no channel is open: listed with desiredStatus STOPPED.
    report(&s, &arns[4], "RUNNING").await;
    s.ok("StopTask", json!({"cluster": "c", "task": arns[4]}))
        .await;
    report(&s, &arns[1], "STOPPED").await;
    // Stopped without ever being reported (no channel open): STOPPED at once.
    s.ok("StopTask", json!({"cluster": "c", "task": arns[2]}))
        .await;
    let mut want = vec![arns[0].clone(), arns[3].clone(), arns[4].clone()];
    want.sort();

    let (w, snapshot) = open(&s, &instance).await;
    assert_eq!(snapshot_arns(&snapshot), want);
    let a = snapshot["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["task"]["taskArn"] == json!(arns[0]))
        .unwrap();
    assert_eq!(a["task"]["lastStatus"], "RUNNING");
    assert_eq!(a["taskDefinition"]["family"], "tiny");
    let stopping = snapshot["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["task"]["taskArn"] == json!(arns[4]))
        .unwrap();
    assert_eq!(stopping["task"]["desiredStatus"], "STOPPED");
    assert_eq!(stopping["task"]["lastStatus"], "RUNNING");
    drop(w);

    // A reconnect gets a fresh snapshot with what changed meanwhile.
    report(&s, &arns[3], "STOPPED").await;
    report(&s, &arns[4], "STOPPED").await;
    let (_w, snapshot) = open(&s, &instance).await;
    assert_eq!(snapshot_arns(&snapshot), vec![arns[0].clone()]);
    s.stop().await;
}

#[tokio::test]
async fn agent_connected_follows_the_open_channels() {
    let s = TestServer::start().await;
    let instance = setup(&s).await;
    // Registration says connected; the first channel to close says otherwise.
    assert!(agent_connected(&s, &instance).await);
    let (w1, _) = open(&s, &instance).await;
    let (w2, _) = open(&s, &instance).await;
    drop(w1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        agent_connected(&s, &instance).await,
        "one channel is still open"
    );
    drop(w2);
    wait_connected(&s, &instance, false).await;
    // Disconnected: nothing is placed on it.
    let r = s
        .ok("RunTask", json!({"cluster": "c", "taskDefinition": "tiny"}))
        .await;
    assert_eq!(r["tasks"], json!([]));
    // Connected again once a channel is open (by the time its snapshot arrives).
    let (w3, _) = open(&s, &instance).await;
    assert!(agent_connected(&s, &instance).await);
    run(&s, "tiny", 1).await;
    drop(w3);
    wait_connected(&s, &instance, false).await;
    s.stop().await;
}

#[tokio::test]
async fn channel_errors_come_before_the_stream() {
    let s = TestServer::start().await;
    let instance = setup(&s).await;
    let w = s
        .watch(&format!("cluster=nope&containerInstance={}", enc("abc")))
        .await;
    assert_eq!(w.status, 400);
    assert_eq!(w.code().await, "ClusterNotFoundException");
    let w = s.watch("cluster=c&containerInstance=0123abcd").await;
    assert_eq!(w.status, 400);
    assert_eq!(w.code().await, "InvalidParameterException");
    let w = s.watch("cluster=c").await;
    assert_eq!(w.status, 400);
    assert_eq!(w.code().await, "InvalidParameterException");
    let w = s
        .watch("cluster=c&containerInstance=arn%3Aaws%3Aecs%3Aus-east-1%3A123456789012%3Acontainer-instance%2Fother%2Fabc")
        .await;
    assert_eq!(w.status, 400);
    assert_eq!(w.code().await, "InvalidParameterException");
    let w = Watch::open(s.authority(), "POST", &query(&instance), None).await;
    assert_eq!(w.status, 400);
    assert_eq!(w.code().await, "UnknownOperationException");

    // A deregistered instance has no channel.
    s.ok(
        "DeregisterContainerInstance",
        json!({"cluster": "c", "containerInstance": instance}),
    )
    .await;
    let w = s.watch(&query(&instance)).await;
    assert_eq!(w.status, 400);
    let body = w.error().await;
    assert_eq!(body["__type"], "InvalidParameterException");
    assert!(body["message"].as_str().unwrap().contains("not registered"));
    s.stop().await;
}

#[tokio::test]
async fn channel_requests_are_signed() {
    let dir = tempfile::tempdir().unwrap();
    let (creds, _) = berth_auth::CredentialStore::load_or_create(dir.path()).unwrap();
    let pair = creds.profile("default").unwrap().clone();
    let (key, secret) = (pair.access_key_id.as_str(), pair.secret_access_key.as_str());
    let s = TestServer::with(
        Arc::new(berth_store::MemoryStore::new()),
        Auth::Enabled(Arc::new(creds)),
    )
    .await;
    let signed = s
        .signed(
            "CreateCluster",
            r#"{"clusterName": "c"}"#,
            key,
            secret,
            "us-east-1",
        )
        .await;
    assert_eq!(signed.status, 200);
    let r = s
        .signed(
            "RegisterContainerInstance",
            r#"{"cluster": "c"}"#,
            key,
            secret,
            "us-east-1",
        )
        .await;
    let instance = r.body["containerInstance"]["containerInstanceArn"]
        .as_str()
        .unwrap()
        .to_owned();
    let cluster_arn = "arn:aws:ecs:us-east-1:123456789012:cluster/c";
    // Both parameters ARNs: ':' and '/' percent-encoded in the signed query.
    let q = format!(
        "cluster={}&containerInstance={}",
        enc(cluster_arn),
        enc(&instance)
    );
    let mut w = s.watch_signed(&q, key, secret, "us-east-1").await;
    assert_eq!(w.status, 200);
    assert_eq!(w.expect(5).await["type"], "snapshot");

    let w = s.watch(&q).await;
    assert_eq!(w.status, 400);
    assert_eq!(w.code().await, "MissingAuthenticationTokenException");
    let w = s.watch_signed(&q, key, "wrong", "us-east-1").await;
    assert_eq!(w.status, 400);
    assert_eq!(w.code().await, "InvalidSignatureException");
    let w = s.watch_signed(&q, "AKIAUNKNOWN", secret, "us-east-1").await;
    assert_eq!(w.code().await, "UnrecognizedClientException");
    s.stop().await;
}

#[tokio::test]
async fn shutdown_ends_open_channels() {
    let s = TestServer::start().await;
    let instance = setup(&s).await;
    let (mut w, _) = open(&s, &instance).await;
    tokio::time::timeout(Duration::from_secs(10), s.stop())
        .await
        .expect("the server stops with a channel open");
    let end = tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .unwrap();
    assert_eq!(end, None);
}

/// The agent's client (berth-ecs-client) reads the channel: signed GET, ARNs in the query,
/// NDJSON lines decoded into `AgentEvent`s.
#[tokio::test]
async fn the_ecs_client_reads_the_channel() {
    use berth_api::shapes::AgentEvent;
    use berth_ecs_client::{Credentials, EcsClient};
    use futures_util::StreamExt;

    let dir = tempfile::tempdir().unwrap();
    let (creds, _) = berth_auth::CredentialStore::load_or_create(dir.path()).unwrap();
    let client_creds = Credentials::from_shared_file(creds.path(), "default").unwrap();
    let s = TestServer::with(
        Arc::new(berth_store::MemoryStore::new()),
        Auth::Enabled(Arc::new(creds)),
    )
    .await;
    let client = EcsClient::new(&s.url, "us-east-1", Some(client_creds)).unwrap();
    let _: Value = client
        .call("CreateCluster", &json!({"clusterName": "c"}))
        .await
        .unwrap();
    let r: Value = client
        .call("RegisterContainerInstance", &json!({"cluster": "c"}))
        .await
        .unwrap();
    let instance = r["containerInstance"]["containerInstanceArn"]
        .as_str()
        .unwrap()
        .to_owned();
    let _: Value = client
        .call(
            "RegisterTaskDefinition",
            &json!({"family": "tiny", "containerDefinitions": [
                {"name": "app", "image": "busybox", "memory": 16}]}),
        )
        .await
        .unwrap();
    let mut events = client
        .watch("arn:aws:ecs:us-east-1:123456789012:cluster/c", &instance)
        .await
        .unwrap();
    let next = |e: Option<Result<AgentEvent, _>>| e.expect("the channel ended").unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), events.next()).await;
    assert!(
        matches!(next(first.unwrap()), AgentEvent::Snapshot { ref tasks, .. } if tasks.is_empty())
    );
    let _: Value = client
        .call(
            "RunTask",
            &json!({"cluster": "c", "taskDefinition": "tiny"}),
        )
        .await
        .unwrap();
    let e = tokio::time::timeout(Duration::from_secs(5), events.next()).await;
    let AgentEvent::Task { assignment, .. } = next(e.unwrap()) else {
        panic!("not a task event");
    };
    assert_eq!(assignment.task_definition.family, "tiny");
    assert_eq!(assignment.task.desired_status, "RUNNING");
    let err = client.watch("c", "0123").await.err().unwrap();
    assert!(
        err.to_string().contains("InvalidParameterException"),
        "{err}"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_restart_clears_agent_connected_until_the_agent_reconnects() {
    let dir = tempfile::tempdir().unwrap();
    let open_store = || async {
        Arc::new(berth_store::RedbStore::open(dir.path()).unwrap()) as Arc<dyn berth_store::Store>
    };
    let s = TestServer::with_store(open_store().await).await;
    let instance = setup(&s).await;
    // A second instance registered through the API alone: no agent ever served it.
    let api_only = register(&s).await;
    let (w, _) = open(&s, &instance).await;
    assert!(agent_connected(&s, &instance).await);
    drop(w);
    s.stop().await;
    // A server killed while the channel was open leaves the record saying connected (a
    // graceful stop clears it): write it so.
    {
        let store = open_store().await;
        let id = instance.rsplit('/').next().unwrap();
        let key = format!("instances/c/{id}");
        let kv = store.get(&key).await.unwrap().unwrap();
        let mut rec: Value = serde_json::from_slice(&kv.value).unwrap();
        assert_eq!(rec["agent_channel"], true, "{rec}");
        assert_eq!(rec["instance"]["agentConnected"], false);
        rec["instance"]["agentConnected"] = json!(true);
        store
            .put(&key, serde_json::to_vec(&rec).unwrap())
            .await
            .unwrap();
    }

    let s = TestServer::with_store(open_store().await).await;
    // No channel is open in the new server: it says so without any agent's help.
    wait_connected(&s, &instance, false).await;
    assert!(
        agent_connected(&s, &api_only).await,
        "an instance registered through the API keeps what registration set"
    );
    // The agent reconnects.
    let (w, _) = open(&s, &instance).await;
    assert!(agent_connected(&s, &instance).await);
    drop(w);
    wait_connected(&s, &instance, false).await;
    s.stop().await;
}
