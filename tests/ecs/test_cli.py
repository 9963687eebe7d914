"""The aws CLI (v1) against the server, as a user would type it: the issue's walkthrough,
AWS_ENDPOINT_URL_ECS without --endpoint-url, auto-pagination and error exit codes."""

from __future__ import annotations

import json

import ecs_helpers as h


def write_json(tmp_path, name, obj):
    p = tmp_path / name
    p.write_text(json.dumps(obj))
    return f"file://{p}"


def test_walkthrough_from_the_issue(server, tmp_path):
    cluster = h.uid("demo")
    out = server.aws("create-cluster", "--cluster-name", cluster)
    assert out["cluster"]["clusterName"] == cluster
    assert out["cluster"]["status"] == "ACTIVE"

    fam = h.uid("web")
    td = {"family": fam, "containerDefinitions": [
        {"name": "web", "image": "nginx:alpine", "memory": 128, "cpu": 128, "essential": True,
         "portMappings": [{"containerPort": 80, "protocol": "tcp"}]}]}
    out = server.aws("register-task-definition", "--cli-input-json",
                     write_json(tmp_path, "td.json", td))
    assert out["taskDefinition"]["family"] == fam
    assert out["taskDefinition"]["revision"] == 1

    for i in range(2):
        res = json.dumps(h.total_resources(2048, 4096))
        out = server.aws("register-container-instance", "--cluster", cluster,
                         "--instance-identity-document", h.identity_document(f"i-cli{i}"),
                         "--total-resources", res)
        assert out["containerInstance"]["status"] == "ACTIVE"

    out = server.aws("run-task", "--cluster", cluster, "--task-definition", f"{fam}:1",
                     "--count", "3")
    assert not out.get("failures")
    arns = [t["taskArn"] for t in out["tasks"]]
    assert len(arns) == 3

    out = server.aws("describe-tasks", "--cluster", cluster, "--tasks", *arns)
    assert sorted(t["taskArn"] for t in out["tasks"]) == sorted(arns)
    assert {t["lastStatus"] for t in out["tasks"]} == {"PENDING"}

    out = server.aws("stop-task", "--cluster", cluster, "--task", arns[0], "--reason", "cli")
    assert out["task"]["desiredStatus"] == "STOPPED"

    out = server.aws("list-tasks", "--cluster", cluster, "--desired-status", "STOPPED")
    assert out["taskArns"] == [arns[0]]
    out = server.aws("list-tasks", "--cluster", cluster)
    assert sorted(out["taskArns"]) == sorted(arns[1:])


def test_endpoint_from_aws_endpoint_url_ecs(server):
    env = server.cli_env(AWS_ENDPOINT_URL_ECS=server.url)
    name = h.uid("envurl")
    out = server.aws("create-cluster", "--cluster-name", name, endpoint=False, env=env)
    assert out["cluster"]["clusterName"] == name
    listed = server.aws("list-clusters", endpoint=False, env=env)["clusterArns"]
    assert out["cluster"]["clusterArn"] in listed


def test_boto3_uses_aws_endpoint_url_ecs(server, monkeypatch):
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL_ECS", server.url)
    ak, sk = server.credentials()
    c = boto3.session.Session(aws_access_key_id=ak, aws_secret_access_key=sk,
                              region_name="us-east-1").client("ecs")
    name = h.new_cluster(c)
    assert h.describe_cluster(c, name)["clusterName"] == name


def test_cli_auto_paginates(server):
    names = [h.uid("page") for _ in range(7)]
    for n in names:
        server.aws("create-cluster", "--cluster-name", n)
    out = server.aws("list-clusters", "--page-size", "2")
    got = [a.rsplit("/", 1)[-1] for a in out["clusterArns"]]
    assert set(names) <= set(got)
    assert len(got) == len(set(got))
    out = server.aws("list-clusters", "--max-items", "3")
    assert len(out["clusterArns"]) == 3 and out.get("NextToken")


def test_cli_error_exit_and_message(server):
    # aws CLI v1 exits 255 on a service error (v2 uses 254).
    res = server.aws_raw("delete-cluster", "--cluster", h.uid("missing"))
    assert res.returncode in (254, 255)
    assert "ClusterNotFoundException" in res.stderr
    res = server.aws_raw("run-task", "--cluster", h.uid("missing"), "--task-definition", "x",
                         "--count", "11")
    assert res.returncode in (254, 255)
    assert "InvalidParameterException" in res.stderr or "ClusterNotFoundException" in res.stderr


def test_cli_without_credentials_is_rejected(server):
    env = server.cli_env()
    env["AWS_SHARED_CREDENTIALS_FILE"] = "/nonexistent/credentials"
    env["AWS_ACCESS_KEY_ID"] = "AKIANOTAKEYWEKNOW000"
    env["AWS_SECRET_ACCESS_KEY"] = "x" * 40
    res = server.aws_raw("list-clusters", env=env)
    assert res.returncode in (254, 255)
    assert "UnrecognizedClientException" in res.stderr


def test_cli_container_instance_and_task_state_flow(server):
    cluster = h.uid("flow")
    server.aws("create-cluster", "--cluster-name", cluster)
    ci = server.aws("register-container-instance", "--cluster", cluster, "--total-resources",
                    json.dumps(h.total_resources(1024, 1024)))["containerInstance"]
    fam = h.uid("f")
    server.aws("register-task-definition", "--family", fam, "--container-definitions",
               json.dumps([h.container("app", memory=256)]))
    tasks = server.aws("start-task", "--cluster", cluster, "--task-definition", fam,
                       "--container-instances", ci["containerInstanceArn"])["tasks"]
    arn = tasks[0]["taskArn"]
    server.aws("submit-task-state-change", "--cluster", cluster, "--task", arn,
               "--status", "RUNNING")
    server.aws("wait", "tasks-running", "--cluster", cluster, "--tasks", arn)
    d = server.aws("describe-container-instances", "--cluster", cluster,
                   "--container-instances", ci["containerInstanceArn"])["containerInstances"][0]
    assert d["runningTasksCount"] == 1
    mem = [r for r in d["remainingResources"] if r["name"] == "MEMORY"][0]["integerValue"]
    assert mem == 1024 - 256
    server.aws("stop-task", "--cluster", cluster, "--task", arn)
    server.aws("submit-task-state-change", "--cluster", cluster, "--task", arn,
               "--status", "STOPPED", "--containers",
               json.dumps([{"containerName": "app", "exitCode": 0, "status": "STOPPED"}]))
    server.aws("wait", "tasks-stopped", "--cluster", cluster, "--tasks", arn)
    t = server.aws("describe-tasks", "--cluster", cluster, "--tasks", arn)["tasks"][0]
    assert t["lastStatus"] == "STOPPED" and t["containers"][0]["exitCode"] == 0
