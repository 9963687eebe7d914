"""Container instances: register, describe, list (status, cluster query filter), drain, deregister."""

from __future__ import annotations

import ecs_helpers as h


def test_register_and_describe(ecs, fresh):
    ci = h.register_instance(ecs, fresh, cpu=2048, memory=3900,
                             attributes={"stack": "prod"})
    arn = ci["containerInstanceArn"]
    assert arn.startswith(f"arn:aws:ecs:us-east-1:{h.ACCOUNT}:container-instance/{fresh}/")
    assert ci["status"] == "ACTIVE"
    d = h.describe_instance(ecs, fresh, arn)
    assert d["containerInstanceArn"] == arn
    assert h.resource(d["registeredResources"], "CPU") == 2048
    assert h.resource(d["registeredResources"], "MEMORY") == 3900
    assert h.resource(d["remainingResources"], "CPU") == 2048
    assert h.resource(d["remainingResources"], "MEMORY") == 3900
    assert h.resource(d["remainingResources"], "PORTS") == set(h.DEFAULT_PORTS)
    assert d["runningTasksCount"] == 0 and d["pendingTasksCount"] == 0
    assert {"name": "stack", "value": "prod"} in [
        {"name": a["name"], "value": a.get("value")} for a in d["attributes"]]
    assert d["versionInfo"]["agentVersion"] == "1.80.0"
    assert h.describe_cluster(ecs, fresh)["registeredContainerInstancesCount"] == 1


def test_describe_by_id_and_missing(ecs, fresh):
    ci = h.register_instance(ecs, fresh)
    iid = h.arn_id(ci["containerInstanceArn"])
    missing = "0123456789abcdef0123456789abcdef"
    out = ecs.describe_container_instances(cluster=fresh, containerInstances=[iid, missing])
    assert [c["containerInstanceArn"] for c in out["containerInstances"]] == [
        ci["containerInstanceArn"]]
    assert len(out["failures"]) == 1
    assert out["failures"][0]["reason"] == "MISSING"
    assert out["failures"][0]["arn"].endswith(missing)


def test_register_on_missing_cluster(ecs):
    h.expect_error("ClusterNotFoundException", h.register_instance, ecs, h.uid("missing"))
    h.expect_error("ClusterNotFoundException", ecs.list_container_instances,
                   cluster=h.uid("missing"))
    h.expect_error("ClusterNotFoundException", ecs.describe_container_instances,
                   cluster=h.uid("missing"), containerInstances=["abc"])


def test_reregister_with_arn_keeps_identity(ecs, fresh):
    ci = h.register_instance(ecs, fresh, cpu=1024, memory=1024)
    again = ecs.register_container_instance(
        cluster=fresh, containerInstanceArn=ci["containerInstanceArn"],
        totalResources=h.total_resources(2048, 4096))["containerInstance"]
    assert again["containerInstanceArn"] == ci["containerInstanceArn"]
    d = h.describe_instance(ecs, fresh, ci["containerInstanceArn"])
    assert h.resource(d["registeredResources"], "MEMORY") == 4096
    assert len(ecs.list_container_instances(cluster=fresh)["containerInstanceArns"]) == 1


def test_list_with_cluster_query_filter(ecs, fresh):
    small = h.register_instance(ecs, fresh, instance_type="t3.small",
                                attributes={"zone": "a", "disk": "ssd"})
    big = h.register_instance(ecs, fresh, instance_type="m5.large",
                              attributes={"zone": "b", "disk": "ssd"})
    other = h.register_instance(ecs, fresh, instance_type="m5.large", attributes={"zone": "c"})
    ls = lambda f: set(ecs.list_container_instances(cluster=fresh, filter=f)[  # noqa: E731
        "containerInstanceArns"])
    assert ls("attribute:zone == a") == {small["containerInstanceArn"]}
    assert ls("attribute:zone in [a, b]") == {small["containerInstanceArn"],
                                              big["containerInstanceArn"]}
    assert ls("attribute:disk exists") == {small["containerInstanceArn"],
                                           big["containerInstanceArn"]}
    assert ls("attribute:zone != a and attribute:disk exists") == {big["containerInstanceArn"]}
    assert ls("attribute:zone == c or attribute:zone == a") == {
        small["containerInstanceArn"], other["containerInstanceArn"]}
    h.expect_error("InvalidParameterException", ecs.list_container_instances, cluster=fresh,
                   filter="attribute:zone === ")


def test_drain_and_list_by_status(ecs, fresh):
    a = h.register_instance(ecs, fresh)["containerInstanceArn"]
    b = h.register_instance(ecs, fresh)["containerInstanceArn"]
    out = ecs.update_container_instances_state(cluster=fresh, containerInstances=[a],
                                               status="DRAINING")
    assert [c["status"] for c in out["containerInstances"]] == ["DRAINING"]
    assert ecs.list_container_instances(cluster=fresh, status="DRAINING")[
        "containerInstanceArns"] == [a]
    assert ecs.list_container_instances(cluster=fresh, status="ACTIVE")[
        "containerInstanceArns"] == [b]
    # RunTask never places on a draining instance.
    td = h.register_td(ecs)
    tasks = ecs.run_task(cluster=fresh, taskDefinition=td["taskDefinitionArn"], count=4)["tasks"]
    assert len(tasks) == 4
    assert {t["containerInstanceArn"] for t in tasks} == {b}
    # Back to ACTIVE.
    ecs.update_container_instances_state(cluster=fresh, containerInstances=[a], status="ACTIVE")
    assert h.describe_instance(ecs, fresh, a)["status"] == "ACTIVE"
    h.expect_error("InvalidParameterException", ecs.update_container_instances_state,
                   cluster=fresh, containerInstances=[a], status="SLEEPING")


def test_update_state_of_missing_instance_is_a_failure(ecs, fresh):
    out = ecs.update_container_instances_state(
        cluster=fresh, containerInstances=["0123456789abcdef0123456789abcdef"], status="DRAINING")
    assert not out.get("containerInstances")
    assert out["failures"][0]["reason"] == "MISSING"


def test_deregister_with_tasks_needs_force(ecs, fresh):
    ci = h.register_instance(ecs, fresh)["containerInstanceArn"]
    td = h.register_td(ecs)
    task = h.run_one(ecs, fresh, td["taskDefinitionArn"])
    h.report(ecs, fresh, task["taskArn"], "RUNNING")
    h.expect_error(("InvalidParameterException", "ClientException"),
                   ecs.deregister_container_instance, cluster=fresh, containerInstance=ci)
    assert ecs.list_container_instances(cluster=fresh)["containerInstanceArns"] == [ci]
    out = ecs.deregister_container_instance(cluster=fresh, containerInstance=ci, force=True)
    assert out["containerInstance"]["status"] == "INACTIVE"
    assert ecs.list_container_instances(cluster=fresh)["containerInstanceArns"] == []
    assert h.describe_cluster(ecs, fresh)["registeredContainerInstancesCount"] == 0


def test_deregister_missing_instance(ecs, fresh):
    h.expect_error(("InvalidParameterException", "ClientException"),
                   ecs.deregister_container_instance, cluster=fresh,
                   containerInstance="0123456789abcdef0123456789abcdef")


def test_list_container_instances_paginates(ecs, fresh):
    arns = {h.register_instance(ecs, fresh)["containerInstanceArn"] for _ in range(26)}
    pages = list(ecs.get_paginator("list_container_instances").paginate(
        cluster=fresh, PaginationConfig={"PageSize": 4}))
    got = [a for p in pages for a in p["containerInstanceArns"]]
    assert len(got) == 26 and set(got) == arns
    assert [len(p["containerInstanceArns"]) for p in pages] == [4] * 6 + [2]


def test_discover_poll_endpoint(ecs, fresh):
    ci = h.register_instance(ecs, fresh)["containerInstanceArn"]
    out = ecs.discover_poll_endpoint(cluster=fresh, containerInstance=ci)
    assert out["endpoint"].startswith("http")
    assert out.get("telemetryEndpoint", "").startswith("http")
