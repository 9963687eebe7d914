"""Signs requests with real botocore code and prints them as JSON lines, for
crates/auth/tests/real_clients.rs.

Input (stdin): {"endpoint": "http://127.0.0.1:9400", "access_key_id": ..., "secret_access_key": ...}
Output (stdout): one JSON object per request: name, method, url, headers, body (latin-1 text).

Client requests go through a botocore ECS client -- the exact stack the aws CLI and boto3 use
(endpoint override, retries, user agent, SigV4) -- and are captured by a `before-send` hook
that answers with a canned response instead of sending. Raw requests (paths and query strings
ECS never uses) are signed with botocore.auth.SigV4Auth directly.
"""
import json
import sys

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, AWSResponse
from botocore.credentials import Credentials

cfg = json.load(sys.stdin)
endpoint = cfg["endpoint"]
out = []


class _Raw:
    def __init__(self, body):
        self._body = body

    def stream(self, **kwargs):
        yield self._body


def capture(name):
    def hook(request, **kwargs):
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        out.append({
            "name": name,
            "method": request.method,
            "url": request.url,
            "headers": [[k, v if isinstance(v, str) else v.decode("latin-1")]
                        for k, v in request.headers.items()],
            "body": body.decode("latin-1"),
        })
        return AWSResponse(request.url, 200, {"Content-Type": "application/x-amz-json-1.1"},
                           _Raw(b'{"clusterArns": [], "cluster": {}}'))
    return hook


def client(region, token=None, name="x"):
    session = botocore.session.get_session()
    c = session.create_client(
        "ecs", region_name=region, endpoint_url=endpoint,
        aws_access_key_id=cfg["access_key_id"],
        aws_secret_access_key=cfg["secret_access_key"],
        aws_session_token=token)
    c.meta.events.register_first("before-send", capture(name))
    return c


client("us-east-1", name="ecs-list-clusters").list_clusters()
client("eu-west-1", name="ecs-create-cluster-eu-west-1").create_cluster(
    clusterName="demo", tags=[{"key": "owner", "value": "zoë ☃ & co"}])
client("us-west-2", name="ecs-register-task-definition").register_task_definition(
    family="web", containerDefinitions=[{
        "name": "web", "image": "nginx:latest", "memory": 128,
        "command": ["sh", "-c", "echo 'hi  there'  \t && sleep 1"],
        "environment": [{"name": "K%2F", "value": "a+b c/d?e=f&g"}]}])
client("us-east-1", token="FQoGZXIvYXdzEXAMPLETOKEN", name="ecs-session-token").list_clusters()


def raw(name, method, url, region, body=b"", headers=None):
    req = AWSRequest(method=method, url=url, data=body, headers=headers or {})
    SigV4Auth(Credentials(cfg["access_key_id"], cfg["secret_access_key"]), "ecs", region).add_auth(req)
    prepared = req.prepare()
    out.append({
        "name": name,
        "method": prepared.method,
        "url": prepared.url,
        "headers": [[k, v if isinstance(v, str) else v.decode("latin-1")]
                    for k, v in prepared.headers.items()],
        "body": (prepared.body or b"").decode("latin-1") if isinstance(prepared.body or b"", bytes)
        else prepared.body,
    })


raw("raw-get-query", "GET",
    endpoint + "/a%20b/./c//d/../e?x=1&y=a%2Fb&z=%E1%88%B4&empty=&A=upper&x=0&tilde=~-_.",
    "ap-southeast-2")
raw("raw-post-headers", "POST", endpoint + "/",
    "us-east-1", body=b'{"k": "v"}',
    headers={"X-Amz-Target": "AmazonEC2ContainerServiceV20141113.ListClusters",
             "Content-Type": "application/x-amz-json-1.1",
             "X-Custom": "  spaced   out   value  "})

for item in out:
    print(json.dumps(item))
