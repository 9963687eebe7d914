"""Clusters through boto3: create, describe (STATISTICS/TAGS/SETTINGS), list, update, delete."""

from __future__ import annotations

import datetime

import ecs_helpers as h


def test_create_cluster_returns_active_cluster_with_arn(ecs):
    name = h.uid("c")
    resp = ecs.create_cluster(clusterName=name)
    c = resp["cluster"]
    assert c["clusterName"] == name
    assert c["clusterArn"] == f"arn:aws:ecs:us-east-1:{h.ACCOUNT}:cluster/{name}"
    assert c["status"] == "ACTIVE"
    assert c["registeredContainerInstancesCount"] == 0
    assert c["runningTasksCount"] == 0
    assert c["pendingTasksCount"] == 0
    assert resp["ResponseMetadata"]["HTTPHeaders"].get("x-amzn-requestid")


def test_create_cluster_without_name_creates_default(ecs):
    c = ecs.create_cluster()["cluster"]
    assert c["clusterName"] == "default"
    # DescribeClusters with no cluster describes `default`, and so do cluster-less calls.
    described = ecs.describe_clusters()["clusters"]
    assert [x["clusterName"] for x in described] == ["default"]
    assert c["clusterArn"] in ecs.list_clusters()["clusterArns"]


def test_create_cluster_twice_returns_the_same_cluster(ecs):
    name = h.uid("c")
    a = ecs.create_cluster(clusterName=name)["cluster"]
    b = ecs.create_cluster(clusterName=name)["cluster"]
    assert a["clusterArn"] == b["clusterArn"]
    arns = ecs.list_clusters()["clusterArns"]
    assert arns.count(a["clusterArn"]) == 1


def test_describe_clusters_by_name_and_arn_and_missing(ecs):
    a = h.new_cluster(ecs)
    b = h.new_cluster(ecs)
    arn_b = f"arn:aws:ecs:us-east-1:{h.ACCOUNT}:cluster/{b}"
    missing = h.uid("missing")
    out = ecs.describe_clusters(clusters=[a, arn_b, missing])
    assert sorted(c["clusterName"] for c in out["clusters"]) == sorted([a, b])
    assert len(out["failures"]) == 1
    f = out["failures"][0]
    assert f["reason"] == "MISSING"
    assert f["arn"] == f"arn:aws:ecs:us-east-1:{h.ACCOUNT}:cluster/{missing}"


def test_describe_clusters_include_tags_settings_statistics(ecs):
    name = h.uid("c")
    ecs.create_cluster(clusterName=name, tags=[{"key": "team", "value": "blue"}],
                       settings=[{"name": "containerInsights", "value": "enabled"}])
    plain = h.describe_cluster(ecs, name)
    assert not plain.get("tags"), "tags are only returned with include=TAGS"
    full = h.describe_cluster(ecs, name, include=["TAGS", "SETTINGS", "STATISTICS"])
    assert full["tags"] == [{"key": "team", "value": "blue"}]
    assert {"name": "containerInsights", "value": "enabled"} in full["settings"]
    assert isinstance(full.get("statistics"), list)


def test_update_cluster_settings_and_update_cluster(ecs):
    name = h.new_cluster(ecs)
    out = ecs.update_cluster_settings(cluster=name,
                                      settings=[{"name": "containerInsights", "value": "enabled"}])
    assert {"name": "containerInsights", "value": "enabled"} in out["cluster"]["settings"]
    c = h.describe_cluster(ecs, name, include=["SETTINGS"])
    assert {"name": "containerInsights", "value": "enabled"} in c["settings"]

    out = ecs.update_cluster(cluster=name,
                             settings=[{"name": "containerInsights", "value": "disabled"}])
    assert {"name": "containerInsights", "value": "disabled"} in out["cluster"]["settings"]
    c = h.describe_cluster(ecs, name, include=["SETTINGS"])
    assert {"name": "containerInsights", "value": "disabled"} in c["settings"]


def test_update_missing_cluster_is_cluster_not_found(ecs):
    missing = h.uid("missing")
    h.expect_error("ClusterNotFoundException", ecs.update_cluster_settings, cluster=missing,
                   settings=[{"name": "containerInsights", "value": "enabled"}])
    h.expect_error("ClusterNotFoundException", ecs.update_cluster, cluster=missing,
                   settings=[{"name": "containerInsights", "value": "enabled"}])


def test_bad_cluster_setting_is_invalid_parameter(ecs):
    name = h.new_cluster(ecs)
    h.expect_error(("InvalidParameterException", "ClientException"),
                   ecs.update_cluster_settings, cluster=name,
                   settings=[{"name": "containerInsights", "value": "sometimes"}])


def test_delete_cluster(ecs):
    name = h.new_cluster(ecs)
    arn = h.describe_cluster(ecs, name)["clusterArn"]
    out = ecs.delete_cluster(cluster=name)
    assert out["cluster"]["clusterArn"] == arn
    assert out["cluster"]["status"] == "INACTIVE"
    assert arn not in ecs.list_clusters()["clusterArns"]
    # AWS keeps describing a deleted cluster as INACTIVE for a while; never as ACTIVE.
    d = ecs.describe_clusters(clusters=[name])
    assert all(c["status"] == "INACTIVE" for c in d["clusters"])
    # A deleted cluster takes no new work.
    td = h.register_td(ecs)
    h.expect_error("ClusterNotFoundException", ecs.run_task, cluster=name,
                   taskDefinition=td["taskDefinitionArn"])
    # The name can be used again.
    again = ecs.create_cluster(clusterName=name)["cluster"]
    assert again["status"] == "ACTIVE"


def test_delete_missing_cluster_is_cluster_not_found(ecs):
    h.expect_error("ClusterNotFoundException", ecs.delete_cluster, cluster=h.uid("missing"))


def test_delete_cluster_with_instances_is_refused(ecs):
    name = h.new_cluster(ecs)
    ci = h.register_instance(ecs, name)
    h.expect_error("ClusterContainsContainerInstancesException", ecs.delete_cluster, cluster=name)
    ecs.deregister_container_instance(cluster=name,
                                      containerInstance=ci["containerInstanceArn"])
    assert ecs.delete_cluster(cluster=name)["cluster"]["status"] == "INACTIVE"


def test_cluster_counts_follow_instances_and_tasks(ecs):
    name = h.new_cluster(ecs)
    h.register_instance(ecs, name)
    h.register_instance(ecs, name)
    td = h.register_td(ecs)
    tasks = ecs.run_task(cluster=name, taskDefinition=td["taskDefinitionArn"], count=3)["tasks"]
    c = h.describe_cluster(ecs, name)
    assert c["registeredContainerInstancesCount"] == 2
    assert c["pendingTasksCount"] == 3
    assert c["runningTasksCount"] == 0
    h.report(ecs, name, tasks[0]["taskArn"], "RUNNING")
    c = h.describe_cluster(ecs, name)
    assert (c["pendingTasksCount"], c["runningTasksCount"]) == (2, 1)
    h.report(ecs, name, tasks[0]["taskArn"], "STOPPED", exit_codes={"app": 0})
    c = h.describe_cluster(ecs, name)
    assert (c["pendingTasksCount"], c["runningTasksCount"]) == (2, 0)


def test_list_clusters_paginates_without_gaps_or_duplicates(ecs):
    names = [h.new_cluster(ecs, "pg") for _ in range(23)]
    want = {f"arn:aws:ecs:us-east-1:{h.ACCOUNT}:cluster/{n}" for n in names}
    pages = list(ecs.get_paginator("list_clusters").paginate(PaginationConfig={"PageSize": 4}))
    seen = [a for p in pages for a in p["clusterArns"]]
    assert len(seen) == len(set(seen)), "a cluster was listed twice"
    assert want <= set(seen)
    assert all(len(p["clusterArns"]) <= 4 for p in pages)
    assert len(pages) >= 6
    assert "nextToken" not in pages[-1]
    # By hand: maxResults caps the page and nextToken goes on from where it stopped.
    first = ecs.list_clusters(maxResults=5)
    assert len(first["clusterArns"]) == 5 and first.get("nextToken")
    second = ecs.list_clusters(maxResults=5, nextToken=first["nextToken"])
    assert not set(first["clusterArns"]) & set(second["clusterArns"])


def test_cluster_timestamps_and_arn_shape_on_the_wire(ecs):
    # boto3 parses epoch-second timestamps into datetimes; a task carries createdAt.
    name = h.new_cluster(ecs)
    h.register_instance(ecs, name)
    td = h.register_td(ecs)
    t = h.run_one(ecs, name, td["taskDefinitionArn"])
    assert isinstance(t["createdAt"], datetime.datetime)
    age = datetime.datetime.now(datetime.timezone.utc) - t["createdAt"]
    assert datetime.timedelta(seconds=-5) < age < datetime.timedelta(minutes=5)
