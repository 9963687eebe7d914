"""`--no-auth` mode and the AWS JSON 1.1 wire rules, checked with plain HTTP requests."""

from __future__ import annotations

import json
import time

import pytest
import requests

import ecs_helpers as h

TARGET = "AmazonEC2ContainerServiceV20141113."


@pytest.fixture(scope="module")
def open_server(servers):
    return servers.start(auth=False, extra_args=["--account-id", "210987654321"])


def call(srv, op, payload=None, raw=None, headers=None):
    hdrs = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": TARGET + op}
    hdrs.update(headers or {})
    data = raw if raw is not None else json.dumps(payload or {})
    return requests.post(srv.url + "/", data=data, headers=hdrs, timeout=30)


def err(resp):
    return resp.json().get("__type", "").rsplit("#", 1)[-1]


def test_no_auth_announced_and_no_credentials_needed(open_server):
    assert open_server.lines[1].strip() == "authentication disabled (--no-auth)"
    resp = call(open_server, "CreateCluster", {"clusterName": "open"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["cluster"]["clusterArn"] == "arn:aws:ecs:us-east-1:210987654321:cluster/open"


def test_no_auth_accepts_unsigned_boto3_and_any_signed_client(open_server):
    unsigned = open_server.client(unsigned=True)
    name = h.new_cluster(unsigned)
    signed = open_server.client(access_key="AKIAANYTHING", secret_key="whatever")
    assert h.describe_cluster(signed, name)["clusterName"] == name
    # With --no-auth the region still comes from a signature's scope when there is one.
    eu = open_server.client(region="eu-central-1", access_key="AKIAANYTHING", secret_key="x")
    arn = eu.create_cluster(clusterName=h.uid("eu"))["cluster"]["clusterArn"]
    assert arn.startswith("arn:aws:ecs:eu-central-1:210987654321:cluster/")


def test_success_response_shape(open_server):
    resp = call(open_server, "ListClusters", {})
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("application/x-amz-json-1.1")
    assert resp.headers.get("x-amzn-RequestId")
    assert isinstance(resp.json()["clusterArns"], list)


def test_request_ids_are_unique(open_server):
    ids = {call(open_server, "ListClusters").headers.get("x-amzn-RequestId") for _ in range(5)}
    assert len(ids) == 5 and None not in ids


def test_timestamps_are_epoch_seconds(open_server):
    c = h.uid("ts")
    call(open_server, "CreateCluster", {"clusterName": c})
    call(open_server, "RegisterContainerInstance", {
        "cluster": c, "totalResources": h.total_resources(1024, 1024)})
    td = call(open_server, "RegisterTaskDefinition", {
        "family": h.uid("f"), "containerDefinitions": [h.container()]}).json()["taskDefinition"]
    assert isinstance(td["registeredAt"], (int, float))
    assert abs(td["registeredAt"] - time.time()) < 300
    task = call(open_server, "RunTask", {"cluster": c, "taskDefinition": td["taskDefinitionArn"]}
                ).json()["tasks"][0]
    assert isinstance(task["createdAt"], (int, float))
    assert abs(task["createdAt"] - time.time()) < 300


def test_error_shape(open_server):
    resp = call(open_server, "DeleteCluster", {"cluster": h.uid("missing")})
    assert resp.status_code == 400
    assert resp.headers["Content-Type"].startswith("application/x-amz-json-1.1")
    assert resp.headers.get("x-amzn-RequestId")
    body = resp.json()
    assert err(resp) == "ClusterNotFoundException"
    assert body.get("message")


def test_missing_required_parameter_is_a_client_error(open_server):
    resp = call(open_server, "DescribeTasks", {"cluster": "default"})
    assert resp.status_code == 400
    assert err(resp) in ("InvalidParameterException", "ClientException")


def test_wrong_parameter_type_is_a_client_error(open_server):
    resp = call(open_server, "RunTask", {"taskDefinition": "x", "count": "three"})
    assert resp.status_code == 400
    assert err(resp) in ("InvalidParameterException", "ClientException", "SerializationException")


def test_malformed_json_is_a_client_error(open_server):
    resp = call(open_server, "ListClusters", raw="{not json")
    assert resp.status_code == 400
    assert err(resp) in ("SerializationException", "InvalidParameterException",
                         "ClientException")


def test_unknown_operation(open_server):
    resp = call(open_server, "LaunchRockets", {})
    assert resp.status_code == 400
    assert err(resp) in ("UnknownOperationException", "InvalidAction")


def test_missing_target_header(open_server):
    resp = requests.post(open_server.url + "/", data="{}", timeout=30,
                         headers={"Content-Type": "application/x-amz-json-1.1"})
    assert 400 <= resp.status_code < 500


def test_non_post_is_refused(open_server):
    resp = requests.get(open_server.url + "/", timeout=30)
    assert 400 <= resp.status_code < 500


def test_describe_failures_use_missing_reason(open_server):
    resp = call(open_server, "DescribeClusters", {"clusters": ["nope-1", "nope-2"]})
    body = resp.json()
    assert body["clusters"] == []
    assert [f["reason"] for f in body["failures"]] == ["MISSING", "MISSING"]
    assert [f["arn"] for f in body["failures"]] == [
        "arn:aws:ecs:us-east-1:210987654321:cluster/nope-1",
        "arn:aws:ecs:us-east-1:210987654321:cluster/nope-2"]
