"""SigV4 authentication: signed clients pass; unsigned, unknown-key, wrongly signed, tampered
and stale requests are refused with the codes AWS uses; the key pair lives in the store."""

from __future__ import annotations

import datetime
import json
import os
import stat
from unittest import mock

import botocore.auth
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

import ecs_helpers as h

TARGET = "AmazonEC2ContainerServiceV20141113."
HEADERS = {"Content-Type": "application/x-amz-json-1.1"}


def post(url, op, body, headers=None):
    hdrs = dict(HEADERS, **{"X-Amz-Target": TARGET + op})
    hdrs.update(headers or {})
    return requests.post(url + "/", data=body, headers=hdrs, timeout=30)


def signed_headers(url, op, body, ak, sk, region="us-east-1"):
    req = AWSRequest(method="POST", url=url + "/", data=body,
                     headers=dict(HEADERS, **{"X-Amz-Target": TARGET + op}))
    SigV4Auth(Credentials(ak, sk), "ecs", region).add_auth(req)
    return dict(req.headers.items())


def error_type(resp) -> str:
    body = resp.json()
    t = body.get("__type", "")
    return t.rsplit("#", 1)[-1]


def test_startup_prints_url_and_credentials_path(server):
    assert server.url.startswith("http://127.0.0.1:")
    assert server.lines[1].startswith(f"credentials: {server.credentials_path}")
    assert f"AWS_SHARED_CREDENTIALS_FILE={server.credentials_path}" in server.lines[1]


def test_credentials_file_is_private_and_well_formed(server):
    mode = stat.S_IMODE(os.stat(server.credentials_path).st_mode)
    assert mode == 0o600, oct(mode)
    ak, sk = server.credentials()
    assert len(ak) >= 16 and len(sk) >= 30 and ak != sk


def test_signed_client_works(ecs):
    name = h.new_cluster(ecs)
    assert h.describe_cluster(ecs, name)["status"] == "ACTIVE"


def test_unsigned_request_is_rejected(server):
    body = json.dumps({"clusterName": h.uid("unsigned")})
    resp = post(server.url, "CreateCluster", body)
    assert resp.status_code in (400, 403)
    assert error_type(resp) in ("MissingAuthenticationTokenException",
                                "UnrecognizedClientException")
    assert resp.json().get("message") or resp.json().get("Message")
    # Nothing was created.
    assert not any(a.endswith(json.loads(body)["clusterName"])
                   for a in server.client().list_clusters()["clusterArns"])


def test_unsigned_boto3_client_is_rejected(server):
    c = server.client(unsigned=True)
    with pytest.raises(ClientError) as ei:
        c.list_clusters()
    assert h.error_code(ei.value) in ("MissingAuthenticationTokenException",
                                      "UnrecognizedClientException")


def test_unknown_access_key_is_unrecognized_client(server):
    c = server.client(access_key="AKIAUNKNOWNKEY000000", secret_key="x" * 40)
    with pytest.raises(ClientError) as ei:
        c.list_clusters()
    assert h.error_code(ei.value) == "UnrecognizedClientException"
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] in (400, 403)


def test_wrong_secret_is_invalid_signature(server):
    ak, sk = server.credentials()
    c = server.client(access_key=ak, secret_key=sk[:-4] + "ABCD")
    name = h.uid("wrongsig")
    with pytest.raises(ClientError) as ei:
        c.create_cluster(clusterName=name)
    assert h.error_code(ei.value) == "InvalidSignatureException"
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] in (400, 403)
    good = server.client()
    assert good.describe_clusters(clusters=[name])["failures"][0]["reason"] == "MISSING"


def test_tampered_body_is_invalid_signature(server):
    ak, sk = server.credentials()
    body = json.dumps({"clusterName": h.uid("signed")})
    hdrs = signed_headers(server.url, "CreateCluster", body, ak, sk)
    ok = requests.post(server.url + "/", data=body, headers=hdrs, timeout=30)
    assert ok.status_code == 200, ok.text
    tampered = json.dumps({"clusterName": h.uid("tampered")})
    hdrs = signed_headers(server.url, "CreateCluster", body, ak, sk)
    bad = requests.post(server.url + "/", data=tampered, headers=hdrs, timeout=30)
    assert bad.status_code in (400, 403)
    assert error_type(bad) == "InvalidSignatureException"
    # A different target under the same signature is refused as well.
    hdrs = signed_headers(server.url, "ListClusters", "{}", ak, sk)
    hdrs["X-Amz-Target"] = TARGET + "DeleteCluster"
    bad = requests.post(server.url + "/", data="{}", headers=hdrs, timeout=30)
    assert error_type(bad) == "InvalidSignatureException"


def test_stale_signature_is_rejected(server):
    ak, sk = server.credentials()
    old = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) - \
        datetime.timedelta(hours=1)
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=old):
        hdrs = signed_headers(server.url, "ListClusters", "{}", ak, sk)
    resp = requests.post(server.url + "/", data="{}", headers=hdrs, timeout=30)
    assert resp.status_code in (400, 403)
    assert error_type(resp) == "InvalidSignatureException"


def test_garbled_authorization_header(server):
    resp = post(server.url, "ListClusters", "{}",
                headers={"Authorization": "AWS4-HMAC-SHA256 Credential=nonsense",
                         "X-Amz-Date": "20250101T000000Z"})
    assert resp.status_code in (400, 403)
    assert error_type(resp) in ("IncompleteSignatureException", "InvalidSignatureException",
                                "UnrecognizedClientException")


def test_region_comes_from_the_signature_scope(server):
    eu = server.client(region="eu-west-1")
    name = h.uid("eu")
    arn = eu.create_cluster(clusterName=name)["cluster"]["clusterArn"]
    assert arn == f"arn:aws:ecs:eu-west-1:{h.ACCOUNT}:cluster/{name}"


def test_credentials_reused_after_restart(servers):
    srv = servers.start()
    first = srv.credentials()
    c = srv.client()
    name = h.new_cluster(c)
    assert srv.terminate() == 0, "SIGTERM must shut the server down cleanly with exit 0"
    srv.start()
    assert srv.credentials() == first
    assert h.describe_cluster(srv.client(), name)["status"] == "ACTIVE"
