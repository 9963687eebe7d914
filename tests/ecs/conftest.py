"""Fixtures for the ECS end-to-end suite: a real `berth server` per test module, real clients.

Each test module gets its own server (`berth server --listen 127.0.0.1:0 --store <tmp>`, auth
on) started from `BERTH_BIN` (default `<repo>/target/debug/berth`). The fixture reads the URL
from the server's first stdout line and the key pair from `<store>/credentials`, and hands out
a boto3 ECS client and an `aws` CLI runner bound to it. Servers are always killed and their
temporary directories removed, also when a test fails. Only loopback is used: clients never
look for credentials or regions anywhere else (no IMDS, an empty AWS config file).
"""

from __future__ import annotations

import configparser
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

import ecs_helpers as h

REPO = Path(__file__).resolve().parents[2]
REGION = "us-east-1"

# One empty AWS config file for this process, and nothing from the environment that could
# point a client elsewhere: credentials come only from the server's credentials file.
_AWS_HOME = tempfile.mkdtemp(prefix="berth-ecs-awshome-")
_EMPTY_CONFIG = os.path.join(_AWS_HOME, "config")
Path(_EMPTY_CONFIG).write_text("")
for _var in list(os.environ):
    if _var.startswith("AWS_"):
        del os.environ[_var]
os.environ["AWS_CONFIG_FILE"] = _EMPTY_CONFIG
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.path.join(_AWS_HOME, "no-credentials")
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
os.environ["NO_PROXY"] = "127.0.0.1,localhost"
for _var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
    os.environ.pop(_var, None)


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_AWS_HOME, ignore_errors=True)


def berth_bin() -> str:
    return os.environ.get("BERTH_BIN") or str(REPO / "target" / "debug" / "berth")


def aws_exe() -> str:
    exe = Path(sys.executable).parent / "aws"
    return str(exe) if exe.exists() else "aws"


class BerthServer:
    """One `berth server` process on a store directory; restartable on the same store."""

    START_TIMEOUT = 60.0

    def __init__(self, store: Path, *, auth: bool = True, extra_args: list[str] | None = None,
                 listen: str = "127.0.0.1:0"):
        self.store = Path(store)
        self.listen = listen
        self.auth = auth
        self.extra_args = list(extra_args or [])
        self.proc: subprocess.Popen | None = None
        self.url: str | None = None
        self.lines: list[str] = []
        self.log_path = self.store.parent / f"{self.store.name}.server.log"
        self._log = None

    # -- process ---------------------------------------------------------------------------
    def start(self) -> "BerthServer":
        assert self.proc is None or self.proc.poll() is not None, "server already running"
        args = [berth_bin(), "server", "--listen", self.listen, "--store", str(self.store)]
        if not self.auth:
            args.append("--no-auth")
        args += self.extra_args
        self._log = open(self.log_path, "ab")
        env = {k: v for k, v in os.environ.items() if not k.startswith("BERTH_")}
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=self._log, stdin=subprocess.DEVNULL, env=env
        )
        self.lines = self._read_lines(2)
        first = self.lines[0]
        prefix = "berth server listening on "
        if not first.startswith(prefix):
            self.kill()
            raise RuntimeError(f"unexpected first line from berth server: {first!r}")
        self.url = first[len(prefix):].strip()
        # Keep draining stdout so the server never blocks on a full pipe.
        threading.Thread(target=self._drain, args=(self.proc,), daemon=True).start()
        return self

    def _read_lines(self, n: int) -> list[str]:
        proc = self.proc
        out: list[str] = []
        done = threading.Event()

        def reader():
            try:
                for _ in range(n):
                    line = proc.stdout.readline()
                    if not line:
                        break
                    out.append(line.decode(errors="replace").rstrip("\n"))
            finally:
                done.set()

        threading.Thread(target=reader, daemon=True).start()
        if not done.wait(self.START_TIMEOUT) or len(out) < n:
            self.kill()
            raise RuntimeError(
                f"berth server did not print {n} start lines within {self.START_TIMEOUT}s "
                f"(got {out!r}); stderr tail:\n{self.stderr_tail()}"
            )
        return out

    @staticmethod
    def _drain(proc):
        try:
            while proc.stdout.read(65536):
                pass
        except (OSError, ValueError):
            pass

    def stderr_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def sigkill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def terminate(self, timeout: float = 30) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        try:
            self.sigkill()
        finally:
            if self._log:
                self._log.close()
                self._log = None

    # -- clients ---------------------------------------------------------------------------
    @property
    def credentials_path(self) -> Path:
        return self.store / "credentials"

    def credentials(self) -> tuple[str, str]:
        cp = configparser.ConfigParser()
        cp.read(self.credentials_path)
        sec = cp["default"]
        return sec["aws_access_key_id"], sec["aws_secret_access_key"]

    def client(self, *, region: str = REGION, access_key: str | None = None,
               secret_key: str | None = None, unsigned: bool = False, service: str = "ecs"):
        """A boto3 client of `service` (ECS, or Secrets Manager) for this server; no retries
        so every error is seen as sent."""
        cfg = Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=10,
                     read_timeout=60)
        if unsigned:
            from botocore import UNSIGNED
            cfg = cfg.merge(Config(signature_version=UNSIGNED))
            access_key, secret_key = "unused", "unused"
        elif access_key is None or secret_key is None:
            ak, sk = self.credentials() if self.auth else ("berth-test", "berth-test")
            access_key = access_key or ak
            secret_key = secret_key or sk
        session = boto3.session.Session(
            aws_access_key_id=access_key, aws_secret_access_key=secret_key, region_name=region
        )
        return session.client(service, endpoint_url=self.url, config=cfg)

    def cli_env(self, **extra: str) -> dict:
        env = dict(os.environ)
        if self.auth:
            env["AWS_SHARED_CREDENTIALS_FILE"] = str(self.credentials_path)
        else:
            env["AWS_ACCESS_KEY_ID"] = "berth-test"
            env["AWS_SECRET_ACCESS_KEY"] = "berth-test"
        env["AWS_CONFIG_FILE"] = _EMPTY_CONFIG
        env["AWS_EC2_METADATA_DISABLED"] = "true"
        env["AWS_DEFAULT_REGION"] = REGION
        env.update(extra)
        return env

    def aws_raw(self, *args: str, endpoint: bool = True, env: dict | None = None,
                cwd: str | None = None) -> subprocess.CompletedProcess:
        """Runs `aws [--endpoint-url URL] --region us-east-1 --output json ecs ARGS...`."""
        cmd = [aws_exe()]
        if endpoint:
            cmd += ["--endpoint-url", self.url]
        cmd += ["--region", REGION, "--output", "json", "ecs", *args]
        return subprocess.run(cmd, env=env or self.cli_env(), capture_output=True, text=True,
                              timeout=120, cwd=cwd, stdin=subprocess.DEVNULL)

    def aws(self, *args: str, **kw):
        """Runs the aws CLI and returns its parsed JSON output; fails the test on error."""
        import json

        res = self.aws_raw(*args, **kw)
        assert res.returncode == 0, (
            f"aws ecs {' '.join(args)} exited {res.returncode}: {res.stderr.strip()}"
        )
        return json.loads(res.stdout) if res.stdout.strip() else {}


class ServerFactory:
    """Starts servers on fresh, unique temp stores; kills them all and removes the dirs."""

    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="berth-ecs-"))
        self.servers: list[BerthServer] = []
        self._n = 0

    def new_store(self) -> Path:
        self._n += 1
        return self.root / f"store{self._n}"

    def start(self, store: Path | None = None, *, auth: bool = True,
              extra_args: list[str] | None = None) -> BerthServer:
        srv = BerthServer(store or self.new_store(), auth=auth, extra_args=extra_args)
        self.servers.append(srv)
        return srv.start()

    def close(self):
        for srv in self.servers:
            try:
                srv.kill()
            except Exception:  # noqa: BLE001 - cleanup must go on
                pass
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def servers():
    """A module's server factory (for tests that need --no-auth, restarts or several servers)."""
    f = ServerFactory()
    try:
        yield f
    finally:
        f.close()


@pytest.fixture(scope="module")
def server(servers) -> BerthServer:
    """The module's shared `berth server` with authentication on."""
    return servers.start()


@pytest.fixture(scope="module")
def ecs(server):
    """A boto3 ECS client signed with the server's own credentials."""
    return server.client()


@pytest.fixture
def fresh(ecs):
    """A fresh uniquely named cluster for one test."""
    return h.new_cluster(ecs)
