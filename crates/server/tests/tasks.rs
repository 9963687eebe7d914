//! Container instances, placement, the task lifecycle and exact counts over real HTTP.

mod common;

use common::TestServer;
use serde_json::{json, Value};

fn resources(cpu: i64, memory: i64) -> Value {
    json!([
        {"name": "CPU", "type": "INTEGER", "integerValue": cpu},
        {"name": "MEMORY", "type": "INTEGER", "integerValue": memory},
        {"name": "PORTS", "type": "STRINGSET", "stringSetValue": ["22"]},
        {"name": "PORTS_UDP", "type": "STRINGSET", "stringSetValue": []}
    ])
}

async fn setup(s: &TestServer) -> (String, String) {
    s.ok("CreateCluster", json!({"clusterName": "c"})).await;
    let i1 = s
        .ok(
            "RegisterContainerInstance",
            json!({"cluster": "c", "totalResources": resources(1024, 1024),
                   "attributes": [{"name": "stack", "value": "prod"}],
                   "versionInfo": {"agentVersion": "1.80.0"}}),
        )
        .await;
    let i2 = s
        .ok(
            "RegisterContainerInstance",
            json!({"cluster": "c", "totalResources": resources(2048, 512),
                   "instanceIdentityDocument": "{\"instanceId\": \"i-0abc\", \"availabilityZone\": \"us-east-1b\"}"}),
        )
        .await;
    s.ok(
        "RegisterTaskDefinition",
        json!({"family": "web", "containerDefinitions": [
            {"name": "web", "image": "nginx", "memory": 300, "cpu": 100,
             "portMappings": [{"containerPort": 80, "hostPort": 0}]}]}),
    )
    .await;
    (
        i1["containerInstance"]["containerInstanceArn"]
            .as_str()
            .unwrap()
            .to_owned(),
        i2["containerInstance"]["containerInstanceArn"]
            .as_str()
            .unwrap()
            .to_owned(),
    )
}

fn remaining(instance: &Value, name: &str) -> Value {
    instance["remainingResources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .cloned()
        .unwrap()
}

async fn cluster(s: &TestServer) -> Value {
    s.ok("DescribeClusters", json!({"clusters": ["c"]})).await["clusters"][0].clone()
}

#[tokio::test]
async fn instances() {
    let s = TestServer::start().await;
    let (i1, i2) = setup(&s).await;
    assert!(i1.starts_with("arn:aws:ecs:us-east-1:123456789012:container-instance/c/"));
    let c = cluster(&s).await;
    assert_eq!(c["registeredContainerInstancesCount"], 2);
    let d = s
        .ok(
            "DescribeContainerInstances",
            json!({"cluster": "c", "containerInstances": [i1, i2, "nope"]}),
        )
        .await;
    assert_eq!(d["containerInstances"].as_array().unwrap().len(), 2);
    assert_eq!(d["failures"][0]["reason"], "MISSING");
    let second = &d["containerInstances"][1];
    assert_eq!(second["ec2InstanceId"], "i-0abc");
    assert_eq!(remaining(second, "MEMORY")["integerValue"], 512);
    assert_eq!(second["status"], "ACTIVE");
    assert_eq!(second["agentConnected"], true);
    // Filters.
    let l = s
        .ok(
            "ListContainerInstances",
            json!({"cluster": "c", "filter": "attribute:stack == prod"}),
        )
        .await;
    assert_eq!(l["containerInstanceArns"], json!([i1]));
    let l = s
        .ok(
            "ListContainerInstances",
            json!({"cluster": "c", "filter": "attribute:ecs.availability-zone in [us-east-1b, us-east-1c]"}),
        )
        .await;
    assert_eq!(l["containerInstanceArns"], json!([i2]));
    let l = s
        .ok(
            "ListContainerInstances",
            json!({"cluster": "c", "filter": "agentVersion >= 1.70.0"}),
        )
        .await;
    assert_eq!(l["containerInstanceArns"], json!([i1]));
    s.err(
        "ListContainerInstances",
        json!({"cluster": "c", "filter": "attribute:stack =="}),
        "InvalidParameterException",
    )
    .await;
    s.err(
        "ListContainerInstances",
        json!({"cluster": "nope"}),
        "ClusterNotFoundException",
    )
    .await;
    let page = s
        .ok(
            "ListContainerInstances",
            json!({"cluster": "c", "maxResults": 1}),
        )
        .await;
    assert!(page["nextToken"].is_string());
    // Attributes.
    s.ok(
        "PutAttributes",
        json!({"cluster": "c", "attributes": [{"name": "gpu", "value": "yes", "targetId": i2}]}),
    )
    .await;
    let a = s
        .ok(
            "ListAttributes",
            json!({"cluster": "c", "targetType": "container-instance", "attributeName": "gpu"}),
        )
        .await;
    assert_eq!(a["attributes"][0]["targetId"], json!(i2));
    s.ok(
        "DeleteAttributes",
        json!({"cluster": "c", "attributes": [{"name": "gpu", "targetId": i2}]}),
    )
    .await;
    let a = s
        .ok(
            "ListAttributes",
            json!({"cluster": "c", "targetType": "container-instance", "attributeName": "gpu"}),
        )
        .await;
    assert_eq!(a["attributes"], json!([]));
    s.err(
        "PutAttributes",
        json!({"cluster": "c", "attributes": [{"name": "x", "targetId": "nope"}]}),
        "TargetNotFoundException",
    )
    .await;
    // State.
    let u = s
        .ok(
            "UpdateContainerInstancesState",
            json!({"cluster": "c", "containerInstances": [i1], "status": "DRAINING"}),
        )
        .await;
    assert_eq!(u["containerInstances"][0]["status"], "DRAINING");
    s.err(
        "UpdateContainerInstancesState",
        json!({"cluster": "c", "containerInstances": [i1], "status": "INACTIVE"}),
        "InvalidParameterException",
    )
    .await;
    let l = s
        .ok(
            "ListContainerInstances",
            json!({"cluster": "c", "status": "DRAINING"}),
        )
        .await;
    assert_eq!(l["containerInstanceArns"], json!([i1]));
    // Deregister; the cluster can be deleted once none remain.
    s.err(
        "DeleteCluster",
        json!({"cluster": "c"}),
        "ClusterContainsContainerInstancesException",
    )
    .await;
    let d = s
        .ok(
            "DeregisterContainerInstance",
            json!({"cluster": "c", "containerInstance": i1}),
        )
        .await;
    assert_eq!(d["containerInstance"]["status"], "INACTIVE");
    s.ok(
        "DeregisterContainerInstance",
        json!({"cluster": "c", "containerInstance": i2}),
    )
    .await;
    assert_eq!(cluster(&s).await["registeredContainerInstancesCount"], 0);
    s.ok("DeleteCluster", json!({"cluster": "c"})).await;
    s.stop().await;
}

#[tokio::test]
async fn run_task_places_and_counts() {
    let s = TestServer::start().await;
    let (i1, i2) = setup(&s).await;
    // 300 MiB each: 3 fit on i1 (1024), 1 on i2 (512); the 5th does not fit.
    let r = s
        .ok(
            "RunTask",
            json!({"cluster": "c", "taskDefinition": "web", "count": 5, "startedBy": "me",
                   "tags": [{"key": "a", "value": "b"}]}),
        )
        .await;
    let tasks = r["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 4);
    // One failure per instance, each with the instance's ARN.
    assert_eq!(r["failures"].as_array().unwrap().len(), 2);
    for f in r["failures"].as_array().unwrap() {
        assert_eq!(f["reason"], "RESOURCE:MEMORY");
        assert!(f["arn"] == json!(i1) || f["arn"] == json!(i2));
    }
    let t0 = &tasks[0];
    assert_eq!(t0["lastStatus"], "PENDING");
    assert_eq!(t0["desiredStatus"], "RUNNING");
    assert_eq!(t0["launchType"], "EC2");
    assert_eq!(t0["group"], "family:web");
    assert_eq!(t0["startedBy"], "me");
    assert_eq!(t0["overrides"]["containerOverrides"][0]["name"], "web");
    assert_eq!(t0["containers"][0]["lastStatus"], "PENDING");
    assert!(t0["createdAt"].is_number());
    assert!(t0["taskArn"]
        .as_str()
        .unwrap()
        .starts_with("arn:aws:ecs:us-east-1:123456789012:task/c/"));
    let c = cluster(&s).await;
    assert_eq!(c["pendingTasksCount"], 4);
    assert_eq!(c["runningTasksCount"], 0);
    let d = s
        .ok(
            "DescribeContainerInstances",
            json!({"cluster": "c", "containerInstances": [i1, i2]}),
        )
        .await;
    let on_i1 = tasks
        .iter()
        .filter(|t| t["containerInstanceArn"] == json!(i1))
        .count() as i64;
    let first = &d["containerInstances"][0];
    assert_eq!(first["pendingTasksCount"], on_i1);
    assert_eq!(
        remaining(first, "MEMORY")["integerValue"],
        1024 - 300 * on_i1
    );
    assert_eq!(remaining(first, "CPU")["integerValue"], 1024 - 100 * on_i1);
    let ports = remaining(first, "PORTS")["stringSetValue"]
        .as_array()
        .unwrap()
        .len() as i64;
    assert_eq!(ports, 1 + on_i1); // 22 plus one dynamic port per task

    // Limits and errors.
    s.err(
        "RunTask",
        json!({"cluster": "c", "taskDefinition": "web", "count": 11}),
        "InvalidParameterException",
    )
    .await;
    s.err(
        "RunTask",
        json!({"cluster": "nope", "taskDefinition": "web"}),
        "ClusterNotFoundException",
    )
    .await;
    s.err(
        "RunTask",
        json!({"cluster": "c", "taskDefinition": "ghost"}),
        "ClientException",
    )
    .await;
    s.err(
        "RunTask",
        json!({"cluster": "c", "taskDefinition": "web", "placementStrategy": [{"type": "binpack", "field": "disk"}]}),
        "InvalidParameterException",
    )
    .await;
    let none = s
        .ok(
            "RunTask",
            json!({"cluster": "c", "taskDefinition": "web",
                   "placementConstraints": [{"type": "memberOf", "expression": "attribute:stack == dev"}]}),
        )
        .await;
    assert_eq!(none["tasks"], json!([]));
    assert!(none["failures"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("MemberOf"));

    // Describe and list.
    let arns: Vec<Value> = tasks.iter().map(|t| t["taskArn"].clone()).collect();
    let mut ask = arns.clone();
    ask.push(json!("0123456789abcdef0123456789abcdef"));
    let d = s
        .ok(
            "DescribeTasks",
            json!({"cluster": "c", "tasks": ask, "include": ["TAGS"]}),
        )
        .await;
    assert_eq!(d["tasks"].as_array().unwrap().len(), 4);
    assert_eq!(d["tasks"][0]["tags"][0]["key"], "a");
    assert_eq!(d["failures"][0]["reason"], "MISSING");
    let plain = s
        .ok("DescribeTasks", json!({"cluster": "c", "tasks": [arns[0]]}))
        .await;
    assert!(plain["tasks"][0].get("tags").is_none());
    s.err(
        "DescribeTasks",
        json!({"cluster": "c", "tasks": vec!["x"; 101]}),
        "InvalidParameterException",
    )
    .await;
    s.err(
        "DescribeTasks",
        json!({"cluster": "c", "tasks": []}),
        "InvalidParameterException",
    )
    .await;
    s.err(
        "DescribeTasks",
        json!({"cluster": "nope", "tasks": ["x"]}),
        "ClusterNotFoundException",
    )
    .await;
    let l = s.ok("ListTasks", json!({"cluster": "c"})).await;
    assert_eq!(l["taskArns"].as_array().unwrap().len(), 4);
    let l = s
        .ok("ListTasks", json!({"cluster": "c", "maxResults": 3}))
        .await;
    assert_eq!(l["taskArns"].as_array().unwrap().len(), 3);
    let l2 = s
        .ok(
            "ListTasks",
            json!({"cluster": "c", "maxResults": 3, "nextToken": l["nextToken"]}),
        )
        .await;
    assert_eq!(l2["taskArns"].as_array().unwrap().len(), 1);
    let l = s
        .ok(
            "ListTasks",
            json!({"cluster": "c", "containerInstance": i2}),
        )
        .await;
    assert_eq!(l["taskArns"].as_array().unwrap().len() as i64, 4 - on_i1);
    let l = s
        .ok("ListTasks", json!({"cluster": "c", "family": "other"}))
        .await;
    assert_eq!(l["taskArns"], json!([]));
    let l = s
        .ok("ListTasks", json!({"cluster": "c", "startedBy": "me"}))
        .await;
    assert_eq!(l["taskArns"].as_array().unwrap().len(), 4);

    // Stop one that no agent reported on: it is STOPPED at once and its reservation released.
    let st = s
        .ok(
            "StopTask",
            json!({"cluster": "c", "task": arns[0], "reason": "done"}),
        )
        .await;
    assert_eq!(st["task"]["lastStatus"], "STOPPED");
    assert_eq!(st["task"]["desiredStatus"], "STOPPED");
    assert_eq!(st["task"]["stopCode"], "UserInitiated");
    assert_eq!(st["task"]["stoppedReason"], "done");
    assert_eq!(cluster(&s).await["pendingTasksCount"], 3);
    let stopped = s
        .ok(
            "ListTasks",
            json!({"cluster": "c", "desiredStatus": "STOPPED"}),
        )
        .await;
    assert_eq!(stopped["taskArns"], json!([arns[0]]));
    s.err(
        "StopTask",
        json!({"cluster": "c", "task": "nope"}),
        "InvalidParameterException",
    )
    .await;
    s.err(
        "DeleteCluster",
        json!({"cluster": "c"}),
        "ClusterContainsContainerInstancesException",
    )
    .await;

    // The agent reports: RUNNING, then STOPPED with an exit code.
    let t1 = arns[1].as_str().unwrap();
    let ack = s
        .ok(
            "SubmitTaskStateChange",
            json!({"cluster": "c", "task": t1, "status": "RUNNING",
                   "containers": [{"containerName": "web", "status": "RUNNING", "runtimeId": "abc",
                                   "networkBindings": [{"bindIP": "0.0.0.0", "containerPort": 80, "hostPort": 49153, "protocol": "tcp"}]}]}),
        )
        .await;
    assert_eq!(ack["acknowledgment"], "true");
    let c = cluster(&s).await;
    assert_eq!(
        (
            c["pendingTasksCount"].clone(),
            c["runningTasksCount"].clone()
        ),
        (json!(2), json!(1))
    );
    let d = s
        .ok("DescribeTasks", json!({"cluster": "c", "tasks": [t1]}))
        .await;
    let t = &d["tasks"][0];
    assert_eq!(t["lastStatus"], "RUNNING");
    assert!(t["startedAt"].is_number());
    assert_eq!(
        t["containers"][0]["networkBindings"][0]["bindIP"],
        "0.0.0.0"
    );
    // A reported task stays RUNNING after StopTask until the agent stops it.
    let st = s.ok("StopTask", json!({"cluster": "c", "task": t1})).await;
    assert_eq!(st["task"]["lastStatus"], "RUNNING");
    assert_eq!(st["task"]["desiredStatus"], "STOPPED");
    s.ok(
        "SubmitContainerStateChange",
        json!({"cluster": "c", "task": t1, "containerName": "web", "status": "STOPPED", "exitCode": 0}),
    )
    .await;
    s.ok(
        "SubmitTaskStateChange",
        json!({"cluster": "c", "task": t1, "status": "STOPPED"}),
    )
    .await;
    let c = cluster(&s).await;
    assert_eq!(
        (
            c["pendingTasksCount"].clone(),
            c["runningTasksCount"].clone()
        ),
        (json!(2), json!(0))
    );
    let d = s
        .ok("DescribeTasks", json!({"cluster": "c", "tasks": [t1]}))
        .await;
    assert_eq!(d["tasks"][0]["lastStatus"], "STOPPED");
    assert_eq!(d["tasks"][0]["containers"][0]["exitCode"], 0);
    assert_eq!(d["tasks"][0]["stopCode"], "UserInitiated");
    // Late reports never revive a stopped task.
    s.ok(
        "SubmitTaskStateChange",
        json!({"cluster": "c", "task": t1, "status": "RUNNING"}),
    )
    .await;
    assert_eq!(cluster(&s).await["runningTasksCount"], 0);

    // Deregistering an instance with tasks needs force; force stops them.
    let busy = if on_i1 > 0 { &i1 } else { &i2 };
    s.err(
        "DeregisterContainerInstance",
        json!({"cluster": "c", "containerInstance": busy}),
        "InvalidParameterException",
    )
    .await;
    s.ok(
        "DeregisterContainerInstance",
        json!({"cluster": "c", "containerInstance": i1, "force": true}),
    )
    .await;
    s.ok(
        "DeregisterContainerInstance",
        json!({"cluster": "c", "containerInstance": i2, "force": true}),
    )
    .await;
    let c = cluster(&s).await;
    assert_eq!(c["pendingTasksCount"], 0);
    assert_eq!(c["runningTasksCount"], 0);
    assert_eq!(c["registeredContainerInstancesCount"], 0);
    s.ok("DeleteCluster", json!({"cluster": "c"})).await;
    s.stop().await;
}

#[tokio::test]
async fn idempotency_strategies_and_start_task() {
    let s = TestServer::start().await;
    let (i1, i2) = setup(&s).await;
    let run =
        json!({"cluster": "c", "taskDefinition": "web:1", "count": 2, "clientToken": "tok-1"});
    let a = s.ok("RunTask", run.clone()).await;
    let b = s.ok("RunTask", run).await;
    assert_eq!(a["tasks"].as_array().unwrap().len(), 2);
    let arns = |v: &Value| -> Vec<Value> {
        v["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["taskArn"].clone())
            .collect()
    };
    assert_eq!(arns(&a), arns(&b));
    assert_eq!(cluster(&s).await["pendingTasksCount"], 2);
    s.err(
        "RunTask",
        json!({"cluster": "c", "taskDefinition": "web:1", "count": 1, "clientToken": "tok-1"}),
        "ConflictException",
    )
    .await;
    // spread over instances with distinctInstance: one per instance.
    let r = s
        .ok(
            "RunTask",
            json!({"cluster": "c", "taskDefinition": "web", "count": 2, "group": "g",
                   "placementStrategy": [{"type": "spread", "field": "instanceId"}],
                   "placementConstraints": [{"type": "distinctInstance"}]}),
        )
        .await;
    let t = r["tasks"].as_array().unwrap();
    if t.len() == 2 {
        assert_ne!(t[0]["containerInstanceArn"], t[1]["containerInstanceArn"]);
    }
    assert_eq!(t[0]["group"], "g");
    // StartTask on a named instance; a missing one is a failure.
    let st = s
        .ok(
            "StartTask",
            json!({"cluster": "c", "taskDefinition": "web", "containerInstances": [i1, "nope"],
                   "overrides": {"containerOverrides": [{"name": "web", "memory": 64}]}}),
        )
        .await;
    assert_eq!(st["tasks"].as_array().unwrap().len(), 1);
    assert_eq!(st["tasks"][0]["containerInstanceArn"], json!(i1));
    assert_eq!(
        st["tasks"][0]["overrides"]["containerOverrides"][0]["memory"],
        64
    );
    assert_eq!(st["failures"][0]["reason"], "MISSING");
    s.err(
        "StartTask",
        json!({"cluster": "c", "taskDefinition": "web", "containerInstances": [i2],
               "overrides": {"containerOverrides": [{"name": "ghost"}]}}),
        "InvalidParameterException",
    )
    .await;
    s.ok("CreateCluster", json!({"clusterName": "empty"})).await;
    let none = s
        .err(
            "RunTask",
            json!({"cluster": "empty", "taskDefinition": "web"}),
            "InvalidParameterException",
        )
        .await;
    assert_eq!(
        none.body["message"],
        "No Container Instances were found in your cluster."
    );
    s.err(
        "RunTask",
        json!({"cluster": "c", "taskDefinition": "web", "launchType": "FARGATE"}),
        "UnsupportedFeatureException",
    )
    .await;
    let e = s.ok("DiscoverPollEndpoint", json!({"cluster": "c"})).await;
    assert_eq!(e["endpoint"], json!(s.url));
    s.stop().await;
}

#[tokio::test]
async fn concurrent_runs_keep_counts_exact() {
    let s = std::sync::Arc::new(TestServer::start().await);
    let (i1, i2) = setup(&s).await;
    // Capacity: 3 tasks on i1 (1024 MiB), 1 on i2 (512 MiB); 12 requests race for it.
    let mut handles = Vec::new();
    for _ in 0..12 {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            let r = s
                .ok("RunTask", json!({"cluster": "c", "taskDefinition": "web"}))
                .await;
            r["tasks"].as_array().unwrap().len()
        }));
    }
    let mut placed = 0;
    for h in handles {
        placed += h.await.unwrap();
    }
    assert_eq!(placed, 4);
    let c = cluster(&s).await;
    assert_eq!(c["pendingTasksCount"], 4);
    let d = s
        .ok(
            "DescribeContainerInstances",
            json!({"cluster": "c", "containerInstances": [i1, i2]}),
        )
        .await;
    let total_pending: i64 = d["containerInstances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["pendingTasksCount"].as_i64().unwrap())
        .sum();
    assert_eq!(total_pending, 4);
    for i in d["containerInstances"].as_array().unwrap() {
        let registered = i["registeredResources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "MEMORY")
            .unwrap()["integerValue"]
            .as_i64()
            .unwrap();
        let left = remaining(i, "MEMORY")["integerValue"].as_i64().unwrap();
        assert_eq!(
            registered - left,
            300 * i["pendingTasksCount"].as_i64().unwrap()
        );
    }
    // Stop them all concurrently: everything is released.
    let arns = s.ok("ListTasks", json!({"cluster": "c"})).await["taskArns"].clone();
    let mut handles = Vec::new();
    for a in arns.as_array().unwrap().clone() {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            s.ok("StopTask", json!({"cluster": "c", "task": a})).await;
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let c = cluster(&s).await;
    assert_eq!(c["pendingTasksCount"], 0);
    let d = s
        .ok(
            "DescribeContainerInstances",
            json!({"cluster": "c", "containerInstances": [i1, i2]}),
        )
        .await;
    assert_eq!(
        remaining(&d["containerInstances"][0], "MEMORY")["integerValue"],
        1024
    );
    assert_eq!(
        remaining(&d["containerInstances"][1], "MEMORY")["integerValue"],
        512
    );
}
