"""Tasks: RunTask, StartTask, DescribeTasks, ListTasks, StopTask, state changes, waiters."""

from __future__ import annotations

import datetime
import re

import pytest
from botocore.exceptions import WaiterError

import ecs_helpers as h

FAST = {"Delay": 1, "MaxAttempts": 20}


@pytest.fixture
def env(ecs):
    """A cluster with two container instances and a task definition."""
    cluster = h.new_cluster(ecs)
    cis = [h.register_instance(ecs, cluster, cpu=8192, memory=16384)["containerInstanceArn"]
           for _ in range(2)]
    td = h.register_td(ecs, containers=[h.container("app", memory=128),
                                        h.container("sidecar", memory=64, cpu=64)])
    return {"cluster": cluster, "instances": cis, "td": td["taskDefinitionArn"],
            "family": td["family"]}


def test_run_task_creates_pending_tasks(ecs, env):
    out = ecs.run_task(cluster=env["cluster"], taskDefinition=env["td"], count=3,
                       startedBy="ci-job-1")
    assert not out.get("failures")
    tasks = out["tasks"]
    assert len(tasks) == 3
    assert len({t["taskArn"] for t in tasks}) == 3
    for t in tasks:
        assert re.fullmatch(
            rf"arn:aws:ecs:us-east-1:{h.ACCOUNT}:task/{env['cluster']}/[0-9a-f]{{32}}", t["taskArn"])
        assert t["clusterArn"].endswith(f":cluster/{env['cluster']}")
        assert t["taskDefinitionArn"] == env["td"]
        assert t["containerInstanceArn"] in env["instances"]
        assert t["lastStatus"] == "PENDING"
        assert t["desiredStatus"] == "RUNNING"
        assert t["startedBy"] == "ci-job-1"
        assert t["group"] == f"family:{env['family']}"
        assert t.get("launchType", "EC2") == "EC2"
        assert sorted(c["name"] for c in t["containers"]) == ["app", "sidecar"]
        assert all(c["taskArn"] == t["taskArn"] for c in t["containers"])
        assert all(c.get("lastStatus") == "PENDING" for c in t["containers"])
        assert isinstance(t["createdAt"], datetime.datetime)


def test_run_task_by_family_uses_latest_active_revision(ecs, env):
    fam = h.uid("fam")
    h.register_td(ecs, fam)
    latest = h.register_td(ecs, fam)
    t = h.run_one(ecs, env["cluster"], fam)
    assert t["taskDefinitionArn"] == latest["taskDefinitionArn"]


def test_run_task_overrides_group_and_tags(ecs, env):
    ov = {"containerOverrides": [{"name": "app", "command": ["echo", "hi"],
                                  "environment": [{"name": "X", "value": "1"}]}]}
    t = h.run_one(ecs, env["cluster"], env["td"], overrides=ov, group="batch",
                  tags=[{"key": "owner", "value": "me"}])
    assert t["group"] == "batch"
    app = [o for o in t["overrides"]["containerOverrides"] if o["name"] == "app"][0]
    assert app["command"] == ["echo", "hi"]
    assert app["environment"] == [{"name": "X", "value": "1"}]
    d = ecs.describe_tasks(cluster=env["cluster"], tasks=[t["taskArn"]], include=["TAGS"])
    assert d["tasks"][0]["tags"] == [{"key": "owner", "value": "me"}]
    assert ecs.list_tags_for_resource(resourceArn=t["taskArn"])["tags"] == [
        {"key": "owner", "value": "me"}]


def test_run_task_errors(ecs, env):
    h.expect_error("ClusterNotFoundException", ecs.run_task, cluster=h.uid("missing"),
                   taskDefinition=env["td"])
    h.expect_error(("ClientException", "InvalidParameterException"), ecs.run_task,
                   cluster=env["cluster"], taskDefinition=h.uid("nofamily"))
    h.expect_error(("ClientException", "InvalidParameterException"), ecs.run_task,
                   cluster=env["cluster"], taskDefinition=f"{env['family']}:99")
    h.expect_error(("InvalidParameterException", "ClientException"), ecs.run_task,
                   cluster=env["cluster"], taskDefinition=env["td"],
                   overrides={"containerOverrides": [{"name": "nosuchcontainer"}]})


def test_run_task_on_cluster_without_instances(ecs):
    cluster = h.new_cluster(ecs)
    td = h.register_td(ecs)
    # AWS answers with an exception here, not with `failures`, and tools match its message
    # to decide to add capacity and retry.
    e = h.expect_error("InvalidParameterException", ecs.run_task, cluster=cluster,
                       taskDefinition=td["taskDefinitionArn"])
    assert e.response["Error"]["Message"] == "No Container Instances were found in your cluster."


def test_describe_tasks_by_id_and_missing(ecs, env):
    t = h.run_one(ecs, env["cluster"], env["td"])
    tid = h.arn_id(t["taskArn"])
    missing = "0123456789abcdef0123456789abcdef"
    out = ecs.describe_tasks(cluster=env["cluster"], tasks=[tid, missing])
    assert [x["taskArn"] for x in out["tasks"]] == [t["taskArn"]]
    assert [(f["arn"], f["reason"]) for f in out["failures"]] == [
        (f"arn:aws:ecs:us-east-1:{h.ACCOUNT}:task/{env['cluster']}/{missing}", "MISSING")]
    h.expect_error("ClusterNotFoundException", ecs.describe_tasks, cluster=h.uid("missing"),
                   tasks=[tid])


def test_stop_task(ecs, env):
    t = h.run_one(ecs, env["cluster"], env["td"])
    out = ecs.stop_task(cluster=env["cluster"], task=t["taskArn"], reason="deploy")["task"]
    assert out["taskArn"] == t["taskArn"]
    assert out["desiredStatus"] == "STOPPED"
    assert out["stoppedReason"] == "deploy"
    d = h.describe_task(ecs, env["cluster"], t["taskArn"])
    assert d["desiredStatus"] == "STOPPED"
    stopped = ecs.list_tasks(cluster=env["cluster"], desiredStatus="STOPPED")["taskArns"]
    assert t["taskArn"] in stopped
    running = ecs.list_tasks(cluster=env["cluster"], desiredStatus="RUNNING")["taskArns"]
    assert t["taskArn"] not in running


def test_stop_unknown_task(ecs, env):
    h.expect_error("InvalidParameterException", ecs.stop_task, cluster=env["cluster"],
                   task="0123456789abcdef0123456789abcdef")
    h.expect_error("ClusterNotFoundException", ecs.stop_task, cluster=h.uid("missing"),
                   task="0123456789abcdef0123456789abcdef")


def test_state_changes_running_then_stopped_with_exit_codes(ecs, env):
    t = h.run_one(ecs, env["cluster"], env["td"])
    arn = t["taskArn"]
    ack = h.report(ecs, env["cluster"], arn, "RUNNING")
    assert ack.get("acknowledgment") == "true" or ack.get("acknowledgment") is None
    d = h.describe_task(ecs, env["cluster"], arn)
    assert d["lastStatus"] == "RUNNING"
    assert isinstance(d.get("startedAt"), datetime.datetime)
    assert all(c["lastStatus"] == "RUNNING" for c in d["containers"])

    ecs.stop_task(cluster=env["cluster"], task=arn, reason="done")
    h.report(ecs, env["cluster"], arn, "STOPPED", exit_codes={"app": 3, "sidecar": 0},
             reason="Essential container in task exited")
    d = h.describe_task(ecs, env["cluster"], arn)
    assert d["lastStatus"] == "STOPPED"
    assert isinstance(d.get("stoppedAt"), datetime.datetime)
    codes = {c["name"]: c.get("exitCode") for c in d["containers"]}
    assert codes == {"app": 3, "sidecar": 0}
    assert all(c["lastStatus"] == "STOPPED" for c in d["containers"])


def test_submit_container_state_change(ecs, env):
    t = h.run_one(ecs, env["cluster"], env["td"])
    ecs.submit_container_state_change(cluster=env["cluster"], task=t["taskArn"],
                                      containerName="sidecar", status="STOPPED", exitCode=137,
                                      reason="OOM")
    d = h.describe_task(ecs, env["cluster"], t["taskArn"])
    side = [c for c in d["containers"] if c["name"] == "sidecar"][0]
    assert side["lastStatus"] == "STOPPED" and side["exitCode"] == 137
    app = [c for c in d["containers"] if c["name"] == "app"][0]
    assert app["lastStatus"] != "STOPPED"


def test_waiters_tasks_running_and_stopped(ecs, env):
    tasks = ecs.run_task(cluster=env["cluster"], taskDefinition=env["td"], count=2)["tasks"]
    arns = [t["taskArn"] for t in tasks]
    for a in arns:
        h.report(ecs, env["cluster"], a, "RUNNING")
    ecs.get_waiter("tasks_running").wait(cluster=env["cluster"], tasks=arns, WaiterConfig=FAST)
    for a in arns:
        ecs.stop_task(cluster=env["cluster"], task=a)
        h.report(ecs, env["cluster"], a, "STOPPED", exit_codes={"app": 0, "sidecar": 0})
    ecs.get_waiter("tasks_stopped").wait(cluster=env["cluster"], tasks=arns, WaiterConfig=FAST)


def test_waiter_tasks_running_fails_fast_on_stopped_or_missing(ecs, env):
    t = h.run_one(ecs, env["cluster"], env["td"])
    h.report(ecs, env["cluster"], t["taskArn"], "STOPPED", exit_codes={"app": 1, "sidecar": 1})
    w = ecs.get_waiter("tasks_running")
    with pytest.raises(WaiterError) as ei:
        w.wait(cluster=env["cluster"], tasks=[t["taskArn"]], WaiterConfig=FAST)
    assert "terminal failure" in str(ei.value).lower()
    with pytest.raises(WaiterError) as ei:
        w.wait(cluster=env["cluster"], tasks=["0123456789abcdef0123456789abcdef"],
               WaiterConfig=FAST)
    assert "terminal failure" in str(ei.value).lower()


def test_tasks_running_waiter_times_out_while_pending(ecs, env):
    t = h.run_one(ecs, env["cluster"], env["td"])
    with pytest.raises(WaiterError) as ei:
        ecs.get_waiter("tasks_running").wait(cluster=env["cluster"], tasks=[t["taskArn"]],
                                             WaiterConfig={"Delay": 1, "MaxAttempts": 2})
    assert "max attempts" in str(ei.value).lower()


def test_list_tasks_filters(ecs, env):
    c = env["cluster"]
    other_td = h.register_td(ecs)
    a = ecs.run_task(cluster=c, taskDefinition=env["td"], count=2, startedBy="alpha")["tasks"]
    b = h.run_one(ecs, c, other_td["taskDefinitionArn"], startedBy="beta")
    a_arns = {t["taskArn"] for t in a}
    assert set(ecs.list_tasks(cluster=c, startedBy="alpha")["taskArns"]) == a_arns
    assert ecs.list_tasks(cluster=c, family=other_td["family"])["taskArns"] == [b["taskArn"]]
    ci = b["containerInstanceArn"]
    on_ci = set(ecs.list_tasks(cluster=c, containerInstance=ci)["taskArns"])
    assert b["taskArn"] in on_ci
    assert on_ci == {t["taskArn"] for t in a + [b] if t["containerInstanceArn"] == ci}
    assert set(ecs.list_tasks(cluster=c, launchType="EC2")["taskArns"]) >= a_arns | {b["taskArn"]}
    assert ecs.list_tasks(cluster=c, launchType="FARGATE")["taskArns"] == []
    ecs.stop_task(cluster=c, task=b["taskArn"])
    assert ecs.list_tasks(cluster=c, desiredStatus="STOPPED")["taskArns"] == [b["taskArn"]]
    assert b["taskArn"] not in ecs.list_tasks(cluster=c)["taskArns"]  # default: RUNNING
    h.expect_error("ClusterNotFoundException", ecs.list_tasks, cluster=h.uid("missing"))


def test_list_tasks_paginates(ecs, env):
    arns = set()
    for _ in range(4):
        out = ecs.run_task(cluster=env["cluster"], taskDefinition=env["td"], count=10,
                           startedBy="pager")
        assert not out.get("failures")
        arns |= {t["taskArn"] for t in out["tasks"]}
    assert len(arns) == 40
    pages = list(ecs.get_paginator("list_tasks").paginate(
        cluster=env["cluster"], startedBy="pager", PaginationConfig={"PageSize": 6}))
    got = [a for p in pages for a in p["taskArns"]]
    assert len(got) == 40 and set(got) == arns
    assert [len(p["taskArns"]) for p in pages] == [6] * 6 + [4]


def test_start_task_on_named_instances(ecs, env):
    target = env["instances"][1]
    out = ecs.start_task(cluster=env["cluster"], taskDefinition=env["td"],
                         containerInstances=[target, h.arn_id(env["instances"][0])],
                         startedBy="manual")
    assert not out.get("failures")
    assert sorted(t["containerInstanceArn"] for t in out["tasks"]) == sorted(env["instances"])
    assert all(t["lastStatus"] == "PENDING" and t["startedBy"] == "manual" for t in out["tasks"])
    bad = ecs.start_task(cluster=env["cluster"], taskDefinition=env["td"],
                         containerInstances=["0123456789abcdef0123456789abcdef"])
    assert not bad.get("tasks")
    assert bad["failures"] and bad["failures"][0]["reason"] == "MISSING"


def test_client_token_makes_run_task_idempotent(ecs, env):
    token = h.uid("tok")
    first = ecs.run_task(cluster=env["cluster"], taskDefinition=env["td"], count=2,
                         clientToken=token)["tasks"]
    again = ecs.run_task(cluster=env["cluster"], taskDefinition=env["td"], count=2,
                         clientToken=token)["tasks"]
    assert sorted(t["taskArn"] for t in again) == sorted(t["taskArn"] for t in first)
    listed = ecs.list_tasks(cluster=env["cluster"])["taskArns"]
    assert len([a for a in listed if a in {t["taskArn"] for t in first}]) == 2
    assert len(listed) == 2, "the retry created new tasks"
    # The same token with different parameters is a conflict.
    e = h.expect_error("ConflictException", ecs.run_task, cluster=env["cluster"],
                       taskDefinition=env["td"], count=3, clientToken=token)
    assert sorted(e.response.get("resourceIds", [])) in ([], sorted(t["taskArn"] for t in first))
    # Another token runs new tasks.
    other = ecs.run_task(cluster=env["cluster"], taskDefinition=env["td"],
                         clientToken=h.uid("tok"))["tasks"]
    assert other[0]["taskArn"] not in {t["taskArn"] for t in first}
