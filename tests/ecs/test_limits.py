"""Model limits the ECS API enforces (and that clients run into): counts, batch sizes, names."""

from __future__ import annotations

import pytest

import ecs_helpers as h


@pytest.fixture(scope="module")
def env(ecs):
    cluster = h.new_cluster(ecs, "limits")
    for _ in range(2):
        h.register_instance(ecs, cluster, cpu=8192, memory=16384)
    td = h.register_td(ecs, memory=32, cpu=16)
    return {"cluster": cluster, "td": td["taskDefinitionArn"]}


def test_run_task_count_limits(ecs, env):
    h.expect_error("InvalidParameterException", ecs.run_task, cluster=env["cluster"],
                   taskDefinition=env["td"], count=11)
    h.expect_error("InvalidParameterException", ecs.run_task, cluster=env["cluster"],
                   taskDefinition=env["td"], count=0)
    assert ecs.list_tasks(cluster=env["cluster"], startedBy="limit10")["taskArns"] == []
    ten = ecs.run_task(cluster=env["cluster"], taskDefinition=env["td"], count=10,
                       startedBy="limit10")
    assert len(ten["tasks"]) == 10 and not ten.get("failures")


def test_describe_tasks_batch_limit(ecs, env):
    ids = [f"{i:032x}" for i in range(101)]
    h.expect_error("InvalidParameterException", ecs.describe_tasks, cluster=env["cluster"],
                   tasks=ids)
    out = ecs.describe_tasks(cluster=env["cluster"], tasks=ids[:100])
    assert len(out["failures"]) == 100 and out["tasks"] == []
    h.expect_error("InvalidParameterException", ecs.describe_tasks, cluster=env["cluster"],
                   tasks=[])


def test_describe_clusters_batch_limit(ecs):
    h.expect_error("InvalidParameterException", ecs.describe_clusters,
                   clusters=[f"c{i}" for i in range(101)])


def test_describe_container_instances_batch_limit(ecs, env):
    h.expect_error("InvalidParameterException", ecs.describe_container_instances,
                   cluster=env["cluster"], containerInstances=[f"{i:032x}" for i in range(101)])


def test_started_by_limits(ecs, env):
    # "Up to 128 letters (uppercase and lowercase), numbers, hyphens (-), forward slash (/),
    # and underscores (_) are allowed." (RunTask startedBy)
    h.expect_error("InvalidParameterException", ecs.run_task, cluster=env["cluster"],
                   taskDefinition=env["td"], startedBy="x" * 129)
    h.expect_error("InvalidParameterException", ecs.run_task, cluster=env["cluster"],
                   taskDefinition=env["td"], startedBy="bad started by")
    ok = h.run_one(ecs, env["cluster"], env["td"], startedBy="job/Run_1-" + "x" * 118)
    assert len(ok["startedBy"]) == 128


def test_stop_reason_limit(ecs, env):
    # "Up to 255 characters are allowed in this message." (StopTask reason)
    t = h.run_one(ecs, env["cluster"], env["td"])
    h.expect_error("InvalidParameterException", ecs.stop_task, cluster=env["cluster"],
                   task=t["taskArn"], reason="r" * 256)
    assert h.describe_task(ecs, env["cluster"], t["taskArn"])["desiredStatus"] == "RUNNING"
    out = ecs.stop_task(cluster=env["cluster"], task=t["taskArn"], reason="r" * 255)
    assert out["task"]["stoppedReason"] == "r" * 255


def test_max_results_bounds(ecs, env):
    for call, kw in ((ecs.list_clusters, {}), (ecs.list_tasks, {"cluster": env["cluster"]}),
                     (ecs.list_container_instances, {"cluster": env["cluster"]}),
                     (ecs.list_task_definitions, {})):
        h.expect_error("InvalidParameterException", call, maxResults=101, **kw)
    assert len(ecs.list_tasks(cluster=env["cluster"], maxResults=100)["taskArns"]) <= 100


def test_bad_next_token(ecs, env):
    h.expect_error(("InvalidParameterException", "ClientException"), ecs.list_tasks,
                   cluster=env["cluster"], nextToken="this-is-not-a-token")


@pytest.mark.parametrize("name", ["has space", "slash/inside", "dot.name", "x" * 256, "ünïcode"])
def test_bad_cluster_names_rejected(ecs, name):
    h.expect_error(("InvalidParameterException", "ClientException"), ecs.create_cluster,
                   clusterName=name)
    assert not any(a.endswith("/" + name) for a in ecs.list_clusters(maxResults=100)["clusterArns"])


def test_good_cluster_names_accepted(ecs):
    for name in ("a", "A-b_c-9", "x" * 255):
        assert ecs.create_cluster(clusterName=name)["cluster"]["clusterName"] == name


def test_group_name_limit(ecs, env):
    h.expect_error("InvalidParameterException", ecs.run_task, cluster=env["cluster"],
                   taskDefinition=env["td"], group="g" * 256)


def test_tags_limits_on_create(ecs):
    h.expect_error("InvalidParameterException", ecs.create_cluster, clusterName=h.uid("tags"),
                   tags=[{"key": f"k{i}", "value": "v"} for i in range(51)])
    h.expect_error("InvalidParameterException", ecs.create_cluster, clusterName=h.uid("tags"),
                   tags=[{"key": "k" * 129, "value": "v"}])
