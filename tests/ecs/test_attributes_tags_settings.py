"""Custom attributes, resource tags and account settings."""

from __future__ import annotations

import ecs_helpers as h


def attrs_of(ecs, cluster, arn):
    d = h.describe_instance(ecs, cluster, arn)
    return {a["name"]: a.get("value") for a in d.get("attributes", [])}


def test_put_list_delete_attributes(ecs, fresh):
    a = h.register_instance(ecs, fresh)["containerInstanceArn"]
    b = h.register_instance(ecs, fresh)["containerInstanceArn"]
    out = ecs.put_attributes(cluster=fresh, attributes=[
        {"name": "color", "value": "red", "targetType": "container-instance", "targetId": a},
        {"name": "color", "value": "blue", "targetType": "container-instance",
         "targetId": h.arn_id(b)},
        {"name": "gpu", "targetId": b},
    ])
    assert len(out["attributes"]) == 3
    assert attrs_of(ecs, fresh, a)["color"] == "red"
    assert attrs_of(ecs, fresh, b)["color"] == "blue"
    assert "gpu" in attrs_of(ecs, fresh, b)

    listed = ecs.list_attributes(cluster=fresh, targetType="container-instance",
                                 attributeName="color")["attributes"]
    assert sorted((x["targetId"].rsplit("/", 1)[-1], x["value"]) for x in listed) == sorted(
        [(h.arn_id(a), "red"), (h.arn_id(b), "blue")])
    red = ecs.list_attributes(cluster=fresh, targetType="container-instance",
                              attributeName="color", attributeValue="red")["attributes"]
    assert [x["targetId"].rsplit("/", 1)[-1] for x in red] == [h.arn_id(a)]

    # The attribute is usable in placement and in the list filter right away.
    assert ecs.list_container_instances(cluster=fresh, filter="attribute:color == blue")[
        "containerInstanceArns"] == [b]

    ecs.delete_attributes(cluster=fresh, attributes=[{"name": "color", "targetId": a}])
    assert "color" not in attrs_of(ecs, fresh, a)
    left = ecs.list_attributes(cluster=fresh, targetType="container-instance",
                               attributeName="color")["attributes"]
    assert [x["targetId"].rsplit("/", 1)[-1] for x in left] == [h.arn_id(b)]


def test_attribute_errors(ecs, fresh):
    h.expect_error("TargetNotFoundException", ecs.put_attributes, cluster=fresh, attributes=[
        {"name": "x", "value": "y", "targetType": "container-instance",
         "targetId": "0123456789abcdef0123456789abcdef"}])
    h.expect_error("ClusterNotFoundException", ecs.put_attributes, cluster=h.uid("missing"),
                   attributes=[{"name": "x", "value": "y", "targetType": "container-instance",
                                "targetId": "abc"}])
    ci = h.register_instance(ecs, fresh)["containerInstanceArn"]
    h.expect_error("InvalidParameterException", ecs.put_attributes, cluster=fresh, attributes=[
        {"name": "bad name!", "value": "y", "targetId": ci}])
    h.expect_error("InvalidParameterException", ecs.list_attributes, cluster=fresh,
                   targetType="container-instance", attributeValue="orphan-value")


def test_list_attributes_paginates(ecs, fresh):
    cis = [h.register_instance(ecs, fresh)["containerInstanceArn"] for _ in range(7)]
    ecs.put_attributes(cluster=fresh, attributes=[
        {"name": "pg", "value": str(i), "targetId": ci} for i, ci in enumerate(cis)])
    pages = list(ecs.get_paginator("list_attributes").paginate(
        cluster=fresh, targetType="container-instance", attributeName="pg",
        PaginationConfig={"PageSize": 3}))
    values = sorted(int(a["value"]) for p in pages for a in p["attributes"])
    assert values == list(range(7))
    assert len(pages) == 3


def test_tags_on_cluster_task_definition_instance_and_task(ecs, fresh):
    cluster_arn = h.describe_cluster(ecs, fresh)["clusterArn"]
    td = h.register_td(ecs)
    ci = h.register_instance(ecs, fresh)["containerInstanceArn"]
    task = h.run_one(ecs, fresh, td["taskDefinitionArn"])["taskArn"]
    for arn in (cluster_arn, td["taskDefinitionArn"], ci, task):
        ecs.tag_resource(resourceArn=arn, tags=[{"key": "env", "value": "test"},
                                                {"key": "owner", "value": "qa"}])
        got = ecs.list_tags_for_resource(resourceArn=arn)["tags"]
        assert sorted((t["key"], t["value"]) for t in got) == [("env", "test"), ("owner", "qa")]
        # Tagging an existing key overwrites its value.
        ecs.tag_resource(resourceArn=arn, tags=[{"key": "env", "value": "prod"}])
        ecs.untag_resource(resourceArn=arn, tagKeys=["owner"])
        assert ecs.list_tags_for_resource(resourceArn=arn)["tags"] == [
            {"key": "env", "value": "prod"}]
    c = h.describe_cluster(ecs, fresh, include=["TAGS"])
    assert c["tags"] == [{"key": "env", "value": "prod"}]


def test_tag_errors(ecs, fresh):
    arn = h.describe_cluster(ecs, fresh)["clusterArn"]
    missing = f"arn:aws:ecs:us-east-1:{h.ACCOUNT}:cluster/{h.uid('missing')}"
    h.expect_error(("ClusterNotFoundException", "ResourceNotFoundException",
                    "InvalidParameterException"),
                   ecs.tag_resource, resourceArn=missing, tags=[{"key": "a", "value": "b"}])
    h.expect_error(("InvalidParameterException", "ClientException"),
                   ecs.list_tags_for_resource, resourceArn="not-an-arn")
    h.expect_error("InvalidParameterException", ecs.tag_resource, resourceArn=arn,
                   tags=[{"key": "aws:reserved", "value": "x"}])
    h.expect_error("InvalidParameterException", ecs.tag_resource, resourceArn=arn,
                   tags=[{"key": f"k{i}", "value": "v"} for i in range(51)])
    assert ecs.list_tags_for_resource(resourceArn=arn)["tags"] == []


def test_account_settings(ecs):
    out = ecs.put_account_setting(name="containerInsights", value="enabled")["setting"]
    assert out["name"] == "containerInsights" and out["value"] == "enabled"
    assert out["principalArn"].startswith(f"arn:aws:iam::{h.ACCOUNT}:")
    got = ecs.list_account_settings(name="containerInsights")["settings"]
    assert [(s["name"], s["value"]) for s in got] == [("containerInsights", "enabled")]

    ecs.delete_account_setting(name="containerInsights")
    got = ecs.list_account_settings(name="containerInsights")["settings"]
    assert all(s["value"] != "enabled" for s in got)


def test_account_setting_default_and_effective_settings(ecs):
    d = ecs.put_account_setting_default(name="taskLongArnFormat", value="enabled")["setting"]
    assert (d["name"], d["value"]) == ("taskLongArnFormat", "enabled")
    eff = ecs.list_account_settings(name="taskLongArnFormat", effectiveSettings=True)["settings"]
    assert [(s["name"], s["value"]) for s in eff] == [("taskLongArnFormat", "enabled")]
    # An explicit setting for the caller overrides the default.
    ecs.put_account_setting(name="taskLongArnFormat", value="disabled")
    eff = ecs.list_account_settings(name="taskLongArnFormat", effectiveSettings=True)["settings"]
    assert [(s["name"], s["value"]) for s in eff] == [("taskLongArnFormat", "disabled")]
    ecs.delete_account_setting(name="taskLongArnFormat")
    eff = ecs.list_account_settings(name="taskLongArnFormat", effectiveSettings=True)["settings"]
    assert [(s["name"], s["value"]) for s in eff] == [("taskLongArnFormat", "enabled")]


def test_account_setting_errors(ecs):
    h.expect_error("InvalidParameterException", ecs.put_account_setting, name="noSuchSetting",
                   value="enabled")
    h.expect_error("InvalidParameterException", ecs.put_account_setting,
                   name="containerInsights", value="maybe")
    h.expect_error("InvalidParameterException", ecs.put_account_setting_default,
                   name="noSuchSetting", value="enabled")
