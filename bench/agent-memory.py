"""Where an idle node agent's memory goes (issue 6).

Starts the simulated hosts of the end-to-end tests (tests/ecs/agent_hosts.py: a `berth server`
on a private bridge, agents each in a network namespace) and, after SETTLE seconds idle, reads
each agent's /proc/PID/smaps and prints the resident memory by kind: the berth binary's code,
its read-only data, its relocated data (private), libc and other libraries, the heap, malloc's
per-thread arenas, thread stacks — plus the thread count. With --separate-engine each host first
runs `berth engine` on the agent's socket, so the agent finds it and runs alone; the engine's
process is broken down too.

  python bench/agent-memory.py [--agents 1] [--settle 5] [--separate-engine] [--tasks 0]

With --tasks N, N tasks (busybox sleep, networkMode none) are started and stopped on each host
first, so the figures are those of an agent that has worked and gone idle again.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "ecs"))
os.environ.setdefault("BERTH_BIN", str(Path(__file__).resolve().parents[1] / "target" /
                                       "release" / "berth"))

from agent_hosts import Fleet, Host  # noqa: E402
from conftest import berth_bin  # noqa: E402

ARENA = 64 << 20


def mappings(pid: int) -> list[dict]:
    out = []
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
            start, end = (int(x, 16) for x in head[0].split("-"))
            out.append({"start": start, "end": end, "perms": head[1],
                        "name": head[5] if len(head) > 5 else "", "kb": {}})
        elif head and head[0].endswith(":") and out and len(head) >= 2 and head[1].isdigit():
            out[-1]["kb"][head[0][:-1]] = int(head[1])
    return out


def kind(m: dict, prev: dict | None, nxt: dict | None, exe: str) -> str:
    name, perms = m["name"], m["perms"]
    if name == exe:
        if "x" in perms:
            return "berth code"
        if "w" in perms:
            return "berth .data/.bss"
        if m["kb"].get("Anonymous", 0):
            return "berth .data.rel.ro (relocated)"
        return "berth read-only data"
    if name.startswith("/") and ("libc.so" in name or "libc-" in name):
        return "libc " + ("code" if "x" in perms else "data")
    if name.startswith("/"):
        return "other files (ld.so, libs)"
    if name == "[heap]":
        return "main heap (brk)"
    if name == "[stack]":
        return "main thread stack"
    if name.startswith("["):
        return name
    if perms.startswith("rw"):
        size = m["end"] - m["start"]
        # malloc's arenas are 64 MiB-aligned heaps: a rw part followed by PROT_NONE.
        if m["start"] % ARENA == 0 and nxt and nxt["perms"].startswith("---") and \
                nxt["end"] - m["start"] <= ARENA:
            return "malloc arenas (threads)"
        # pthread stacks: a guard page right below a rw mapping of ~stack size.
        if prev and prev["perms"].startswith("---") and prev["end"] == m["start"] and \
                size >= 64 << 10:
            return "thread stacks"
        return "other anonymous"
    return "other"


def breakdown(pid: int) -> dict[str, dict[str, int]]:
    exe = os.path.realpath(f"/proc/{pid}/exe")
    maps = mappings(pid)
    out: dict[str, dict[str, int]] = {}
    for i, m in enumerate(maps):
        k = kind(m, maps[i - 1] if i else None, maps[i + 1] if i + 1 < len(maps) else None, exe)
        row = out.setdefault(k, {"Rss": 0, "Pss": 0, "Private": 0, "Anonymous": 0, "n": 0})
        row["Rss"] += m["kb"].get("Rss", 0)
        row["Pss"] += m["kb"].get("Pss", 0)
        row["Private"] += m["kb"].get("Private_Clean", 0) + m["kb"].get("Private_Dirty", 0)
        row["Anonymous"] += m["kb"].get("Anonymous", 0)
        row["n"] += 1
    return out


def status(pid: int) -> dict[str, int]:
    s = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "RssAnon", "RssFile", "Threads"):
            s[k] = int(v.split()[0])
    return s


def thread_names(pid: int) -> str:
    names: dict[str, int] = {}
    for t in Path(f"/proc/{pid}/task").iterdir():
        n = (t / "comm").read_text().strip()
        names[n] = names.get(n, 0) + 1
    return ", ".join(f"{n} x{c}" for n, c in sorted(names.items()))


def report(label: str, pids: list[int]) -> None:
    rows = [breakdown(p) for p in pids]
    stats = [status(p) for p in pids]
    med = lambda xs: statistics.median(xs) if xs else 0  # noqa: E731
    print(f"\n== {label}: {len(pids)} process(es); medians in KiB")
    for k in ("VmRSS", "RssAnon", "RssFile", "Threads"):
        print(f"  {k:8} {med([s.get(k, 0) for s in stats]):>8}")
    print(f"  threads: {thread_names(pids[0])}")
    kinds = sorted({k for r in rows for k in r},
                   key=lambda k: -med([r.get(k, {}).get("Rss", 0) for r in rows]))
    print(f"  {'kind':34} {'Rss':>7} {'Pss':>7} {'Private':>7} {'Anon':>7} {'maps':>5}")
    for k in kinds:
        vals = {f: med([r.get(k, {}).get(f, 0) for r in rows])
                for f in ("Rss", "Pss", "Private", "Anonymous", "n")}
        if vals["Rss"] == 0:
            continue
        print(f"  {k:34} {vals['Rss']:>7} {vals['Pss']:>7} {vals['Private']:>7} "
              f"{vals['Anonymous']:>7} {vals['n']:>5}")


class SeparateEngineHost(Host):
    """A host whose engine is its own `berth engine` process, started before the agent."""

    engine: subprocess.Popen | None = None

    def start_agent(self, *extra: str) -> None:
        if self.engine is None:
            log = open(self.dir / "engine.log", "ab")
            self.engine = subprocess.Popen(
                self.nsenter() + [berth_bin(), "engine", "-H", self.host, "--root",
                                  str(self.root)], stdout=log, stderr=log,
                stdin=subprocess.DEVNULL, env=self.env())
            log.close()
            deadline = time.time() + 30
            while time.time() < deadline and not (
                    self.socket.exists() and
                    self.berth("version", check=False, timeout=5).returncode == 0):
                time.sleep(0.1)
        super().start_agent(*extra)

    def cleanup(self) -> None:
        try:
            super().cleanup()
        finally:
            if self.engine is not None and self.engine.poll() is None:
                self.engine.terminate()
                self.engine.wait(30)


def work(fleet: Fleet, tasks: int) -> None:
    ecs = fleet.ecs
    td = ecs.register_task_definition(
        family="mem-none", networkMode="none",
        containerDefinitions=[{"name": "app", "image": "busybox:latest", "memory": 16,
                               "command": ["sleep", "100000"], "stopTimeout": 1}])
    td = td["taskDefinition"]["taskDefinitionArn"]
    for h in fleet.hosts:
        for _ in range(tasks):
            arn = ecs.run_task(cluster=fleet.cluster, taskDefinition=td, placementConstraints=[
                {"type": "memberOf", "expression": f"attribute:host == h{h.index}"}
            ])["tasks"][0]["taskArn"]
            while ecs.describe_tasks(cluster=fleet.cluster,
                                     tasks=[arn])["tasks"][0]["lastStatus"] not in (
                                         "RUNNING", "STOPPED"):
                time.sleep(0.01)
            ecs.stop_task(cluster=fleet.cluster, task=arn)
            while ecs.describe_tasks(cluster=fleet.cluster,
                                     tasks=[arn])["tasks"][0]["lastStatus"] != "STOPPED":
                time.sleep(0.05)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--agents", type=int, default=1)
    ap.add_argument("--settle", type=float, default=5)
    ap.add_argument("--separate-engine", action="store_true")
    ap.add_argument("--tasks", type=int, default=0)
    args = ap.parse_args()
    fleet = Fleet(hosts=args.agents)
    if args.separate_engine:
        fleet.hosts = [SeparateEngineHost(fleet, h.index) for h in fleet.hosts]
    try:
        fleet.start()
        if args.tasks:
            work(fleet, args.tasks)
        time.sleep(args.settle)
        what = "agent alone" if args.separate_engine else "agent + in-process engine"
        report(what, [h.proc.pid for h in fleet.hosts])
        if args.separate_engine:
            report("berth engine (separate process)", [h.engine.pid for h in fleet.hosts])
    finally:
        fleet.close()


if __name__ == "__main__":
    main()
