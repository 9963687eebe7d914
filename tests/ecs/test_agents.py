"""Node agents end to end: `berth server` + three `berth agent` hosts (each in its own network
namespace with its own in-process engine), driven by boto3 and the aws CLI. Real containers
run; exit codes, port bindings, placement, ordering and restarts are checked from outside."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

import ecs_helpers as h
from agent_hosts import Fleet

@pytest.fixture(scope="module")
def fleet():
    f = Fleet()
    try:
        f.start()
        yield f
    finally:
        f.close()


def register(ecs, containers, network_mode="bridge", **kwargs) -> str:
    family = h.uid("fam")
    for c in containers:
        c.setdefault("image", "busybox:latest")
        c.setdefault("memory", 32)
    td = ecs.register_task_definition(family=family, containerDefinitions=containers,
                                      networkMode=network_mode, **kwargs)
    return td["taskDefinition"]["taskDefinitionArn"]


def run(fleet, td, count=1, **kwargs) -> list[dict]:
    r = fleet.ecs.run_task(cluster=fleet.cluster, taskDefinition=td, count=count, **kwargs)
    assert not r["failures"], r["failures"]
    assert len(r["tasks"]) == count
    return r["tasks"]


def wait(fleet, tasks, state, timeout=60) -> list[dict]:
    arns = [t["taskArn"] for t in tasks]
    waiter = fleet.ecs.get_waiter(f"tasks_{state}")
    try:
        waiter.wait(cluster=fleet.cluster, tasks=arns,
                    WaiterConfig={"Delay": 1, "MaxAttempts": int(timeout)})
    except Exception as e:
        got = fleet.ecs.describe_tasks(cluster=fleet.cluster, tasks=arns)["tasks"]
        raise AssertionError(f"tasks not {state}: {e}\n{json.dumps(got, default=str)[:3000]}\n"
                             + "\n".join(x.log_tail(2000) for x in fleet.hosts))
    return fleet.ecs.describe_tasks(cluster=fleet.cluster, tasks=arns)["tasks"]


def describe(fleet, tasks) -> list[dict]:
    return fleet.ecs.describe_tasks(cluster=fleet.cluster,
                                    tasks=[t["taskArn"] for t in tasks])["tasks"]


def stop_all(fleet, tasks):
    for t in tasks:
        fleet.ecs.stop_task(cluster=fleet.cluster, task=t["taskArn"])
    wait(fleet, tasks, "stopped")


def test_run_task_three_across_three_hosts_then_stop(fleet):
    td = register(fleet.ecs, [{"name": "app", "command": ["sleep", "1000"]}])
    tasks = run(fleet, td, count=3,
                placementStrategy=[{"type": "spread", "field": "instanceId"}])
    running = wait(fleet, tasks, "running")
    assert {t["lastStatus"] for t in running} == {"RUNNING"}
    assert len({t["containerInstanceArn"] for t in running}) == 3, "spread over three hosts"
    hosts = fleet.instance_host()
    for t in running:
        c = t["containers"][0]
        assert c["lastStatus"] == "RUNNING" and c.get("runtimeId"), c
        host = hosts[t["containerInstanceArn"]]
        ctrs = host.task_containers(t["taskArn"])
        assert len(ctrs) == 1 and ctrs[0]["State"] == "running", ctrs
        assert t.get("startedAt") and t["connectivity"] == "CONNECTED"
    stop_all(fleet, running)
    stopped = describe(fleet, running)
    for t in stopped:
        assert t["lastStatus"] == "STOPPED" and t["stopCode"] == "UserInitiated", t
        assert t["containers"][0]["lastStatus"] == "STOPPED"
        assert t["containers"][0]["exitCode"] in (137, 143)


def test_exit_code_and_essential_exit_stop_the_task(fleet):
    td = register(fleet.ecs, [
        {"name": "main", "command": ["sh", "-c", "sleep 1; exit 3"], "essential": True},
        {"name": "side", "command": ["sleep", "1000"], "essential": False, "stopTimeout": 2},
    ])
    [t] = wait(fleet, run(fleet, td), "stopped")
    assert t["stopCode"] == "EssentialContainerExited", json.dumps(t, default=str)
    by = {c["name"]: c for c in t["containers"]}
    assert by["main"]["exitCode"] == 3
    assert by["side"]["lastStatus"] == "STOPPED"
    assert by["side"]["exitCode"] in (137, 143)
    assert t.get("stoppedAt") and t.get("executionStoppedAt")


def test_stop_task_honours_stop_timeout(fleet):
    # PID 1 without a handler ignores SIGTERM: only the SIGKILL after stopTimeout ends it.
    td = register(fleet.ecs, [{"name": "stubborn", "command": ["sleep", "1000"],
                               "stopTimeout": 3}])
    [t] = wait(fleet, run(fleet, td), "running")
    start = time.time()
    fleet.ecs.stop_task(cluster=fleet.cluster, task=t["taskArn"], reason="test stop")
    [t] = wait(fleet, [t], "stopped")
    took = time.time() - start
    assert 2.5 <= took < 15, f"stop took {took:.1f}s with stopTimeout 3"
    assert t["containers"][0]["exitCode"] == 137
    assert t["stoppedReason"] == "test stop"


def test_placement_constraint_and_attribute_spread(fleet):
    td = register(fleet.ecs, [{"name": "app", "command": ["sleep", "1000"]}])
    # Spread first: it balances the family's tasks already placed, pinned ones included.
    spread = run(fleet, td, count=3, placementStrategy=[
        {"type": "spread", "field": "attribute:ecs.availability-zone"}])
    pinned = run(fleet, td, count=2, placementConstraints=[
        {"type": "memberOf", "expression": "attribute:ecs.availability-zone == az-2"}])
    hosts = fleet.instance_host()
    spread = wait(fleet, spread, "running")
    assert sorted(hosts[t["containerInstanceArn"]].zone for t in spread) == \
        ["az-1", "az-2", "az-3"]
    pinned = wait(fleet, pinned, "running")
    assert {hosts[t["containerInstanceArn"]].zone for t in pinned} == {"az-2"}
    for t in pinned:
        host = hosts[t["containerInstanceArn"]]
        assert len(host.task_containers(t["taskArn"])) == 1
    stop_all(fleet, pinned + spread)


def test_bridge_port_mapping_answers_on_the_host(fleet):
    port = 18000 + int(fleet.id, 16) % 1000
    td = register(fleet.ecs, [{
        "name": "web", "command": ["httpd", "-f", "-p", "80", "-h", "/www"],
        "portMappings": [{"containerPort": 80, "hostPort": port, "protocol": "tcp"}],
    }])
    [t] = wait(fleet, run(fleet, td), "running")
    host = fleet.instance_host()[t["containerInstanceArn"]]
    binding = t["containers"][0]["networkBindings"]
    assert binding and binding[0]["hostPort"] == port and binding[0]["containerPort"] == 80
    body = None
    for _ in range(50):
        try:
            body = urllib.request.urlopen(f"http://{host.address}:{port}/", timeout=2).read()
            break
        except OSError:
            time.sleep(0.1)
    assert body == b"hello from berth\n"
    stop_all(fleet, [t])


def test_awsvpc_containers_share_a_namespace(fleet):
    td = register(fleet.ecs, [
        {"name": "server", "command": ["httpd", "-f", "-p", "8080", "-h", "/www"],
         "essential": False},
        {"name": "client", "command": [
            "sh", "-c",
            "for i in $(seq 50); do wget -qO- http://127.0.0.1:8080/ | grep -q berth && exit 0;"
            " sleep 0.1; done; exit 1"]},
    ], network_mode="awsvpc")
    [t] = wait(fleet, run(fleet, td, networkConfiguration={
        "awsvpcConfiguration": {"subnets": ["subnet-berth"]}}), "stopped")
    by = {c["name"]: c for c in t["containers"]}
    assert by["client"]["exitCode"] == 0, t
    eni = [a for a in t["attachments"] if a["type"] == "ElasticNetworkInterface"]
    assert eni, t["attachments"]
    details = {d["name"]: d["value"] for d in eni[0]["details"]}
    assert details.get("privateIPv4Address"), details


def test_depends_on_order_is_kept(fleet):
    td = register(fleet.ecs, [
        {"name": "init", "essential": False,
         "command": ["sh", "-c", "sleep 1; echo ready > /shared/flag"],
         "mountPoints": [{"sourceVolume": "shared", "containerPath": "/shared"}]},
        {"name": "app", "dependsOn": [{"containerName": "init", "condition": "SUCCESS"}],
         "command": ["sh", "-c", "test \"$(cat /shared/flag)\" = ready"],
         "mountPoints": [{"sourceVolume": "shared", "containerPath": "/shared"}]},
    ], volumes=[{"name": "shared"}])
    [t] = wait(fleet, run(fleet, td), "stopped")
    by = {c["name"]: c for c in t["containers"]}
    assert by["init"]["exitCode"] == 0, t
    assert by["app"]["exitCode"] == 0, "app started before init succeeded"


def test_metadata_endpoint_answers_inside_the_container(fleet):
    td = register(fleet.ecs, [{"name": "probe", "command": [
        "sh", "-c",
        "wget -qO- \"$ECS_CONTAINER_METADATA_URI_V4\" | grep -qE '\"Name\": ?\"probe\"' &&"
        " wget -qO- \"$ECS_CONTAINER_METADATA_URI_V4/task\" | grep -q \"$TASK_MARK\"",
    ], "environment": [{"name": "TASK_MARK", "value": "TaskARN"}]}])
    [t] = wait(fleet, run(fleet, td), "stopped")
    assert t["containers"][0]["exitCode"] == 0, t


def test_agent_sigkill_keeps_tasks_and_adopts_them(fleet):
    td = register(fleet.ecs, [{"name": "app", "command": ["sleep", "1000"]}])
    [t] = wait(fleet, run(fleet, td, placementConstraints=[
        {"type": "memberOf", "expression": "attribute:host == h1"}]), "running")
    host = fleet.hosts[0]
    runtime_id = t["containers"][0]["runtimeId"]
    host.sigkill_agent()
    # The container's process outlives the agent (its monitor holds it).
    host.start_agent()
    host.wait_engine()
    fleet.wait_instances(len(fleet.hosts))
    [again] = describe(fleet, [t])
    assert again["lastStatus"] == "RUNNING"
    assert again["containers"][0]["runtimeId"] == runtime_id
    ctrs = host.task_containers(t["taskArn"])
    assert len(ctrs) == 1 and ctrs[0]["State"] == "running", "adopted, not started twice"
    stop_all(fleet, [t])


def test_server_restart_agents_reconnect_nothing_lost_or_doubled(fleet):
    td = register(fleet.ecs, [{"name": "app", "command": ["sleep", "1000"]}])
    before = wait(fleet, run(fleet, td, count=3,
                             placementStrategy=[{"type": "spread", "field": "instanceId"}]),
                  "running")
    fleet.server.sigkill()
    fleet.server.start()
    fleet.ecs = fleet.server.client()
    fleet.wait_instances(len(fleet.hosts))
    after = describe(fleet, before)
    assert [t["lastStatus"] for t in after] == ["RUNNING"] * 3
    hosts = fleet.instance_host()
    for t in after:
        assert len(hosts[t["containerInstanceArn"]].task_containers(t["taskArn"])) == 1
    more = wait(fleet, run(fleet, td), "running")
    stop_all(fleet, before + more)


def test_aws_cli_run_and_wait(fleet):
    td = register(fleet.ecs, [{"name": "once", "command": ["sh", "-c", "exit 0"]}])
    out = fleet.server.aws("run-task", "--cluster", fleet.cluster, "--task-definition", td)
    arn = out["tasks"][0]["taskArn"]
    fleet.server.aws_raw("wait", "tasks-stopped", "--cluster", fleet.cluster, "--tasks", arn)
    got = fleet.server.aws("describe-tasks", "--cluster", fleet.cluster, "--tasks", arn)
    assert got["tasks"][0]["containers"][0]["exitCode"] == 0


def test_secrets_become_environment_variables(fleet):
    sm = fleet.server.client(service="secretsmanager")
    plain = sm.create_secret(Name=h.uid("plain"), SecretString="s3cr3t value")["ARN"]
    login = sm.create_secret(Name=h.uid("login"),
                             SecretString='{"username": "app", "password": "pw-1"}')["ARN"]
    td = register(fleet.ecs, [{"name": "app", "command": [
        "sh", "-c", '[ "$PLAIN" = "s3cr3t value" ] && [ "$USER_NAME" = app ] && [ "$PASS" = pw-1 ]'
                    ' || { echo "got: $PLAIN/$USER_NAME/$PASS"; exit 9; }'],
        "secrets": [{"name": "PLAIN", "valueFrom": plain},
                    {"name": "USER_NAME", "valueFrom": f"{login}:username::"},
                    {"name": "PASS", "valueFrom": f"{login}:password:AWSCURRENT:"}]}])
    [t] = wait(fleet, run(fleet, td), "stopped")
    assert t["containers"][0]["exitCode"] == 0, json.dumps(t, default=str)

    # A secret that is not there: the task fails to start, saying which secret and why.
    missing = plain.replace(":secret:", ":secret:nope-")
    td = register(fleet.ecs, [{"name": "app", "command": ["true"],
                               "secrets": [{"name": "X", "valueFrom": missing}]}])
    [t] = wait(fleet, run(fleet, td), "stopped")
    assert t["stopCode"] == "TaskFailedToStart", t
    assert "ResourceInitializationError" in t["stoppedReason"], t["stoppedReason"]
    assert "secret X" in t["stoppedReason"] and "find the specified secret" in t["stoppedReason"]


def test_ssm_parameters_become_environment_variables(fleet):
    ssm = fleet.server.client(service="ssm")
    base = f"/{h.uid('app')}"
    ssm.put_parameter(Name=f"{base}/url", Value="http://db:5432", Type="String")
    ssm.put_parameter(Name=f"{base}/token", Value="t0k", Type="SecureString")
    arn = ssm.get_parameter(Name=f"{base}/token")["Parameter"]["ARN"]
    td = register(fleet.ecs, [{"name": "app", "command": [
        "sh", "-c", '[ "$URL" = http://db:5432 ] && [ "$TOKEN" = t0k ] || { echo "$URL $TOKEN"; exit 9; }'],
        "secrets": [{"name": "URL", "valueFrom": f"{base}/url"},
                    {"name": "TOKEN", "valueFrom": arn}]}])
    [t] = wait(fleet, run(fleet, td), "stopped")
    assert t["containers"][0]["exitCode"] == 0, json.dumps(t, default=str)
    td = register(fleet.ecs, [{"name": "app", "command": ["true"],
                               "secrets": [{"name": "X", "valueFrom": f"{base}/none"}]}])
    [t] = wait(fleet, run(fleet, td), "stopped")
    assert t["stopCode"] == "TaskFailedToStart", t
    assert f"{base}/none" in t["stoppedReason"], t["stoppedReason"]
