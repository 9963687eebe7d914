"""Task definitions: families and revisions, describe, list, deregister, delete, validation."""

from __future__ import annotations

import ecs_helpers as h


def td_arn(family: str, rev: int) -> str:
    return f"arn:aws:ecs:us-east-1:{h.ACCOUNT}:task-definition/{family}:{rev}"


def test_register_returns_full_definition(ecs):
    fam = h.uid("web")
    c = h.container("web", memory=256, cpu=256, host_port=8080,
                    environment=[{"name": "MODE", "value": "prod"}])
    td = ecs.register_task_definition(family=fam, containerDefinitions=[c],
                                      networkMode="bridge",
                                      tags=[{"key": "app", "value": "web"}])["taskDefinition"]
    assert td["family"] == fam
    assert td["revision"] == 1
    assert td["taskDefinitionArn"] == td_arn(fam, 1)
    assert td["status"] == "ACTIVE"
    cd = td["containerDefinitions"][0]
    assert cd["name"] == "web" and cd["image"] == "busybox:latest"
    assert cd["memory"] == 256 and cd["cpu"] == 256
    assert cd["portMappings"][0]["containerPort"] == 80
    assert cd["portMappings"][0]["hostPort"] == 8080
    assert cd["environment"] == [{"name": "MODE", "value": "prod"}]
    assert td.get("networkMode", "bridge") == "bridge"


def test_revisions_count_up_per_family(ecs):
    fam = h.uid("fam")
    other = h.uid("other")
    revs = [h.register_td(ecs, fam)["revision"] for _ in range(3)]
    assert revs == [1, 2, 3]
    assert h.register_td(ecs, other)["revision"] == 1


def test_describe_by_family_revision_and_arn(ecs):
    fam = h.uid("fam")
    h.register_td(ecs, fam, memory=100)
    h.register_td(ecs, fam, memory=200)
    latest = ecs.describe_task_definition(taskDefinition=fam)["taskDefinition"]
    assert latest["revision"] == 2
    assert latest["containerDefinitions"][0]["memory"] == 200
    first = ecs.describe_task_definition(taskDefinition=f"{fam}:1")["taskDefinition"]
    assert first["revision"] == 1 and first["containerDefinitions"][0]["memory"] == 100
    by_arn = ecs.describe_task_definition(taskDefinition=td_arn(fam, 2))["taskDefinition"]
    assert by_arn["taskDefinitionArn"] == td_arn(fam, 2)


def test_describe_with_tags(ecs):
    fam = h.uid("fam")
    h.register_td(ecs, fam, tags=[{"key": "k", "value": "v"}])
    out = ecs.describe_task_definition(taskDefinition=fam, include=["TAGS"])
    assert out["tags"] == [{"key": "k", "value": "v"}]


def test_describe_unknown_is_client_exception(ecs):
    fam = h.uid("nope")
    h.expect_error("ClientException", ecs.describe_task_definition, taskDefinition=fam)
    h.register_td(ecs, fam)
    h.expect_error("ClientException", ecs.describe_task_definition, taskDefinition=f"{fam}:7")


def test_deregister_makes_revision_inactive(ecs):
    fam = h.uid("fam")
    h.register_td(ecs, fam)
    h.register_td(ecs, fam)
    out = ecs.deregister_task_definition(taskDefinition=f"{fam}:2")["taskDefinition"]
    assert out["status"] == "INACTIVE"
    # Still describable by revision, as INACTIVE.
    d = ecs.describe_task_definition(taskDefinition=f"{fam}:2")["taskDefinition"]
    assert d["status"] == "INACTIVE"
    # The family name alone now means the latest ACTIVE revision.
    assert ecs.describe_task_definition(taskDefinition=fam)["taskDefinition"]["revision"] == 1
    active = ecs.list_task_definitions(familyPrefix=fam, status="ACTIVE")["taskDefinitionArns"]
    inactive = ecs.list_task_definitions(familyPrefix=fam, status="INACTIVE")["taskDefinitionArns"]
    assert active == [td_arn(fam, 1)]
    assert inactive == [td_arn(fam, 2)]
    # Revision numbers are never reused.
    assert h.register_td(ecs, fam)["revision"] == 3


def test_run_task_with_inactive_definition_is_refused(ecs):
    cluster = h.new_cluster(ecs)
    h.register_instance(ecs, cluster)
    td = h.register_td(ecs)
    ecs.deregister_task_definition(taskDefinition=td["taskDefinitionArn"])
    h.expect_error(("ClientException", "InvalidParameterException"), ecs.run_task,
                   cluster=cluster, taskDefinition=td["taskDefinitionArn"])


def test_delete_task_definitions(ecs):
    fam = h.uid("fam")
    h.register_td(ecs, fam)
    h.register_td(ecs, fam)
    # An ACTIVE revision cannot be deleted: it comes back in failures.
    out = ecs.delete_task_definitions(taskDefinitions=[f"{fam}:1"])
    assert not out.get("taskDefinitions")
    assert len(out["failures"]) == 1 and out["failures"][0]["arn"].endswith(f"{fam}:1")
    ecs.deregister_task_definition(taskDefinition=f"{fam}:1")
    out = ecs.delete_task_definitions(taskDefinitions=[f"{fam}:1"])
    assert not out.get("failures")
    assert [t["taskDefinitionArn"] for t in out["taskDefinitions"]] == [td_arn(fam, 1)]
    assert out["taskDefinitions"][0]["status"] == "DELETE_IN_PROGRESS"
    listed = ecs.list_task_definitions(familyPrefix=fam, status="INACTIVE")["taskDefinitionArns"]
    assert td_arn(fam, 1) not in listed
    # A missing one is a failure, not an exception.
    out = ecs.delete_task_definitions(taskDefinitions=[f"{fam}:99"])
    assert len(out["failures"]) == 1


def test_list_task_definitions_filters_and_sort(ecs):
    prefix = h.uid("lst")
    for fam in (f"{prefix}-a", f"{prefix}-b"):
        for _ in range(2):
            h.register_td(ecs, fam)
    pag = ecs.get_paginator("list_task_definitions")
    every = [a for p in pag.paginate() for a in p["taskDefinitionArns"]]
    asc = [a for a in every if f"/{prefix}-" in a]
    assert asc == [td_arn(f"{prefix}-a", 1), td_arn(f"{prefix}-a", 2),
                   td_arn(f"{prefix}-b", 1), td_arn(f"{prefix}-b", 2)]
    every_desc = [a for p in pag.paginate(sort="DESC") for a in p["taskDefinitionArns"]]
    assert [a for a in every_desc if f"/{prefix}-" in a] == list(reversed(asc))
    # familyPrefix names a whole family (as in ECS), not a string prefix.
    only_a = ecs.list_task_definitions(familyPrefix=f"{prefix}-a")["taskDefinitionArns"]
    assert only_a == asc[:2]
    assert ecs.list_task_definitions(familyPrefix=prefix)["taskDefinitionArns"] == []


def test_list_task_definition_families(ecs):
    prefix = h.uid("famlist")
    fams = [f"{prefix}-{i}" for i in range(3)]
    for f in fams:
        h.register_td(ecs, f)
    got = ecs.list_task_definition_families(familyPrefix=prefix)["families"]
    assert got == sorted(fams)
    ecs.deregister_task_definition(taskDefinition=f"{fams[0]}:1")
    active = ecs.list_task_definition_families(familyPrefix=prefix, status="ACTIVE")["families"]
    assert active == sorted(fams[1:])
    inactive = ecs.list_task_definition_families(familyPrefix=prefix,
                                                 status="INACTIVE")["families"]
    assert inactive == [fams[0]]
    pages = list(ecs.get_paginator("list_task_definition_families").paginate(
        familyPrefix=prefix, PaginationConfig={"PageSize": 1}))
    assert [f for p in pages for f in p["families"]] == sorted(fams)


def test_list_task_definitions_paginates(ecs):
    fam = h.uid("many")
    for _ in range(30):
        h.register_td(ecs, fam)
    pages = list(ecs.get_paginator("list_task_definitions").paginate(
        familyPrefix=fam, PaginationConfig={"PageSize": 7}))
    arns = [a for p in pages for a in p["taskDefinitionArns"]]
    assert arns == [td_arn(fam, r) for r in range(1, 31)]
    assert [len(p["taskDefinitionArns"]) for p in pages] == [7, 7, 7, 7, 2]


def test_validation_empty_container_list(ecs):
    h.expect_error("ClientException", ecs.register_task_definition, family=h.uid("bad"),
                   containerDefinitions=[])


def test_validation_container_without_image(ecs):
    c = h.container()
    del c["image"]
    h.expect_error("ClientException", ecs.register_task_definition, family=h.uid("bad"),
                   containerDefinitions=[c])


def test_validation_no_memory_anywhere(ecs):
    c = h.container(memory=None)
    h.expect_error("ClientException", ecs.register_task_definition, family=h.uid("bad"),
                   containerDefinitions=[c])
    # memoryReservation alone, or task-level memory, is enough.
    ok = h.container(memory=None, memoryReservation=64)
    ecs.register_task_definition(family=h.uid("ok"), containerDefinitions=[ok])
    ecs.register_task_definition(family=h.uid("ok"), containerDefinitions=[h.container(memory=None)],
                                 memory="512")


def test_validation_duplicate_container_names(ecs):
    h.expect_error("ClientException", ecs.register_task_definition, family=h.uid("bad"),
                   containerDefinitions=[h.container("x"), h.container("x")])


def test_validation_memory_reservation_above_hard_limit(ecs):
    c = h.container(memory=128, memoryReservation=256)
    h.expect_error("ClientException", ecs.register_task_definition, family=h.uid("bad"),
                   containerDefinitions=[c])


def test_validation_bad_family_and_container_names(ecs):
    for fam in ("has space", "bad!", "x" * 256):
        h.expect_error(("ClientException", "InvalidParameterException"),
                       ecs.register_task_definition, family=fam,
                       containerDefinitions=[h.container()])
    h.expect_error(("ClientException", "InvalidParameterException"),
                   ecs.register_task_definition, family=h.uid("ok"),
                   containerDefinitions=[h.container("bad name")])
    # The longest legal family name is accepted.
    long_ok = "f" * 255
    assert h.register_td(ecs, long_ok)["family"] == long_ok


def test_validation_bad_port_mapping(ecs):
    c = h.container()
    c["portMappings"] = [{"containerPort": 70000, "protocol": "tcp"}]
    h.expect_error(("ClientException", "InvalidParameterException"),
                   ecs.register_task_definition, family=h.uid("bad"), containerDefinitions=[c])
