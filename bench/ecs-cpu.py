#!/usr/bin/env python3
"""CPU cost per ECS call of `berth server`: CPU-microseconds (user + system) the server
process spends per request, read from /proc/PID/stat before and after oha sends N requests.

Wall-clock throughput on a shared machine says more about the other processes than about the
server; the CPU the server burns per request does not depend much on the load around it. At a
CPU budget of C cores, max throughput is at most C * 1e6 / (server + client CPU-us/request).

  python3 bench/ecs-cpu.py --berth target/release/berth --oha ~/.cache/berth-bench/bin/oha \
      [--requests 20000] [--conns 32] [--auth] [--ops RunTask,DescribeTasks] [--perf FILE]

Set-up is bench/ecs-api.py's (one cluster, one task definition, 4 container instances,
1,000 tasks). With --auth the server checks SigV4: every request oha sends carries the same
signature, made once with botocore for the fixed body (valid for the 5 minutes AWS allows).
With --perf, `perf record -g` samples the server during the measured RunTask run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import importlib  # noqa: E402

bench = importlib.import_module("ecs-api")

from botocore.auth import SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the command's ")": state is field 3, utime field 14, stime field 15.
    return (int(fields[11]) + int(fields[12])) / TICK


def read_credentials(path: Path) -> tuple[str, str]:
    key = secret = ""
    for line in path.read_text().splitlines():
        k, _, v = line.partition("=")
        if k.strip() == "aws_access_key_id":
            key = v.strip()
        elif k.strip() == "aws_secret_access_key":
            secret = v.strip()
    return key, secret


def start(berth: str, store: Path, auth: bool):
    cmd = [berth, "server", "--listen", "127.0.0.1:0", "--store", str(store)]
    if not auth:
        cmd.append("--no-auth")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                            stderr=open(store.parent / "berth.log", "ab"))
    line = proc.stdout.readline().decode()
    prefix = "berth server listening on "
    if not line.startswith(prefix):
        proc.kill()
        raise SystemExit(f"berth server did not start: {line!r}")
    return bench.Server("berth", proc, line[len(prefix):].strip(), store.parent)


def headers_for(url: str, op: str, body: bytes, creds: tuple[str, str] | None) -> list[str]:
    base = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": bench.TARGET + op}
    if creds is None:
        base["Authorization"] = bench.SCOPE_AUTH
        return [f"{k}: {v}" for k, v in base.items()]
    req = AWSRequest(method="POST", url=url + "/", data=body, headers=base)
    SigV4Auth(Credentials(*creds), "ecs", "us-east-1").add_auth(req)
    return [f"{k}: {v}" for k, v in req.headers.items() if k.lower() != "host"]


def run_oha(oha: str, url: str, body_file: Path, headers: list[str], n: int, conns: int) -> dict:
    cmd = [oha, url + "/", "-m", "POST", "-D", str(body_file), "--no-tui",
           "--output-format", "json", "-c", str(conns), "-n", str(n)]
    for h in headers:
        cmd += ["-H", h]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    out = json.loads(res.stdout)
    codes = out.get("statusCodeDistribution", {})
    return {"ok": int(codes.get("200", 0)), "codes": codes,
            "errors": out.get("errorDistribution", {}),
            "elapsed": out["summary"]["total"]}


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--berth", required=True)
    ap.add_argument("--oha", required=True)
    ap.add_argument("--requests", type=int, default=20_000)
    ap.add_argument("--warmup", type=int, default=2_000)
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--auth", action="store_true", help="SigV4-signed requests, auth on")
    ap.add_argument("--ops", default="DescribeTasks,RunTask")
    ap.add_argument("--perf", help="perf record the server's RunTask run into this file")
    ap.add_argument("--perf-opts", default="-g -F 999",
                    help="perf record options (e.g. '--call-graph dwarf -F 200')")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="berth-ecs-cpu-"))
    srv = start(args.berth, work / "store", args.auth)
    try:
        creds = None
        if args.auth:
            creds = read_credentials(work / "store" / "credentials")
            os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"] = creds
        ecs_client = bench.client

        def signed_client(url, service="ecs"):
            import boto3
            from botocore.config import Config
            key, secret = creds if creds else ("bench", "bench")
            return boto3.session.Session(
                aws_access_key_id=key, aws_secret_access_key=secret,
                region_name="us-east-1").client(
                service, endpoint_url=url, config=Config(retries={"max_attempts": 1}))

        bench.client = signed_client
        try:
            st = bench.setup(srv, instances=4, tasks=1000)
        finally:
            bench.client = ecs_client
        bodies = {
            "DescribeTasks": {"cluster": st["cluster"], "tasks": st["arns"][:10]},
            "RunTask": {"cluster": st["cluster"], "taskDefinition": st["td"], "count": 1},
        }
        mode = "auth on (SigV4)" if args.auth else "--no-auth"
        for op in args.ops.split(","):
            body = json.dumps(bodies[op]).encode()
            f = work / f"{op}.json"
            f.write_bytes(body)
            headers = headers_for(srv.url, op, body, creds)
            run_oha(args.oha, srv.url, f, headers, args.warmup, args.conns)
            perf = None
            if args.perf and op == "RunTask":
                perf = subprocess.Popen(["perf", "record", *args.perf_opts.split(), "-o", args.perf,
                                         "-p", str(srv.proc.pid)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(0.5)
            s0, c0 = cpu_seconds(srv.proc.pid), children_cpu()
            r = run_oha(args.oha, srv.url, f, headers, args.requests, args.conns)
            s1, c1 = cpu_seconds(srv.proc.pid), children_cpu()
            if perf:
                perf.send_signal(2)
                perf.wait()
            if r["ok"] != args.requests:
                raise SystemExit(f"{op}: only {r['ok']}/{args.requests} answered 200: "
                                 f"{r['codes']} {r['errors']}")
            server_us = (s1 - s0) / args.requests * 1e6
            client_us = (c1 - c0) / args.requests * 1e6
            print(f"{op} ({mode}): server {server_us:.0f} CPU-us/request, oha "
                  f"{client_us:.0f} CPU-us/request, {args.requests / r['elapsed']:.0f} req/s "
                  f"wall (load {os.getloadavg()[0]:.1f})", flush=True)
    finally:
        srv.stop()
        import shutil
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
