"""The SSM Parameter Store API on the control plane's endpoint (the other source ECS
`secrets[].valueFrom` reads), driven by boto3 and the aws CLI."""

from __future__ import annotations

import base64
import subprocess
import uuid

import pytest
from botocore.exceptions import ClientError

from conftest import REGION, aws_exe


@pytest.fixture(scope="module")
def ssm(server):
    return server.client(service="ssm")


def code(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


def root() -> str:
    return f"/berth-test/{uuid.uuid4().hex[:10]}"


def test_put_get_overwrite_and_versions(ssm):
    name = f"{root()}/db/url"
    assert ssm.put_parameter(Name=name, Value="postgres://a", Type="String",
                             Description="db")["Version"] == 1
    p = ssm.get_parameter(Name=name)["Parameter"]
    assert p["Value"] == "postgres://a" and p["Version"] == 1 and p["Type"] == "String"
    assert p["ARN"] == f"arn:aws:ssm:{REGION}:123456789012:parameter{name}"
    with pytest.raises(ClientError) as e:
        ssm.put_parameter(Name=name, Value="b", Type="String")
    assert code(e) == "ParameterAlreadyExists"
    assert ssm.put_parameter(Name=name, Value="postgres://b", Overwrite=True)["Version"] == 2
    assert ssm.get_parameter(Name=p["ARN"])["Parameter"]["Value"] == "postgres://b"
    assert ssm.get_parameter(Name=f"{name}:2")["Parameter"]["Version"] == 2
    with pytest.raises(ClientError) as e:
        ssm.get_parameter(Name=f"{name}:1")
    assert code(e) == "ParameterVersionNotFound"


def test_secure_strings_need_decryption(ssm):
    name = f"{root()}/token"
    ssm.put_parameter(Name=name, Value="t0ken", Type="SecureString")
    assert ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"] == "t0ken"
    hidden = ssm.get_parameter(Name=name)["Parameter"]["Value"]
    assert hidden != "t0ken" and base64.b64decode(hidden) == b"t0ken"


def test_errors_and_batches(ssm):
    r = root()
    with pytest.raises(ClientError) as e:
        ssm.get_parameter(Name=f"{r}/missing")
    assert code(e) == "ParameterNotFound"
    with pytest.raises(ClientError) as e:
        ssm.put_parameter(Name=f"{r}/new", Value="x")
    assert code(e) == "ValidationException"
    with pytest.raises(ClientError) as e:
        ssm.put_parameter(Name="no/leading/slash", Value="x", Type="String")
    assert code(e) == "ValidationException"
    ssm.put_parameter(Name=f"{r}/a", Value="1", Type="String")
    ssm.put_parameter(Name=f"{r}/b", Value="2", Type="StringList")
    got = ssm.get_parameters(Names=[f"{r}/a", f"{r}/b", f"{r}/zz"])
    assert sorted(p["Value"] for p in got["Parameters"]) == ["1", "2"]
    assert got["InvalidParameters"] == [f"{r}/zz"]
    out = ssm.delete_parameters(Names=[f"{r}/a", f"{r}/zz"])
    assert out["DeletedParameters"] == [f"{r}/a"] and out["InvalidParameters"] == [f"{r}/zz"]
    ssm.delete_parameter(Name=f"{r}/b")
    with pytest.raises(ClientError) as e:
        ssm.delete_parameter(Name=f"{r}/b")
    assert code(e) == "ParameterNotFound"


def test_by_path_recursive_and_paginated(ssm):
    r = root()
    names = [f"{r}/app/k{i}" for i in range(5)] + [f"{r}/app/deep/k9"]
    for n in names:
        ssm.put_parameter(Name=n, Value=n[-2:], Type="String")
    flat = [p["Name"] for page in ssm.get_paginator("get_parameters_by_path").paginate(
        Path=f"{r}/app", PaginationConfig={"PageSize": 2}) for p in page["Parameters"]]
    assert flat == names[:5]
    deep = [p["Name"] for page in ssm.get_paginator("get_parameters_by_path").paginate(
        Path=f"{r}/app/", Recursive=True) for p in page["Parameters"]]
    assert sorted(deep) == sorted(names)
    described = [p["Name"] for page in ssm.get_paginator("describe_parameters").paginate(
        PaginationConfig={"PageSize": 3}) for p in page["Parameters"]]
    assert set(names) <= set(described)


def test_aws_cli_puts_and_reads(server):
    name = f"{root()}/cli"
    base = [aws_exe(), "--endpoint-url", server.url, "--region", REGION, "--output", "text", "ssm"]
    env = server.cli_env()
    put = subprocess.run(base + ["put-parameter", "--name", name, "--value", "v1",
                                 "--type", "SecureString"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert put.returncode == 0, put.stderr
    got = subprocess.run(base + ["get-parameter", "--name", name, "--with-decryption",
                                 "--query", "Parameter.Value"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert got.returncode == 0 and got.stdout.strip() == "v1", got.stderr
