"""Simulated hosts for the node-agent end-to-end tests.

A `Fleet` is: one bridge in the root network namespace (`bh<id>`, 10.213.N.1/24, an address
range checked free), one `berth server` listening on that bridge address (auth on), and three
"hosts" — each a network namespace (`bh<id>h<i>`) joined to the bridge by a veth, with
10.213.N.(10+i)/24, running `berth agent` under `nsenter --net` (so it shares the test's mount
namespace, and its engine's sockets and files stay reachable from here). Each agent runs its
engine in-process on `<tmp>/h<i>/engine.sock` with its own data root, and gets the attribute
`ecs.availability-zone=az-<i>`.

Everything is torn down even when a test fails: agents are stopped, every container the hosts
ran is removed through a short-lived engine per host, then namespaces, veths and the bridge are
deleted. Traffic only ever goes to 127.0.0.1 and the 10.213.N.0/24 addresses created here.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from conftest import BerthServer, berth_bin

BUSYBOX = "/bin/busybox"


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), check=check, capture_output=True, text=True)


def free_subnet_octet() -> int:
    used = sh("ip", "-4", "-o", "addr").stdout + sh("ip", "-4", "route").stdout
    for _ in range(200):
        n = random.randint(1, 250)
        if f"10.213.{n}." not in used:
            return n
    raise RuntimeError("no free 10.213.N.0/24 subnet")


def build_busybox_rootfs(dest: Path) -> Path:
    """A minimal root filesystem with Debian's static busybox and its applets."""
    for d in ("bin", "etc", "tmp", "root", "www"):
        (dest / d).mkdir(parents=True, exist_ok=True)
    shutil.copy(BUSYBOX, dest / "bin" / "busybox")
    applets = sh(BUSYBOX, "--list").stdout.split()
    for a in applets:
        if a != "busybox":
            link = dest / "bin" / a
            if not link.exists():
                link.symlink_to("busybox")
    (dest / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    (dest / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    (dest / "www" / "index.html").write_text("hello from berth\n")
    os.chmod(dest / "tmp", 0o1777)
    return dest


class Host:
    """One simulated host: a network namespace, an agent and its in-process engine."""

    def __init__(self, fleet: "Fleet", index: int):
        self.fleet = fleet
        self.index = index
        self.netns = f"{fleet.name}h{index}"
        self.address = f"10.213.{fleet.octet}.{10 + index}"
        self.dir = fleet.tmp / f"h{index}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.root = self.dir / "root"
        self.socket = self.dir / "engine.sock"
        self.host = f"unix://{self.socket}"
        self.proc: subprocess.Popen | None = None
        self.log_path = self.dir / "agent.log"
        self.zone = f"az-{index}"

    # -- network -------------------------------------------------------------------------
    def create_netns(self) -> None:
        f = self.fleet
        veth_root, veth_host = f"{f.name}a{self.index}", f"{f.name}b{self.index}"
        sh("ip", "netns", "add", self.netns)
        sh("ip", "link", "add", veth_root, "type", "veth", "peer", "name", veth_host)
        sh("ip", "link", "set", veth_root, "master", f.bridge, "up")
        sh("ip", "link", "set", veth_host, "netns", self.netns)
        ns = ["ip", "-n", self.netns]
        sh(*ns, "link", "set", veth_host, "name", "eth0")
        sh(*ns, "addr", "add", f"{self.address}/24", "dev", "eth0")
        sh(*ns, "link", "set", "eth0", "up")
        sh(*ns, "link", "set", "lo", "up")
        sh(*ns, "route", "add", "default", "via", f.gateway)

    def nsenter(self) -> list[str]:
        return ["nsenter", f"--net=/run/netns/{self.netns}"]

    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BERTH_")}
        env["BERTH_NETWORK_PREFIX"] = self.fleet.prefix
        env["RUST_LOG"] = env.get("RUST_LOG", "info")
        return env

    # -- agent ---------------------------------------------------------------------------
    def start_agent(self, *extra: str) -> None:
        assert self.proc is None or self.proc.poll() is not None, "agent already running"
        f = self.fleet
        args = self.nsenter() + [
            berth_bin(), "agent",
            "--server", f.server.url,
            "--cluster", f.cluster,
            "--root", str(self.root),
            "--host", self.host,
            "--credentials-file", str(f.server.credentials_path),
            "--attributes", f"ecs.availability-zone={self.zone},host=h{self.index}",
            *extra,
        ]
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                     env=self.env())
        log.close()

    def sigkill_agent(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop_agent(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""

    # -- engine (through the agent's socket) ---------------------------------------------
    def berth(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        r = subprocess.run([berth_bin(), "-H", self.host, *args], capture_output=True,
                           text=True, timeout=timeout, env=self.env())
        if check and r.returncode != 0:
            raise AssertionError(f"berth {' '.join(args)} on h{self.index} failed: "
                                 f"{r.returncode} {r.stderr}\nagent log:\n{self.log_tail()}")
        return r

    def wait_engine(self, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.socket.exists() and self.berth("version", check=False, timeout=10).returncode == 0:
                return
            if self.proc and self.proc.poll() is not None:
                raise AssertionError(f"agent h{self.index} exited {self.proc.returncode}:\n"
                                     f"{self.log_tail()}")
            time.sleep(0.1)
        raise AssertionError(f"engine of h{self.index} did not answer:\n{self.log_tail()}")

    def task_containers(self, task_arn: str) -> list[dict]:
        out = self.berth("ps", "-a", "--no-trunc", "--format", "{{json .}}",
                         "--filter", f"label=com.amazonaws.ecs.task-arn={task_arn}").stdout
        return [json.loads(l) for l in out.splitlines() if l.strip()]

    def cleanup(self) -> None:
        """Stops the agent, then removes every container through a temporary engine."""
        self.stop_agent()
        if not self.root.exists():
            return
        engine = None
        try:
            if not (self.socket.exists() and
                    self.berth("version", check=False, timeout=5).returncode == 0):
                log = open(self.dir / "cleanup-engine.log", "ab")
                engine = subprocess.Popen(
                    self.nsenter() + [berth_bin(), "engine", "-H", self.host, "--root",
                                      str(self.root)],
                    stdout=log, stderr=log, env=self.env())
                log.close()
                deadline = time.time() + 30
                while time.time() < deadline:
                    if self.socket.exists() and self.berth("version", check=False,
                                                           timeout=5).returncode == 0:
                        break
                    time.sleep(0.1)
            ids = self.berth("ps", "-aq", check=False).stdout.split()
            if ids:
                self.berth("rm", "-fv", *ids, check=False, timeout=120)
            self.berth("volume", "prune", "-f", check=False)
            self.berth("network", "prune", "-f", check=False)
        finally:
            if engine is not None:
                engine.send_signal(signal.SIGTERM)
                try:
                    engine.wait(30)
                except subprocess.TimeoutExpired:
                    engine.kill()
                    engine.wait(30)


class Fleet:
    """A control plane and three agent hosts on a private bridge."""

    def __init__(self, hosts: int = 3):
        self.id = uuid.uuid4().hex[:5]
        self.name = f"bh{self.id}"  # 7 chars: link names stay under 15
        self.prefix = f"b{self.id}"  # the engines' link/nftables prefix (<= 6 chars)
        self.bridge = self.name
        self.octet = free_subnet_octet()
        self.gateway = f"10.213.{self.octet}.1"
        self.tmp = Path(tempfile.mkdtemp(prefix="berth-fleet-"))
        self.cluster = f"fleet-{self.id}"
        self.server = BerthServer(self.tmp / "server", listen=f"{self.gateway}:0")
        self.hosts = [Host(self, i) for i in range(1, hosts + 1)]
        self.rootfs = build_busybox_rootfs(self.tmp / "rootfs")

    def start(self) -> "Fleet":
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        sh("ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        sh("ip", "link", "set", self.bridge, "up")
        for h in self.hosts:
            h.create_netns()
        self.server.start()
        # A restarted server must come back on the same address, where the agents look.
        self.server.listen = self.server.url.removeprefix("http://")
        self.ecs = self.server.client()
        self.ecs.create_cluster(clusterName=self.cluster)
        for h in self.hosts:
            h.start_agent()
        for h in self.hosts:
            h.wait_engine()
            h.berth("image", "import", str(self.rootfs), "--tag", "busybox:latest", timeout=120)
        self.wait_instances(len(self.hosts))
        return self

    def wait_instances(self, n: int, timeout: float = 60) -> list[dict]:
        deadline = time.time() + timeout
        while time.time() < deadline:
            arns = self.ecs.list_container_instances(cluster=self.cluster)["containerInstanceArns"]
            if len(arns) >= n:
                insts = self.ecs.describe_container_instances(
                    cluster=self.cluster, containerInstances=arns)["containerInstances"]
                if sum(1 for i in insts if i["agentConnected"]) >= n:
                    return insts
            time.sleep(0.2)
        raise AssertionError(f"{n} agents did not register and connect; logs:\n" +
                             "\n".join(h.log_tail() for h in self.hosts))

    def instance_host(self) -> dict:
        """containerInstanceArn -> Host (by the `host` attribute each agent registers)."""
        arns = self.ecs.list_container_instances(cluster=self.cluster)["containerInstanceArns"]
        insts = self.ecs.describe_container_instances(
            cluster=self.cluster, containerInstances=arns)["containerInstances"]
        out = {}
        for i in insts:
            attrs = {a["name"]: a.get("value") for a in i["attributes"]}
            name = attrs.get("host")
            for h in self.hosts:
                if name == f"h{h.index}":
                    out[i["containerInstanceArn"]] = h
        return out

    def close(self) -> None:
        errors = []
        for h in self.hosts:
            try:
                h.cleanup()
            except Exception as e:  # keep tearing down the rest
                errors.append(f"h{h.index}: {e}")
        try:
            self.server.kill()
        except Exception as e:
            errors.append(f"server: {e}")
        for h in self.hosts:
            sh("ip", "netns", "del", h.netns, check=False)
            sh("ip", "link", "del", f"{self.name}a{h.index}", check=False)
        sh("ip", "link", "del", self.bridge, check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)
        if errors:
            raise RuntimeError("fleet teardown: " + "; ".join(errors))
