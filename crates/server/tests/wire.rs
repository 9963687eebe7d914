//! Wire rules, clusters, task definitions, tags and account settings over real HTTP.

mod common;

use common::TestServer;
use serde_json::json;

#[tokio::test]
async fn wire_rules() {
    let s = TestServer::start().await;
    let r = s
        .raw(Some("AmazonEC2ContainerServiceV20141113.Nope"), "{}")
        .await;
    assert_eq!((r.status, r.code()), (400, "UnknownOperationException"));
    let r = s.raw(None, "{}").await;
    assert_eq!(r.code(), "UnknownOperationException");
    let r = s
        .raw(
            Some("AmazonEC2ContainerServiceV20141113.ListClusters"),
            "{not json",
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "SerializationException"));
    let id = r.headers["x-amzn-requestid"].to_str().unwrap();
    assert_eq!(id.len(), 36);
    let r = s
        .raw(Some("AmazonEC2ContainerServiceV20141113.ListClusters"), "")
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.headers["content-type"].to_str().unwrap(),
        "application/x-amz-json-1.1"
    );
    assert!(r.headers.contains_key("x-amzn-requestid"));
    assert_eq!(r.body["clusterArns"], json!([]));
    s.err(
        "DescribeTasks",
        json!({"tasks": "x"}),
        "SerializationException",
    )
    .await;
    s.err("DeleteCluster", json!({}), "InvalidParameterException")
        .await;
    s.stop().await;
}

#[tokio::test]
async fn clusters() {
    let s = TestServer::start().await;
    let c = s
        .ok(
            "CreateCluster",
            json!({"clusterName": "demo", "tags": [{"key": "team", "value": "a"}],
                   "settings": [{"name": "containerInsights", "value": "enabled"}]}),
        )
        .await;
    assert_eq!(
        c["cluster"]["clusterArn"],
        "arn:aws:ecs:us-east-1:123456789012:cluster/demo"
    );
    assert_eq!(c["cluster"]["status"], "ACTIVE");
    assert_eq!(c["cluster"]["runningTasksCount"], 0);
    // Idempotent.
    let again = s.ok("CreateCluster", json!({"clusterName": "demo"})).await;
    assert_eq!(again["cluster"]["clusterArn"], c["cluster"]["clusterArn"]);
    s.err(
        "CreateCluster",
        json!({"clusterName": "bad name"}),
        "InvalidParameterException",
    )
    .await;
    s.ok("CreateCluster", json!({})).await; // "default"
    let d = s
        .ok(
            "DescribeClusters",
            json!({"clusters": ["demo", "ghost"], "include": ["TAGS", "STATISTICS", "SETTINGS"]}),
        )
        .await;
    assert_eq!(d["clusters"][0]["tags"][0]["key"], "team");
    assert_eq!(d["clusters"][0]["settings"][0]["value"], "enabled");
    assert!(d["clusters"][0]["statistics"].as_array().unwrap().len() > 3);
    assert_eq!(d["failures"][0]["reason"], "MISSING");
    assert_eq!(
        d["failures"][0]["arn"],
        "arn:aws:ecs:us-east-1:123456789012:cluster/ghost"
    );
    let plain = s
        .ok("DescribeClusters", json!({"clusters": ["demo"]}))
        .await;
    assert!(plain["clusters"][0].get("tags").is_none());
    s.err(
        "DescribeClusters",
        json!({"clusters": vec!["x"; 101]}),
        "InvalidParameterException",
    )
    .await;
    s.err(
        "DescribeClusters",
        json!({"include": ["NOPE"]}),
        "InvalidParameterException",
    )
    .await;
    // Pagination.
    let p1 = s.ok("ListClusters", json!({"maxResults": 1})).await;
    assert_eq!(p1["clusterArns"].as_array().unwrap().len(), 1);
    let token = p1["nextToken"].as_str().unwrap();
    let p2 = s
        .ok("ListClusters", json!({"maxResults": 1, "nextToken": token}))
        .await;
    assert_eq!(p2["clusterArns"].as_array().unwrap().len(), 1);
    assert!(p2.get("nextToken").is_none());
    assert_ne!(p1["clusterArns"][0], p2["clusterArns"][0]);
    s.err(
        "ListClusters",
        json!({"maxResults": 0}),
        "InvalidParameterException",
    )
    .await;
    s.err(
        "ListClusters",
        json!({"nextToken": "garbage"}),
        "InvalidParameterException",
    )
    .await;
    // Updates.
    let u = s
        .ok(
            "UpdateClusterSettings",
            json!({"cluster": "demo", "settings": [{"name": "containerInsights", "value": "disabled"}]}),
        )
        .await;
    assert_eq!(u["cluster"]["settings"][0]["value"], "disabled");
    s.ok(
        "UpdateCluster",
        json!({"cluster": "demo", "configuration": {"executeCommandConfiguration": {"logging": "DEFAULT"}}}),
    )
    .await;
    s.err(
        "UpdateClusterSettings",
        json!({"cluster": "demo", "settings": [{"name": "containerInsights", "value": "maybe"}]}),
        "InvalidParameterException",
    )
    .await;
    s.err(
        "UpdateCluster",
        json!({"cluster": "ghost"}),
        "ClusterNotFoundException",
    )
    .await;
    // Delete.
    let del = s.ok("DeleteCluster", json!({"cluster": "demo"})).await;
    assert_eq!(del["cluster"]["status"], "INACTIVE");
    let d = s
        .ok("DescribeClusters", json!({"clusters": ["demo"]}))
        .await;
    assert_eq!(d["clusters"][0]["status"], "INACTIVE");
    s.err(
        "DeleteCluster",
        json!({"cluster": "demo"}),
        "ClusterNotFoundException",
    )
    .await;
    let l = s.ok("ListClusters", json!({})).await;
    assert_eq!(l["clusterArns"].as_array().unwrap().len(), 1);
    // Re-create after delete.
    s.ok("CreateCluster", json!({"clusterName": "demo"})).await;
    s.stop().await;
}

fn td(family: &str) -> serde_json::Value {
    json!({"family": family, "containerDefinitions": [
        {"name": "web", "image": "nginx", "memory": 256, "cpu": 128,
         "portMappings": [{"containerPort": 80}]}
    ], "tags": [{"key": "k", "value": "v"}]})
}

#[tokio::test]
async fn task_definitions() {
    let s = TestServer::start().await;
    let r1 = s.ok("RegisterTaskDefinition", td("web")).await;
    let d1 = &r1["taskDefinition"];
    assert_eq!(d1["revision"], 1);
    assert_eq!(d1["status"], "ACTIVE");
    assert_eq!(d1["networkMode"], "bridge");
    assert_eq!(d1["containerDefinitions"][0]["essential"], true);
    assert_eq!(
        d1["containerDefinitions"][0]["portMappings"][0]["protocol"],
        "tcp"
    );
    assert!(d1["registeredAt"].is_f64() || d1["registeredAt"].is_u64());
    assert_eq!(
        d1["taskDefinitionArn"],
        "arn:aws:ecs:us-east-1:123456789012:task-definition/web:1"
    );
    let r2 = s.ok("RegisterTaskDefinition", td("web")).await;
    assert_eq!(r2["taskDefinition"]["revision"], 2);
    s.ok("RegisterTaskDefinition", td("api")).await;
    let d = s
        .ok("DescribeTaskDefinition", json!({"taskDefinition": "web"}))
        .await;
    assert_eq!(d["taskDefinition"]["revision"], 2);
    assert!(d.get("tags").is_none());
    let d = s
        .ok(
            "DescribeTaskDefinition",
            json!({"taskDefinition": "arn:aws:ecs:us-east-1:123456789012:task-definition/web:1", "include": ["TAGS"]}),
        )
        .await;
    assert_eq!(d["taskDefinition"]["revision"], 1);
    assert_eq!(d["tags"][0]["key"], "k");
    s.err(
        "DescribeTaskDefinition",
        json!({"taskDefinition": "web:9"}),
        "ClientException",
    )
    .await;
    s.err(
        "RegisterTaskDefinition",
        json!({"family": "x", "containerDefinitions": [{"name": "a", "image": "i"}]}),
        "ClientException",
    )
    .await;
    let l = s.ok("ListTaskDefinitions", json!({})).await;
    assert_eq!(l["taskDefinitionArns"].as_array().unwrap().len(), 3);
    let l = s
        .ok(
            "ListTaskDefinitions",
            json!({"familyPrefix": "web", "sort": "DESC", "maxResults": 1}),
        )
        .await;
    assert!(l["taskDefinitionArns"][0]
        .as_str()
        .unwrap()
        .ends_with("web:2"));
    let l2 = s
        .ok(
            "ListTaskDefinitions",
            json!({"familyPrefix": "web", "sort": "DESC", "maxResults": 1, "nextToken": l["nextToken"]}),
        )
        .await;
    assert!(l2["taskDefinitionArns"][0]
        .as_str()
        .unwrap()
        .ends_with("web:1"));
    assert!(l2.get("nextToken").is_none());
    let f = s.ok("ListTaskDefinitionFamilies", json!({})).await;
    assert_eq!(f["families"], json!(["api", "web"]));
    // Deregister and delete.
    let active = s
        .ok(
            "DeleteTaskDefinitions",
            json!({"taskDefinitions": ["web:2"]}),
        )
        .await;
    assert!(active["failures"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("ACTIVE"));
    let dr = s
        .ok(
            "DeregisterTaskDefinition",
            json!({"taskDefinition": "web:2"}),
        )
        .await;
    assert_eq!(dr["taskDefinition"]["status"], "INACTIVE");
    assert!(dr["taskDefinition"]["deregisteredAt"].is_number());
    let d = s
        .ok("DescribeTaskDefinition", json!({"taskDefinition": "web"}))
        .await;
    assert_eq!(d["taskDefinition"]["revision"], 1);
    let inactive = s
        .ok("ListTaskDefinitions", json!({"status": "INACTIVE"}))
        .await;
    assert_eq!(inactive["taskDefinitionArns"].as_array().unwrap().len(), 1);
    let del = s
        .ok(
            "DeleteTaskDefinitions",
            json!({"taskDefinitions": ["web:2", "web:1", "web:7"]}),
        )
        .await;
    assert_eq!(del["taskDefinitions"][0]["status"], "DELETE_IN_PROGRESS");
    assert_eq!(del["failures"].as_array().unwrap().len(), 2);
    s.ok(
        "DeregisterTaskDefinition",
        json!({"taskDefinition": "api:1"}),
    )
    .await;
    let f = s
        .ok("ListTaskDefinitionFamilies", json!({"status": "INACTIVE"}))
        .await;
    assert_eq!(f["families"], json!(["api"]));
    s.stop().await;
}

#[tokio::test]
async fn tags_and_settings() {
    let s = TestServer::start().await;
    let c = s.ok("CreateCluster", json!({"clusterName": "t"})).await;
    let arn = c["cluster"]["clusterArn"].as_str().unwrap().to_owned();
    s.ok(
        "TagResource",
        json!({"resourceArn": arn, "tags": [{"key": "a", "value": "1"}, {"key": "b", "value": "2"}]}),
    )
    .await;
    s.ok(
        "UntagResource",
        json!({"resourceArn": arn, "tagKeys": ["a"]}),
    )
    .await;
    let l = s
        .ok("ListTagsForResource", json!({"resourceArn": arn}))
        .await;
    assert_eq!(l["tags"], json!([{"key": "b", "value": "2"}]));
    s.err(
        "ListTagsForResource",
        json!({"resourceArn": "arn:aws:ecs:us-east-1:123456789012:cluster/ghost"}),
        "ClusterNotFoundException",
    )
    .await;
    s.err(
        "TagResource",
        json!({"resourceArn": arn, "tags": [{"key": "aws:x", "value": "1"}]}),
        "InvalidParameterException",
    )
    .await;
    s.err(
        "ListTagsForResource",
        json!({"resourceArn": "nope"}),
        "InvalidParameterException",
    )
    .await;
    let td = s.ok("RegisterTaskDefinition", td("tagged")).await;
    let tarn = td["taskDefinition"]["taskDefinitionArn"]
        .as_str()
        .unwrap()
        .to_owned();
    let l = s
        .ok("ListTagsForResource", json!({"resourceArn": tarn}))
        .await;
    assert_eq!(l["tags"][0]["key"], "k");

    // Account settings.
    let p = s
        .ok(
            "PutAccountSetting",
            json!({"name": "containerInsights", "value": "enabled"}),
        )
        .await;
    assert_eq!(
        p["setting"]["principalArn"],
        "arn:aws:iam::123456789012:root"
    );
    let l = s.ok("ListAccountSettings", json!({})).await;
    assert_eq!(l["settings"].as_array().unwrap().len(), 1);
    s.ok(
        "PutAccountSettingDefault",
        json!({"name": "awsvpcTrunking", "value": "enabled"}),
    )
    .await;
    let e = s
        .ok(
            "ListAccountSettings",
            json!({"effectiveSettings": true, "name": "awsvpcTrunking"}),
        )
        .await;
    assert_eq!(e["settings"][0]["value"], "enabled");
    let all = s
        .ok(
            "ListAccountSettings",
            json!({"effectiveSettings": true, "maxResults": 5}),
        )
        .await;
    assert_eq!(all["settings"].as_array().unwrap().len(), 5);
    assert!(all["nextToken"].is_string());
    let d = s
        .ok("DeleteAccountSetting", json!({"name": "containerInsights"}))
        .await;
    assert_eq!(d["setting"]["value"], "enabled");
    let l = s.ok("ListAccountSettings", json!({})).await;
    assert_eq!(l["settings"], json!([]));
    s.err(
        "PutAccountSetting",
        json!({"name": "bogus", "value": "enabled"}),
        "InvalidParameterException",
    )
    .await;
    s.err(
        "PutAccountSetting",
        json!({"name": "taskLongArnFormat", "value": "maybe"}),
        "InvalidParameterException",
    )
    .await;
    s.stop().await;
}
