"""Durability: a server killed with SIGKILL in the middle of many concurrent writes, restarted on
the same --store, still has every write it acknowledged (and serves new ones without reusing
names, revisions or ids)."""

from __future__ import annotations

import threading
import time

import ecs_helpers as h

WRITERS = 8


def hammer(srv, stop: threading.Event, acked: dict, errors: list, round_: int):
    """Concurrent writers; records only what the server answered with success."""
    def writer(n: int):
        c = srv.client()
        i = 0
        while not stop.is_set():
            i += 1
            try:
                if i % 3 == 0:
                    td = c.register_task_definition(
                        family=f"dur-{n}", containerDefinitions=[h.container()])["taskDefinition"]
                    acked["td"].append(td["taskDefinitionArn"])
                elif i % 3 == 1:
                    name = f"dur-{round_}-{n}-{i}"
                    c.create_cluster(clusterName=name)
                    acked["cluster"].append(name)
                else:
                    out = c.run_task(cluster=acked["task_cluster"],
                                     taskDefinition=acked["task_td"], count=2)
                    acked["task"].extend(t["taskArn"] for t in out["tasks"])
            except Exception as e:  # noqa: BLE001 - after the kill every call fails
                if not stop.is_set():
                    errors.append(repr(e))
                return

    threads = [threading.Thread(target=writer, args=(n,), daemon=True) for n in range(WRITERS)]
    for t in threads:
        t.start()
    return threads


def check_all_there(c, acked):
    clusters = acked["cluster"]
    for i in range(0, len(clusters), 100):
        out = c.describe_clusters(clusters=clusters[i:i + 100])
        assert not out.get("failures"), f"acknowledged clusters lost: {out['failures'][:5]}"
        assert all(x["status"] == "ACTIVE" for x in out["clusters"])
    for arn in acked["td"]:
        td = c.describe_task_definition(taskDefinition=arn)["taskDefinition"]
        assert td["taskDefinitionArn"] == arn
    tasks = acked["task"]
    for i in range(0, len(tasks), 100):
        out = c.describe_tasks(cluster=acked["task_cluster"], tasks=tasks[i:i + 100])
        assert not out.get("failures"), f"acknowledged tasks lost: {out['failures'][:5]}"
    listed = set()
    for page in c.get_paginator("list_tasks").paginate(cluster=acked["task_cluster"]):
        listed |= set(page["taskArns"])
    assert set(tasks) <= listed


def test_sigkill_mid_write_loses_no_acknowledged_write(servers):
    srv = servers.start()
    c = srv.client()
    task_cluster = h.new_cluster(c, "durtasks")
    for _ in range(4):
        h.register_instance(c, task_cluster, cpu=1_000_000, memory=10_000_000)
    td = h.register_td(c, memory=8, cpu=1)
    acked = {"cluster": [], "td": [], "task": [], "task_cluster": task_cluster,
             "task_td": td["taskDefinitionArn"]}

    for round_ in range(2):
        stop = threading.Event()
        errors: list = []
        before = sum(len(acked[k]) for k in ("cluster", "td", "task"))
        threads = hammer(srv, stop, acked, errors, round_)
        # Kill once the writers are well under way.
        deadline = time.monotonic() + 30
        while (sum(len(acked[k]) for k in ("cluster", "td", "task")) - before < 60
               and time.monotonic() < deadline and not errors):
            time.sleep(0.05)
        assert not errors, errors[:3]
        srv.sigkill()
        stop.set()
        for t in threads:
            t.join(60)
        assert sum(len(acked[k]) for k in ("cluster", "td", "task")) - before >= 60, \
            "the writers made too little progress before the kill"

        srv.start()
        c = srv.client()
        check_all_there(c, acked)

    # After the restarts the store takes new writes and never reuses a revision or a name.
    for n in range(WRITERS):
        revs = sorted(int(a.rsplit(":", 1)[1]) for a in acked["td"] if f"/dur-{n}:" in a)
        new = c.register_task_definition(family=f"dur-{n}",
                                         containerDefinitions=[h.container()])["taskDefinition"]
        if revs:
            assert new["revision"] > revs[-1]
            assert len(set(revs)) == len(revs), "a revision number was handed out twice"
    out = c.run_task(cluster=task_cluster, taskDefinition=td["taskDefinitionArn"], count=3)
    assert not set(t["taskArn"] for t in out["tasks"]) & set(acked["task"])
    # Resources on the instances account for every stored task: at least the acknowledged
    # ones (a RunTask committed just before the kill, whose answer never arrived, is there
    # too, which is allowed).
    stored = [arn for page in c.get_paginator("list_tasks").paginate(cluster=task_cluster)
              for arn in page["taskArns"]]
    assert set(acked["task"]) <= set(stored)
    total_tasks = len(stored)
    assert total_tasks >= len(acked["task"]) + 3
    cis = c.list_container_instances(cluster=task_cluster)["containerInstanceArns"]
    d = c.describe_container_instances(cluster=task_cluster, containerInstances=cis)
    used_mem = sum(10_000_000 - h.resource(ci["remainingResources"], "MEMORY")
                   for ci in d["containerInstances"])
    pending = sum(ci["pendingTasksCount"] for ci in d["containerInstances"])
    assert pending == total_tasks
    assert used_mem == 8 * total_tasks


def test_graceful_restart_keeps_everything(servers):
    srv = servers.start()
    c = srv.client()
    name = h.new_cluster(c)
    ci = h.register_instance(c, name)["containerInstanceArn"]
    td = h.register_td(c)
    task = h.run_one(c, name, td["taskDefinitionArn"], tags=[{"key": "a", "value": "b"}])
    h.report(c, name, task["taskArn"], "RUNNING")
    assert srv.terminate() == 0
    srv.start()
    c = srv.client()
    t = h.describe_task(c, name, task["taskArn"])
    assert t["lastStatus"] == "RUNNING"
    assert t["containerInstanceArn"] == ci
    assert c.list_tags_for_resource(resourceArn=task["taskArn"])["tags"] == [
        {"key": "a", "value": "b"}]
    d = h.describe_instance(c, name, ci)
    assert d["runningTasksCount"] == 1
    assert h.resource(d["remainingResources"], "MEMORY") == 2048 - 128
