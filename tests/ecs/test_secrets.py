"""The Secrets Manager API on the control plane's endpoint (what ECS task definitions point
at with `secrets[].valueFrom` and `repositoryCredentials`), driven by boto3 and the aws CLI."""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest
from botocore.exceptions import ClientError

from conftest import REGION, aws_exe


@pytest.fixture(scope="module")
def sm(server):
    return server.client(service="secretsmanager")


def name(prefix="s"):
    return f"berth-test/{prefix}-{uuid.uuid4().hex[:10]}"


def code(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


def test_create_get_put_rotates_versions(sm, server):
    n = name("db")
    created = sm.create_secret(Name=n, SecretString='{"username":"u","password":"p1"}',
                               Description="db login", Tags=[{"Key": "team", "Value": "a"}])
    assert created["Name"] == n
    assert created["ARN"].startswith(f"arn:aws:secretsmanager:{REGION}:123456789012:secret:{n}-")
    assert len(created["ARN"]) == len(f"arn:aws:secretsmanager:{REGION}:123456789012:secret:{n}-") + 6
    v1 = created["VersionId"]

    got = sm.get_secret_value(SecretId=n)
    assert json.loads(got["SecretString"]) == {"username": "u", "password": "p1"}
    assert got["VersionId"] == v1 and got["VersionStages"] == ["AWSCURRENT"]
    # By full ARN and by the ARN without its random suffix.
    assert sm.get_secret_value(SecretId=created["ARN"])["VersionId"] == v1
    partial = created["ARN"][:-7]
    assert sm.get_secret_value(SecretId=partial)["VersionId"] == v1

    v2 = sm.put_secret_value(SecretId=n, SecretString="second")["VersionId"]
    assert v2 != v1
    assert sm.get_secret_value(SecretId=n)["SecretString"] == "second"
    prev = sm.get_secret_value(SecretId=n, VersionStage="AWSPREVIOUS")
    assert prev["VersionId"] == v1 and "p1" in prev["SecretString"]
    assert sm.get_secret_value(SecretId=n, VersionId=v1)["VersionId"] == v1

    d = sm.describe_secret(SecretId=n)
    assert d["Description"] == "db login" and d["Tags"] == [{"Key": "team", "Value": "a"}]
    assert d["VersionIdsToStages"] == {v1: ["AWSPREVIOUS"], v2: ["AWSCURRENT"]}

    sm.update_secret(SecretId=n, Description="changed", SecretBinary=b"\x00\x01bin")
    got = sm.get_secret_value(SecretId=n)
    assert got["SecretBinary"] == b"\x00\x01bin" and "SecretString" not in got
    assert sm.describe_secret(SecretId=n)["Description"] == "changed"


def test_errors_carry_secrets_manager_codes(sm):
    with pytest.raises(ClientError) as e:
        sm.get_secret_value(SecretId=name("missing"))
    assert code(e) == "ResourceNotFoundException"
    n = name("dup")
    sm.create_secret(Name=n, SecretString="x")
    with pytest.raises(ClientError) as e:
        sm.create_secret(Name=n, SecretString="y")
    assert code(e) == "ResourceExistsException"
    with pytest.raises(ClientError) as e:
        sm.create_secret(Name="bad name!", SecretString="y")
    assert code(e) == "InvalidParameterException"
    with pytest.raises(ClientError) as e:
        sm.put_secret_value(SecretId=n, SecretString="a", SecretBinary=b"b")
    assert code(e) == "InvalidParameterException"
    # A secret created without a value has no AWSCURRENT version yet.
    empty = name("empty")
    sm.create_secret(Name=empty)
    with pytest.raises(ClientError) as e:
        sm.get_secret_value(SecretId=empty)
    assert code(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        sm.delete_secret(SecretId=n, ForceDeleteWithoutRecovery=True, RecoveryWindowInDays=7)
    assert code(e) == "InvalidParameterException"


def test_delete_with_recovery_window_then_restore_or_force(sm):
    n = name("del")
    sm.create_secret(Name=n, SecretString="v")
    out = sm.delete_secret(SecretId=n, RecoveryWindowInDays=7)
    assert out["Name"] == n and "DeletionDate" in out
    with pytest.raises(ClientError) as e:
        sm.get_secret_value(SecretId=n)
    assert code(e) == "InvalidRequestException"
    with pytest.raises(ClientError) as e:
        sm.create_secret(Name=n, SecretString="again")
    assert code(e) == "InvalidRequestException"
    assert "DeletedDate" in sm.describe_secret(SecretId=n)
    listed = [s["Name"] for s in sm.list_secrets(Filters=[{"Key": "name", "Values": [n]}])["SecretList"]]
    assert listed == []
    listed = sm.list_secrets(Filters=[{"Key": "name", "Values": [n]}], IncludePlannedDeletion=True)
    assert [s["Name"] for s in listed["SecretList"]] == [n]

    sm.restore_secret(SecretId=n)
    assert sm.get_secret_value(SecretId=n)["SecretString"] == "v"
    sm.delete_secret(SecretId=n, ForceDeleteWithoutRecovery=True)
    with pytest.raises(ClientError) as e:
        sm.describe_secret(SecretId=n)
    assert code(e) == "ResourceNotFoundException"
    sm.create_secret(Name=n, SecretString="reborn")
    assert sm.get_secret_value(SecretId=n)["SecretString"] == "reborn"


def test_list_secrets_paginates_and_filters(sm):
    prefix = f"berth-test/list-{uuid.uuid4().hex[:8]}/"
    names = [f"{prefix}{i:02d}" for i in range(7)]
    for i, n in enumerate(names):
        sm.create_secret(Name=n, SecretString=str(i),
                         Tags=[{"Key": "parity", "Value": "even" if i % 2 == 0 else "odd"}])
    pages = sm.get_paginator("list_secrets").paginate(
        Filters=[{"Key": "name", "Values": [prefix]}], PaginationConfig={"PageSize": 3})
    seen = [s["Name"] for page in pages for s in page["SecretList"]]
    assert seen == names
    odd = sm.list_secrets(Filters=[{"Key": "name", "Values": [prefix]},
                                   {"Key": "tag-value", "Values": ["odd"]}])["SecretList"]
    assert [s["Name"] for s in odd] == names[1::2]
    with pytest.raises(ClientError) as e:
        sm.list_secrets(Filters=[{"Key": "nope", "Values": ["x"]}])
    assert code(e) == "InvalidParameterException"


def test_aws_cli_reads_a_secret(server):
    n = name("cli")
    env = server.cli_env()
    base = [aws_exe(), "--endpoint-url", server.url, "--region", REGION, "--output", "json",
            "secretsmanager"]
    made = subprocess.run(base + ["create-secret", "--name", n, "--secret-string", "s3cr3t"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    got = subprocess.run(base + ["get-secret-value", "--secret-id", n, "--query", "SecretString",
                                 "--output", "text"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert got.returncode == 0, got.stderr
    assert got.stdout.strip() == "s3cr3t"
    missing = subprocess.run(base + ["get-secret-value", "--secret-id", name("none")],
                             env=env, capture_output=True, text=True, timeout=120)
    assert missing.returncode != 0 and "ResourceNotFoundException" in missing.stderr


def test_unsigned_requests_are_refused(server):
    unsigned = server.client(service="secretsmanager", unsigned=True)
    with pytest.raises(ClientError) as e:
        unsigned.list_secrets()
    assert code(e) in ("UnrecognizedClientException", "MissingAuthenticationTokenException",
                       "IncompleteSignatureException")
