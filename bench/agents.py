"""Node agent benchmark (issue 6): RunTask -> RUNNING latency on an idle host, the agent's
idle memory, and the time to get many tasks RUNNING across many agents.

Uses the same simulated hosts as the end-to-end tests (tests/ecs/agent_hosts.py): one
`berth server` on a private bridge, N `berth agent` processes each in its own network
namespace with its own in-process engine. Tasks run busybox `sleep` with networkMode none
(the bulk run) or bridge (the latency run). Loopback and project-created addresses only.

  python bench/agents.py [--latency-runs 20] [--agents 10] [--tasks 1000] [--skip-bulk]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "ecs"))
os.environ.setdefault("BERTH_BIN", str(Path(__file__).resolve().parents[1] / "target" /
                                       "release" / "berth"))

from agent_hosts import Fleet  # noqa: E402


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, Pss) of a process in KiB."""
    rss = pss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            pss = int(line.split()[1])
    return rss, pss


def register(ecs, network_mode: str) -> str:
    td = ecs.register_task_definition(
        family=f"bench-{network_mode}", networkMode=network_mode,
        containerDefinitions=[{"name": "app", "image": "busybox:latest", "memory": 16,
                               "command": ["sleep", "100000"], "stopTimeout": 1}])
    return td["taskDefinition"]["taskDefinitionArn"]


def latency(fleet: Fleet, runs: int) -> dict:
    """RunTask -> RUNNING, one task at a time on an idle host: the client's view (polling
    DescribeTasks every 2 ms) and the server's (startedAt - createdAt)."""
    ecs = fleet.ecs
    out = {}
    for mode in ("none", "bridge"):
        td = register(ecs, mode)
        client_ms, server_ms = [], []
        for _ in range(runs):
            t0 = time.perf_counter()
            arn = ecs.run_task(cluster=fleet.cluster, taskDefinition=td, placementConstraints=[
                {"type": "memberOf", "expression": "attribute:host == h1"}])["tasks"][0]["taskArn"]
            while True:
                t = ecs.describe_tasks(cluster=fleet.cluster, tasks=[arn])["tasks"][0]
                if t["lastStatus"] in ("RUNNING", "STOPPED"):
                    break
                time.sleep(0.002)
            client_ms.append((time.perf_counter() - t0) * 1000)
            assert t["lastStatus"] == "RUNNING", t
            server_ms.append((t["startedAt"].timestamp() - t["createdAt"].timestamp()) * 1000)
            ecs.stop_task(cluster=fleet.cluster, task=arn)
            while ecs.describe_tasks(cluster=fleet.cluster,
                                     tasks=[arn])["tasks"][0]["lastStatus"] != "STOPPED":
                time.sleep(0.01)
        out[mode] = {"client_median_ms": statistics.median(client_ms),
                     "client_p90_ms": sorted(client_ms)[int(0.9 * (len(client_ms) - 1))],
                     "server_median_ms": statistics.median(server_ms),
                     "runs": runs}
        print(f"RunTask -> RUNNING ({mode}): client median {out[mode]['client_median_ms']:.1f} ms"
              f", p90 {out[mode]['client_p90_ms']:.1f} ms; server (startedAt-createdAt) median "
              f"{out[mode]['server_median_ms']:.1f} ms over {runs} runs", flush=True)
    return out


def bulk(fleet: Fleet, tasks: int) -> dict:
    """`tasks` tasks started with RunTask (10 per call, spread over the agents); the time from
    the first call until DescribeTasks shows all RUNNING."""
    ecs = fleet.ecs
    td = register(ecs, "none")
    arns = []
    t0 = time.perf_counter()
    while len(arns) < tasks:
        n = min(10, tasks - len(arns))
        r = ecs.run_task(cluster=fleet.cluster, taskDefinition=td, count=n,
                         placementStrategy=[{"type": "spread", "field": "instanceId"}])
        assert not r["failures"], r["failures"]
        arns += [t["taskArn"] for t in r["tasks"]]
    submitted = time.perf_counter() - t0
    pending = set(arns)
    while pending:
        batch = list(pending)[:100]
        for t in ecs.describe_tasks(cluster=fleet.cluster, tasks=batch)["tasks"]:
            if t["lastStatus"] == "RUNNING":
                pending.discard(t["taskArn"])
            elif t["lastStatus"] == "STOPPED":
                raise AssertionError(f"task stopped: {t.get('stoppedReason')}")
        if pending:
            time.sleep(0.2)
    total = time.perf_counter() - t0
    print(f"{tasks} tasks on {len(fleet.hosts)} agents: RunTask calls took {submitted:.1f} s, "
          f"all RUNNING after {total:.1f} s ({tasks / total:.0f} tasks/s)", flush=True)
    return {"tasks": tasks, "agents": len(fleet.hosts), "submit_s": submitted, "all_running_s": total}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--latency-runs", type=int, default=20)
    ap.add_argument("--agents", type=int, default=10)
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--skip-bulk", action="store_true")
    args = ap.parse_args()
    fleet = Fleet(hosts=args.agents if not args.skip_bulk else 1)
    try:
        fleet.start()
        time.sleep(3)
        idle = [rss_kib(h.proc.pid) for h in fleet.hosts]
        rss = statistics.median(r for r, _ in idle) / 1024
        pss = statistics.median(p for _, p in idle) / 1024
        print(f"agent idle memory (agent + in-process engine, no tasks): median RSS "
              f"{rss:.1f} MiB, PSS {pss:.1f} MiB over {len(idle)} agents", flush=True)
        latency(fleet, args.latency_runs)
        time.sleep(5)
        idle = [rss_kib(h.proc.pid) for h in fleet.hosts]
        print(f"agent idle memory 5 s after the latency runs (all tasks stopped): median RSS "
              f"{statistics.median(r for r, _ in idle) / 1024:.1f} MiB, PSS "
              f"{statistics.median(p for _, p in idle) / 1024:.1f} MiB", flush=True)
        if not args.skip_bulk:
            bulk(fleet, args.tasks)
            idle = [rss_kib(h.proc.pid) for h in fleet.hosts]
            print(f"agent memory with {args.tasks // len(fleet.hosts)} tasks each: median RSS "
                  f"{statistics.median(r for r, _ in idle) / 1024:.1f} MiB", flush=True)
    finally:
        t = time.perf_counter()
        fleet.close()
        print(f"teardown took {time.perf_counter() - t:.0f} s", flush=True)


if __name__ == "__main__":
    main()
