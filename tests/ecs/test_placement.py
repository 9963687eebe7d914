"""Placement through RunTask: strategies, constraints, resource failures, exact accounting.

Every test gets its own cluster with three container instances:
    small: 1024 CPU, 2048 MiB, zone a, size small
    mid:   2048 CPU, 4096 MiB, zone b, size large
    big:   4096 CPU, 8192 MiB, zone b, size large
"""

from __future__ import annotations

from collections import Counter

import pytest

import ecs_helpers as h


@pytest.fixture
def cl(ecs):
    cluster = h.new_cluster(ecs, "place")
    spec = {"small": (1024, 2048, "a", "small"), "mid": (2048, 4096, "b", "large"),
            "big": (4096, 8192, "b", "large")}
    arns = {}
    for name, (cpu, mem, zone, size) in spec.items():
        ci = h.register_instance(ecs, cluster, cpu=cpu, memory=mem,
                                 attributes={"zone": zone, "size": size, "name": name})
        arns[name] = ci["containerInstanceArn"]
    by_arn = {v: k for k, v in arns.items()}
    return {"cluster": cluster, "arns": arns, "name": by_arn, "spec": spec}


def run(ecs, cl, td, count=1, **kw):
    out = ecs.run_task(cluster=cl["cluster"], taskDefinition=td["taskDefinitionArn"],
                       count=count, **kw)
    return out["tasks"], out.get("failures", [])


def placed(cl, tasks) -> Counter:
    return Counter(cl["name"][t["containerInstanceArn"]] for t in tasks)


def remaining(ecs, cl, name):
    d = h.describe_instance(ecs, cl["cluster"], cl["arns"][name])
    return (h.resource(d["remainingResources"], "CPU"),
            h.resource(d["remainingResources"], "MEMORY"),
            d["pendingTasksCount"], d["runningTasksCount"])


def test_binpack_memory_fills_the_tightest_instance_first(ecs, cl):
    td = h.register_td(ecs, memory=512, cpu=128)
    tasks, failures = run(ecs, cl, td, count=5,
                          placementStrategy=[{"type": "binpack", "field": "memory"}])
    assert not failures
    assert placed(cl, tasks) == Counter({"small": 4, "mid": 1})
    assert remaining(ecs, cl, "small") == (1024 - 4 * 128, 0, 4, 0)
    assert remaining(ecs, cl, "mid") == (2048 - 128, 4096 - 512, 1, 0)
    assert remaining(ecs, cl, "big") == (4096, 8192, 0, 0)


def test_binpack_cpu(ecs, cl):
    td = h.register_td(ecs, memory=64, cpu=512)
    tasks, failures = run(ecs, cl, td, count=3,
                          placementStrategy=[{"type": "binpack", "field": "cpu"}])
    assert not failures
    assert placed(cl, tasks) == Counter({"small": 2, "mid": 1})


def test_spread_instance_id_spreads_evenly(ecs, cl):
    td = h.register_td(ecs, memory=128, cpu=128)
    tasks, failures = run(ecs, cl, td, count=6,
                          placementStrategy=[{"type": "spread", "field": "instanceId"}])
    assert not failures
    assert placed(cl, tasks) == Counter({"small": 2, "mid": 2, "big": 2})


def test_spread_by_attribute(ecs, cl):
    td = h.register_td(ecs, memory=128, cpu=128)
    tasks, failures = run(ecs, cl, td, count=4,
                          placementStrategy=[{"type": "spread", "field": "attribute:zone"}])
    assert not failures
    p = placed(cl, tasks)
    assert p["small"] == 2, p  # zone a has one instance and gets half the tasks
    assert p["mid"] + p["big"] == 2


def test_spread_zone_then_binpack_memory(ecs, cl):
    td = h.register_td(ecs, memory=256, cpu=64)
    tasks, failures = run(ecs, cl, td, count=4, placementStrategy=[
        {"type": "spread", "field": "attribute:zone"}, {"type": "binpack", "field": "memory"}])
    assert not failures
    assert placed(cl, tasks) == Counter({"small": 2, "mid": 2})


def test_random_places_all_within_resources(ecs, cl):
    td = h.register_td(ecs, memory=256, cpu=128)
    tasks, failures = run(ecs, cl, td, count=10, placementStrategy=[{"type": "random"}])
    assert not failures and len(tasks) == 10
    p = placed(cl, tasks)
    for name, (cpu, mem, _, _) in cl["spec"].items():
        assert remaining(ecs, cl, name)[:3] == (cpu - 128 * p[name], mem - 256 * p[name], p[name])


def test_member_of_constraint(ecs, cl):
    td = h.register_td(ecs, memory=128, cpu=128)
    tasks, failures = run(ecs, cl, td, count=6,
                          placementConstraints=[{"type": "memberOf",
                                                 "expression": "attribute:size == large"}],
                          placementStrategy=[{"type": "spread", "field": "instanceId"}])
    assert not failures
    assert placed(cl, tasks) == Counter({"mid": 3, "big": 3})


def test_member_of_in_task_definition(ecs, cl):
    td = h.register_td(ecs, memory=128, cpu=128, placementConstraints=[
        {"type": "memberOf", "expression": "attribute:zone == a"}])
    tasks, failures = run(ecs, cl, td, count=3)
    assert not failures
    assert placed(cl, tasks) == Counter({"small": 3})


def test_member_of_matching_nothing_fails(ecs, cl):
    td = h.register_td(ecs, memory=128, cpu=128)
    tasks, failures = run(ecs, cl, td, count=2, placementConstraints=[
        {"type": "memberOf", "expression": "attribute:zone == z"}])
    assert tasks == []
    assert failures
    assert ecs.list_tasks(cluster=cl["cluster"])["taskArns"] == []


def test_distinct_instance(ecs, cl):
    td = h.register_td(ecs, memory=128, cpu=128)
    tasks, failures = run(ecs, cl, td, count=3,
                          placementConstraints=[{"type": "distinctInstance"}],
                          placementStrategy=[{"type": "binpack", "field": "memory"}])
    assert not failures
    assert placed(cl, tasks) == Counter({"small": 1, "mid": 1, "big": 1})


def test_distinct_instance_over_capacity_places_what_it_can(ecs):
    cluster = h.new_cluster(ecs, "distinct")
    for _ in range(2):
        h.register_instance(ecs, cluster, cpu=4096, memory=8192)
    td = h.register_td(ecs, memory=128, cpu=128)
    out = ecs.run_task(cluster=cluster, taskDefinition=td["taskDefinitionArn"], count=3,
                       placementConstraints=[{"type": "distinctInstance"}])
    assert len(out["tasks"]) == 2
    assert len({t["containerInstanceArn"] for t in out["tasks"]}) == 2
    assert out["failures"], "the third task must be reported as a failure"


def test_resource_memory_failure(ecs, cl):
    td = h.register_td(ecs, memory=9000, cpu=128)
    tasks, failures = run(ecs, cl, td)
    assert tasks == []
    assert failures and {f["reason"] for f in failures} == {"RESOURCE:MEMORY"}
    assert {f["arn"] for f in failures} <= set(cl["arns"].values())
    assert ecs.list_tasks(cluster=cl["cluster"])["taskArns"] == []
    for name, (cpu, mem, _, _) in cl["spec"].items():
        assert remaining(ecs, cl, name) == (cpu, mem, 0, 0)


def test_resource_cpu_failure(ecs, cl):
    td = h.register_td(ecs, memory=128, cpu=5000)
    tasks, failures = run(ecs, cl, td)
    assert tasks == []
    assert failures and {f["reason"] for f in failures} == {"RESOURCE:CPU"}


def test_partial_placement_when_capacity_runs_out(ecs):
    cluster = h.new_cluster(ecs, "partial")
    ci = h.register_instance(ecs, cluster, cpu=1024, memory=1024)["containerInstanceArn"]
    td = h.register_td(ecs, memory=400, cpu=64)
    out = ecs.run_task(cluster=cluster, taskDefinition=td["taskDefinitionArn"], count=4)
    assert len(out["tasks"]) == 2
    assert out["failures"] and {f["reason"] for f in out["failures"]} == {"RESOURCE:MEMORY"}
    d = h.describe_instance(ecs, cluster, ci)
    assert h.resource(d["remainingResources"], "MEMORY") == 1024 - 800
    assert d["pendingTasksCount"] == 2


def test_host_ports_are_reserved(ecs):
    cluster = h.new_cluster(ecs, "ports")
    ci = h.register_instance(ecs, cluster)["containerInstanceArn"]
    td = h.register_td(ecs, memory=64, cpu=64, host_port=8080)
    first = h.run_one(ecs, cluster, td["taskDefinitionArn"])
    d = h.describe_instance(ecs, cluster, ci)
    assert "8080" in h.resource(d["remainingResources"], "PORTS")
    out = ecs.run_task(cluster=cluster, taskDefinition=td["taskDefinitionArn"])
    assert out["tasks"] == []
    assert {f["reason"] for f in out["failures"]} == {"RESOURCE:PORTS"}
    # A registered (agent-reserved) port is never handed out either.
    td22 = h.register_td(ecs, memory=64, cpu=64, host_port=22)
    out = ecs.run_task(cluster=cluster, taskDefinition=td22["taskDefinitionArn"])
    assert out["tasks"] == [] and {f["reason"] for f in out["failures"]} == {"RESOURCE:PORTS"}
    # Once the first task has stopped, its port is free again.
    ecs.stop_task(cluster=cluster, task=first["taskArn"])
    h.report(ecs, cluster, first["taskArn"], "STOPPED", exit_codes={"app": 0})
    d = h.describe_instance(ecs, cluster, ci)
    assert "8080" not in h.resource(d["remainingResources"], "PORTS")
    h.run_one(ecs, cluster, td["taskDefinitionArn"])


def test_accounting_exact_through_run_running_stop(ecs, cl):
    c = cl["cluster"]
    td = h.register_td(ecs, memory=512, cpu=256)
    tasks, failures = run(ecs, cl, td, count=3,
                          placementConstraints=[{"type": "memberOf",
                                                 "expression": "attribute:name == big"}])
    assert not failures and placed(cl, tasks) == Counter({"big": 3})
    assert remaining(ecs, cl, "big") == (4096 - 768, 8192 - 1536, 3, 0)
    cs = h.describe_cluster(ecs, c)
    assert (cs["pendingTasksCount"], cs["runningTasksCount"]) == (3, 0)
    assert cs["registeredContainerInstancesCount"] == 3

    h.report(ecs, c, tasks[0]["taskArn"], "RUNNING")
    h.report(ecs, c, tasks[1]["taskArn"], "RUNNING")
    assert remaining(ecs, cl, "big") == (4096 - 768, 8192 - 1536, 1, 2)
    cs = h.describe_cluster(ecs, c)
    assert (cs["pendingTasksCount"], cs["runningTasksCount"]) == (1, 2)

    # Stopping frees the resources once the task has stopped.
    ecs.stop_task(cluster=c, task=tasks[0]["taskArn"])
    h.report(ecs, c, tasks[0]["taskArn"], "STOPPED", exit_codes={"app": 0})
    ecs.stop_task(cluster=c, task=tasks[2]["taskArn"])
    h.report(ecs, c, tasks[2]["taskArn"], "STOPPED", exit_codes={"app": 0})
    assert remaining(ecs, cl, "big") == (4096 - 256, 8192 - 512, 0, 1)
    cs = h.describe_cluster(ecs, c)
    assert (cs["pendingTasksCount"], cs["runningTasksCount"]) == (0, 1)
    # A repeated STOPPED report does not free the resources twice.
    h.report(ecs, c, tasks[0]["taskArn"], "STOPPED", exit_codes={"app": 0})
    assert remaining(ecs, cl, "big") == (4096 - 256, 8192 - 512, 0, 1)
    for name in ("small", "mid"):
        cpu, mem, _, _ = cl["spec"][name]
        assert remaining(ecs, cl, name) == (cpu, mem, 0, 0)


def test_bad_strategy_and_constraint_rejected(ecs, cl):
    td = h.register_td(ecs)
    for strat in ([{"type": "binpack", "field": "disk"}], [{"type": "spread"}],
                  [{"type": "sideways"}]):
        h.expect_error("InvalidParameterException", ecs.run_task, cluster=cl["cluster"],
                       taskDefinition=td["taskDefinitionArn"], placementStrategy=strat)
    for cons in ([{"type": "memberOf"}], [{"type": "memberOf", "expression": "attribute:zone =="}],
                 [{"type": "distinctInstance", "expression": "attribute:zone == a"}]):
        h.expect_error("InvalidParameterException", ecs.run_task, cluster=cl["cluster"],
                       taskDefinition=td["taskDefinitionArn"], placementConstraints=cons)
    assert ecs.list_tasks(cluster=cl["cluster"])["taskArns"] == []


def test_concurrent_run_task_never_overcommits(ecs, server):
    import threading

    cluster = h.new_cluster(ecs, "race")
    ci = h.register_instance(ecs, cluster, cpu=4096, memory=1024)["containerInstanceArn"]
    td = h.register_td(ecs, memory=128, cpu=16)
    placed_arns, failures, errors = [], [], []

    def worker():
        c = server.client()
        try:
            for _ in range(3):
                out = c.run_task(cluster=cluster, taskDefinition=td["taskDefinitionArn"], count=2)
                placed_arns.extend(t["taskArn"] for t in out["tasks"])
                failures.extend(out.get("failures", []))
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:3]
    assert len(placed_arns) == 8, "1024 MiB holds exactly eight 128 MiB tasks"
    assert {f["reason"] for f in failures} == {"RESOURCE:MEMORY"}
    d = h.describe_instance(ecs, cluster, ci)
    assert h.resource(d["remainingResources"], "MEMORY") == 0
    assert d["pendingTasksCount"] == 8
    assert sorted(ecs.list_tasks(cluster=cluster)["taskArns"]) == sorted(placed_arns)
