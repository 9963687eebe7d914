"""The agent channel (`GET /v1/agent/watch`, docs/agent-protocol.md) with botocore's SigV4
signer: a signed GET with ARNs in the query streams NDJSON events; unsigned requests are
refused when auth is on and accepted with `--no-auth`."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

import ecs_helpers as h


def watch_url(srv, cluster: str, instance: str) -> str:
    return (f"{srv.url}/v1/agent/watch?cluster={quote(cluster, safe='')}"
            f"&containerInstance={quote(instance, safe='')}")


def signed_get(url: str, ak: str, sk: str):
    req = AWSRequest(method="GET", url=url)
    SigV4Auth(Credentials(ak, sk), "ecs", "us-east-1").add_auth(req)
    return requests.get(url, headers=dict(req.headers.items()), stream=True, timeout=30)


def lines(resp):
    for line in resp.iter_lines():
        if line.strip():
            yield json.loads(line)


def test_signed_channel_streams_events(server, ecs):
    cluster = h.new_cluster(ecs)
    cluster_arn = h.describe_cluster(ecs, cluster)["clusterArn"]
    inst = h.register_instance(ecs, cluster)["containerInstanceArn"]
    td = h.register_td(ecs, host_port=8080)["taskDefinitionArn"]
    ak, sk = server.credentials()
    with signed_get(watch_url(server, cluster_arn, inst), ak, sk) as resp:
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"] == "application/x-ndjson"
        events = lines(resp)
        first = next(events)
        assert first["type"] == "snapshot" and first["tasks"] == []
        assert h.describe_instance(ecs, cluster, inst)["agentConnected"] is True
        task = h.run_one(ecs, cluster, td)
        e = next(events)
        assert e["type"] == "task"
        assert e["assignment"]["task"]["taskArn"] == task["taskArn"]
        assert e["assignment"]["taskDefinition"]["taskDefinitionArn"] == td
        assert e["assignment"]["hostPorts"] == [
            {"containerName": "app", "containerPort": 80, "hostPort": 8080, "protocol": "tcp"}]


def test_unsigned_or_bad_channel_requests_are_ecs_errors(server, ecs):
    cluster = h.new_cluster(ecs)
    inst = h.register_instance(ecs, cluster)["containerInstanceArn"]
    resp = requests.get(watch_url(server, cluster, inst), timeout=30)
    assert resp.status_code == 400
    assert resp.json()["__type"].endswith("MissingAuthenticationTokenException")
    ak, sk = server.credentials()
    with signed_get(watch_url(server, cluster, "0123456789abcdef"), ak, sk) as resp:
        assert resp.status_code == 400
        assert resp.json()["__type"].endswith("InvalidParameterException")
    with signed_get(watch_url(server, h.uid("missing"), inst), ak, sk) as resp:
        assert resp.status_code == 400
        assert resp.json()["__type"].endswith("ClusterNotFoundException")


@pytest.fixture(scope="module")
def open_server(servers):
    return servers.start(auth=False)


def test_no_auth_channel_accepts_unsigned(open_server):
    ecs = open_server.client(unsigned=True)
    cluster = h.new_cluster(ecs)
    inst = h.register_instance(ecs, cluster)["containerInstanceArn"]
    with requests.get(watch_url(open_server, cluster, inst), stream=True, timeout=30) as resp:
        assert resp.status_code == 200, resp.text
        assert next(lines(resp))["type"] == "snapshot"
