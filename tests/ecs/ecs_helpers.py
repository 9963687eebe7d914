"""Small helpers shared by the ECS end-to-end tests (names, task definitions, instances, errors)."""

from __future__ import annotations

import json
import uuid

import pytest
from botocore.exceptions import ClientError

ACCOUNT = "123456789012"
REGION = "us-east-1"
DEFAULT_PORTS = ["22", "2375", "2376", "51678", "51679"]


def uid(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def error_code(exc: ClientError) -> str:
    return exc.response["Error"]["Code"]


def expect_error(codes, fn, *args, **kwargs) -> ClientError:
    """Calls fn and asserts it fails with one of `codes` (a str or a tuple) as a 4xx."""
    if isinstance(codes, str):
        codes = (codes,)
    with pytest.raises(ClientError) as ei:
        fn(*args, **kwargs)
    code = error_code(ei.value)
    status = ei.value.response["ResponseMetadata"]["HTTPStatusCode"]
    assert code in codes, f"expected {codes}, got {code}: {ei.value.response['Error']}"
    assert status == 400, f"{code} came with HTTP {status}, expected 400"
    assert ei.value.response["Error"].get("Message"), "error without a message"
    return ei.value


def new_cluster(ecs, prefix: str = "c", **kwargs) -> str:
    name = uid(prefix)
    ecs.create_cluster(clusterName=name, **kwargs)
    return name


def container(name: str = "app", *, memory: int | None = 128, cpu: int = 128,
              host_port: int | None = None, image: str = "busybox:latest", **extra) -> dict:
    c = {"name": name, "image": image, "cpu": cpu, "essential": True,
         "command": ["sleep", "3600"]}
    if memory is not None:
        c["memory"] = memory
    if host_port is not None:
        c["portMappings"] = [{"containerPort": 80, "hostPort": host_port, "protocol": "tcp"}]
    c.update(extra)
    return c


def register_td(ecs, family: str | None = None, *, memory: int = 128, cpu: int = 128,
                host_port: int | None = None, containers: list | None = None, **extra) -> dict:
    family = family or uid("fam")
    containers = containers or [container(memory=memory, cpu=cpu, host_port=host_port)]
    return ecs.register_task_definition(family=family, containerDefinitions=containers,
                                        **extra)["taskDefinition"]


def identity_document(instance_id: str, instance_type: str = "t3.medium",
                      az: str = "us-east-1a") -> str:
    return json.dumps({"instanceId": instance_id, "instanceType": instance_type,
                       "availabilityZone": az, "region": REGION, "accountId": ACCOUNT,
                       "imageId": "ami-12345678", "privateIp": "10.0.0.1"})


def total_resources(cpu: int, memory: int, ports: list[str] | None = None) -> list[dict]:
    return [
        {"name": "CPU", "type": "INTEGER", "integerValue": cpu},
        {"name": "MEMORY", "type": "INTEGER", "integerValue": memory},
        {"name": "PORTS", "type": "STRINGSET",
         "stringSetValue": list(DEFAULT_PORTS if ports is None else ports)},
        {"name": "PORTS_UDP", "type": "STRINGSET", "stringSetValue": []},
    ]


def register_instance(ecs, cluster: str, *, cpu: int = 1024, memory: int = 2048,
                      attributes: dict | None = None, instance_type: str = "t3.medium",
                      az: str = "us-east-1a", **extra) -> dict:
    iid = "i-" + uuid.uuid4().hex[:17]
    attrs = [{"name": k, "value": v} for k, v in (attributes or {}).items()]
    kwargs = dict(cluster=cluster, instanceIdentityDocument=identity_document(iid, instance_type, az),
                  totalResources=total_resources(cpu, memory),
                  versionInfo={"agentVersion": "1.80.0", "agentHash": "berth",
                               "dockerVersion": "DockerVersion: 20.10"})
    if attrs:
        kwargs["attributes"] = attrs
    kwargs.update(extra)
    return ecs.register_container_instance(**kwargs)["containerInstance"]


def resource(resources: list[dict], name: str):
    for r in resources:
        if r["name"] == name:
            if r["type"] == "INTEGER":
                return r.get("integerValue", 0)
            if r["type"] == "STRINGSET":
                return set(r.get("stringSetValue", []))
            if r["type"] == "LONG":
                return r.get("longValue", 0)
            return r.get("doubleValue")
    raise AssertionError(f"no {name} in {resources}")


def describe_instance(ecs, cluster: str, arn: str) -> dict:
    out = ecs.describe_container_instances(cluster=cluster, containerInstances=[arn])
    assert not out.get("failures"), out["failures"]
    assert len(out["containerInstances"]) == 1
    return out["containerInstances"][0]


def describe_task(ecs, cluster: str, arn: str) -> dict:
    out = ecs.describe_tasks(cluster=cluster, tasks=[arn])
    assert not out.get("failures"), out["failures"]
    assert len(out["tasks"]) == 1
    return out["tasks"][0]


def describe_cluster(ecs, cluster: str, include=None) -> dict:
    out = ecs.describe_clusters(clusters=[cluster], **({"include": include} if include else {}))
    assert not out.get("failures"), out["failures"]
    assert len(out["clusters"]) == 1
    return out["clusters"][0]


def report(ecs, cluster: str, task_arn: str, status: str, *, exit_codes: dict | None = None,
           reason: str | None = None) -> dict:
    """Reports a task's state as an agent would (SubmitTaskStateChange)."""
    kw = dict(cluster=cluster, task=task_arn, status=status)
    if exit_codes:
        kw["containers"] = [{"containerName": n, "exitCode": c, "status": status}
                            for n, c in exit_codes.items()]
    elif status in ("RUNNING", "STOPPED"):
        task = describe_task(ecs, cluster, task_arn)
        kw["containers"] = [{"containerName": c["name"], "status": status}
                            for c in task.get("containers", [])]
    if reason:
        kw["reason"] = reason
    return ecs.submit_task_state_change(**kw)


def run_one(ecs, cluster: str, td_arn: str, **kw) -> dict:
    out = ecs.run_task(cluster=cluster, taskDefinition=td_arn, **kw)
    assert not out.get("failures"), out["failures"]
    assert len(out["tasks"]) == 1
    return out["tasks"][0]


def arn_id(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]
