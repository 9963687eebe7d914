#!/usr/bin/env python3
"""ECS control-plane API benchmark: Berth (`berth server --no-auth`) side by side with moto's
server, on loopback, driven by oha with unsigned AWS JSON 1.1 requests.

Figures, each the median of RUNS runs:
  - DescribeTasks (10 tasks per call) and RunTask (count 1): max throughput with CONNS
    connections for DURATION, and latency percentiles at a fixed 1,000 requests/s (oha -q, with
    latency correction so queueing delay counts);
  - Berth's start time with 100,000 tasks in its store: from spawning the process to the first
    successful DescribeClusters (the store is filled with RunTask count=10 under oha first).

Run it through bench/ecs-api.sh, which installs oha and picks the binary.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import boto3
from botocore.config import Config

TARGET = "AmazonEC2ContainerServiceV20141113."
# Both servers get the same unsigned request. The Authorization header carries a credential
# scope but no valid signature: moto's server needs the scope to route the request to ECS, and
# `berth --no-auth` only reads the region from it.
SCOPE_AUTH = ("AWS4-HMAC-SHA256 Credential=bench/20260101/us-east-1/ecs/aws4_request, "
              "SignedHeaders=content-type;host;x-amz-target, Signature=" + "0" * 64)
ACCOUNT = "123456789012"


# -- servers -----------------------------------------------------------------------------------
class Server:
    def __init__(self, kind: str, proc: subprocess.Popen, url: str, workdir: Path):
        self.kind, self.proc, self.url, self.workdir = kind, proc, url, workdir

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_berth(berth: str, store: Path) -> Server:
    proc = subprocess.Popen([berth, "server", "--listen", "127.0.0.1:0", "--store", str(store),
                             "--no-auth"], stdout=subprocess.PIPE,
                            stderr=open(store.parent / "berth.log", "ab"))
    line = proc.stdout.readline().decode()
    prefix = "berth server listening on "
    if not line.startswith(prefix):
        proc.kill()
        raise SystemExit(f"berth server did not start: {line!r}")
    return Server("berth", proc, line[len(prefix):].strip(), store.parent)


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_moto(workdir: Path) -> Server:
    port = free_port()
    exe = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=open(workdir / "moto.log", "ab"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            post(url, "ListClusters", {})
            return Server("moto", proc, url, workdir)
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("moto_server did not start")


def post(url: str, op: str, payload: dict, timeout: float = 30) -> dict:
    req = urllib.request.Request(url + "/", data=json.dumps(payload).encode(), method="POST",
                                 headers={"Content-Type": "application/x-amz-json-1.1",
                                          "X-Amz-Target": TARGET + op,
                                          "Authorization": SCOPE_AUTH})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read() or b"{}")


def client(url: str, service: str = "ecs"):
    return boto3.session.Session(aws_access_key_id="bench", aws_secret_access_key="bench",
                                 region_name="us-east-1").client(
        service, endpoint_url=url, config=Config(retries={"max_attempts": 1}))


# -- set-up: cluster, task definition, instances, tasks ----------------------------------------
def setup(srv: Server, *, instances: int, tasks: int) -> dict:
    ecs = client(srv.url)
    cluster = "bench"
    ecs.create_cluster(clusterName=cluster)
    td = ecs.register_task_definition(family="bench", containerDefinitions=[{
        "name": "app", "image": "busybox:latest", "memory": 6, "cpu": 0, "essential": True,
        "command": ["sleep", "3600"]}])["taskDefinition"]["taskDefinitionArn"]
    if srv.kind == "moto":
        # moto registers only real (moto) EC2 instances and gives each 4096 CPU / 7482 MiB.
        ec2 = client(srv.url, "ec2")
        ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        ids = [i["InstanceId"] for i in ec2.run_instances(
            ImageId=ami, MinCount=instances, MaxCount=instances,
            InstanceType="m5.large")["Instances"]]
        for iid in ids:
            ecs.register_container_instance(cluster=cluster, instanceIdentityDocument=json.dumps(
                {"instanceId": iid, "region": "us-east-1"}))
    else:
        for i in range(instances):
            ecs.register_container_instance(cluster=cluster, totalResources=[
                {"name": "CPU", "type": "INTEGER", "integerValue": 1_000_000},
                {"name": "MEMORY", "type": "INTEGER", "integerValue": 2_000_000_000},
                {"name": "PORTS", "type": "STRINGSET", "stringSetValue": ["22"]},
                {"name": "PORTS_UDP", "type": "STRINGSET", "stringSetValue": []}],
                instanceIdentityDocument=json.dumps({"instanceId": f"i-bench{i:012d}"}))
    arns: list[str] = []
    while len(arns) < tasks:
        out = ecs.run_task(cluster=cluster, taskDefinition=td, count=10)
        if not out["tasks"]:
            raise SystemExit(f"{srv.kind}: RunTask placed nothing: {out.get('failures')}")
        arns += [t["taskArn"] for t in out["tasks"]]
    return {"cluster": cluster, "td": td, "arns": arns}


# -- oha ---------------------------------------------------------------------------------------
def oha(oha_bin: str, url: str, op: str, body_file: Path, *, conns: int, duration: str,
        rate: int | None = None, requests: int | None = None) -> dict:
    cmd = [oha_bin, url + "/", "-m", "POST", "-D", str(body_file), "--no-tui",
           "--output-format", "json",
           "-H", "Content-Type: application/x-amz-json-1.1",
           "-H", f"X-Amz-Target: {TARGET}{op}", "-H", f"Authorization: {SCOPE_AUTH}",
           "-c", str(conns)]
    if requests:
        cmd += ["-n", str(requests)]
    else:
        cmd += ["-z", duration]
    if rate:
        cmd += ["-q", str(rate), "--latency-correction"]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    out = json.loads(res.stdout)
    codes = out.get("statusCodeDistribution", {})
    ok = int(codes.get("200", 0))
    # Requests still in flight when a -z run ends are reported as "aborted due to deadline":
    # they are neither successes nor failures.
    errors = {k: v for k, v in out.get("errorDistribution", {}).items()
              if "deadline" not in k}
    total = sum(int(v) for v in codes.values()) + sum(int(v) for v in errors.values())
    pct = out.get("latencyPercentiles", {})
    elapsed = out["summary"]["total"]
    return {"rps": ok / elapsed if elapsed else 0.0, "ok": ok, "total": total,
            "p50_ms": (pct.get("p50") or 0) * 1000, "p99_ms": (pct.get("p99") or 0) * 1000,
            "codes": codes, "errors": errors}


def median_of(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def bench_server(srv: Server, args, work: Path) -> dict:
    print(f"[{srv.kind}] setting up at {srv.url}", flush=True)
    st = setup(srv, instances=args.instances if srv.kind == "berth" else args.moto_instances,
               tasks=args.tasks)
    bodies = {
        "DescribeTasks": {"cluster": st["cluster"], "tasks": st["arns"][:10]},
        "RunTask": {"cluster": st["cluster"], "taskDefinition": st["td"], "count": 1},
    }
    results = {}
    for op, body in bodies.items():
        f = work / f"{srv.kind}-{op}.json"
        f.write_text(json.dumps(body))
        tp, fixed = [], []
        for i in range(args.runs):
            tp.append(oha(args.oha, srv.url, op, f, conns=args.conns, duration=args.duration))
            print(f"[{srv.kind}] {op} max throughput run {i + 1}: {tp[-1]['rps']:.0f} req/s "
                  f"(p99 {tp[-1]['p99_ms']:.2f} ms, ok {tp[-1]['ok']}/{tp[-1]['total']})",
                  flush=True)
        for i in range(args.runs):
            fixed.append(oha(args.oha, srv.url, op, f, conns=args.conns, duration=args.duration,
                             rate=args.rate))
            print(f"[{srv.kind}] {op} at {args.rate} req/s run {i + 1}: "
                  f"p50 {fixed[-1]['p50_ms']:.2f} ms, p99 {fixed[-1]['p99_ms']:.2f} ms, "
                  f"achieved {fixed[-1]['rps']:.0f} req/s, ok {fixed[-1]['ok']}/"
                  f"{fixed[-1]['total']}", flush=True)
        results[op] = {
            "throughput_rps": median_of(tp, "rps"), "throughput_p99_ms": median_of(tp, "p99_ms"),
            "fixed_p50_ms": median_of(fixed, "p50_ms"), "fixed_p99_ms": median_of(fixed, "p99_ms"),
            "fixed_achieved_rps": median_of(fixed, "rps"),
            "non_200": sum(r["total"] - r["ok"] for r in tp + fixed),
        }
    return results


def start_time(args, work: Path) -> dict:
    store = work / "start-store"
    srv = start_berth(args.berth, store)
    try:
        ecs = client(srv.url)
        ecs.create_cluster(clusterName="bench")
        td = ecs.register_task_definition(family="bench", containerDefinitions=[{
            "name": "app", "image": "busybox:latest", "memory": 6, "cpu": 0,
            "essential": True}])["taskDefinition"]["taskDefinitionArn"]
        for i in range(4):
            ecs.register_container_instance(cluster="bench", totalResources=[
                {"name": "CPU", "type": "INTEGER", "integerValue": 1_000_000},
                {"name": "MEMORY", "type": "INTEGER", "integerValue": 2_000_000_000}],
                instanceIdentityDocument=json.dumps({"instanceId": f"i-start{i:012d}"}))
        body = work / "fill.json"
        body.write_text(json.dumps({"cluster": "bench", "taskDefinition": td, "count": 10}))
        calls = args.fill_tasks // 10
        t0 = time.monotonic()
        r = oha(args.oha, srv.url, "RunTask", body, conns=args.conns, duration="",
                requests=calls)
        fill_s = time.monotonic() - t0
        if r["ok"] != calls:
            raise SystemExit(f"filling the store failed: {r['codes']} {r['errors']}")
        count = post(srv.url, "DescribeClusters", {"clusters": ["bench"]})["clusters"][0]
        print(f"[berth] filled the store with {calls * 10} tasks by {calls} RunTask calls "
              f"in {fill_s:.1f} s (pending now: {count.get('pendingTasksCount')})", flush=True)
    finally:
        srv.stop()
    times = []
    for i in range(args.runs + 2):
        t0 = time.monotonic()
        proc = subprocess.Popen([args.berth, "server", "--listen", "127.0.0.1:0", "--store",
                                 str(store), "--no-auth"], stdout=subprocess.PIPE,
                                stderr=open(work / "berth.log", "ab"))
        try:
            line = proc.stdout.readline().decode()
            url = line.rsplit(" ", 1)[-1].strip()
            while True:
                try:
                    out = post(url, "DescribeClusters", {"clusters": ["bench"]}, timeout=60)
                    break
                except OSError:
                    pass
                if time.monotonic() - t0 > 300:
                    raise SystemExit("berth did not serve within 300 s")
                time.sleep(0.001)
            times.append(time.monotonic() - t0)
            found = out.get("clusters") or [{}]
            if found[0].get("pendingTasksCount") != calls * 10:
                raise SystemExit(f"after a restart the store does not hold the {calls * 10} "
                                 f"tasks: DescribeClusters said {out}")
            print(f"[berth] start {i + 1} with {calls * 10} tasks: serving after "
                  f"{times[-1] * 1000:.0f} ms", flush=True)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
    return {"tasks": calls * 10, "fill_s": fill_s, "start_ms": statistics.median(times) * 1000,
            "start_runs_ms": [round(t * 1000) for t in times]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--berth", required=True)
    ap.add_argument("--oha", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", default="10s")
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--tasks", type=int, default=1000, help="tasks created before measuring")
    ap.add_argument("--instances", type=int, default=4)
    ap.add_argument("--moto-instances", type=int, default=50)
    ap.add_argument("--fill-tasks", type=int, default=100_000)
    ap.add_argument("--skip-moto", action="store_true")
    ap.add_argument("--skip-start", action="store_true")
    ap.add_argument("--json", help="write the results here as JSON")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="berth-ecs-bench-"))
    results: dict = {"runs": args.runs, "duration": args.duration, "conns": args.conns,
                     "rate": args.rate}
    try:
        srv = start_berth(args.berth, work / "store")
        try:
            results["berth"] = bench_server(srv, args, work)
        finally:
            srv.stop()
        if not args.skip_moto:
            srv = start_moto(work)
            try:
                results["moto"] = bench_server(srv, args, work)
            finally:
                srv.stop()
        if not args.skip_start:
            results["start"] = start_time(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print()
    print(f"| call | server | max throughput ({args.conns} conns) | p99 at max | "
          f"p50 at {args.rate}/s | p99 at {args.rate}/s | achieved rate |")
    print("|---|---|---|---|---|---|---|")
    for op in ("DescribeTasks", "RunTask"):
        for kind in ("berth", "moto"):
            r = results.get(kind, {}).get(op)
            if r:
                print(f"| {op} | {kind} | {r['throughput_rps']:,.0f} req/s | "
                      f"{r['throughput_p99_ms']:.2f} ms | {r['fixed_p50_ms']:.2f} ms | "
                      f"{r['fixed_p99_ms']:.2f} ms | {r['fixed_achieved_rps']:,.0f} req/s |")
        if "berth" in results and "moto" in results:
            ratio = results["berth"][op]["throughput_rps"] / max(
                results["moto"][op]["throughput_rps"], 1e-9)
            print(f"| {op} | berth/moto | {ratio:.1f}x | | | | |")
    if "start" in results:
        s = results["start"]
        print(f"\nstart with {s['tasks']:,} tasks: {s['start_ms']:.0f} ms median "
              f"(runs {s['start_runs_ms']}); fill took {s['fill_s']:.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
