#!/usr/bin/env bash
# Installs what building and testing Berth needs on a fresh Debian 12 machine. Idempotent.
set -euo pipefail
# docker-registry: Debian's build of the reference registry (distribution/distribution), a
# third-party server the pull/push tests run on a loopback port of their own.
# cpio (and qemu-system-x86 below): the cgroup v2 guest of tests/vm (its kernel is fetched by
# tests/vm/kernel.sh with apt-get download, not installed).
packages=(libseccomp-dev pkg-config busybox-static runc skopeo umoci iproute2 nftables procps
          python3-venv python3-pip docker-registry cpio)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
# The Docker CLI (a client only here) is a peer the tests drive against the engine's API.
command -v docker >/dev/null 2>&1 || missing+=(docker.io)
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
if ! dpkg -s qemu-system-x86 >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends qemu-system-x86
fi
# The package starts a system registry on :5000 where systemd runs; tests start their own.
if command -v systemctl >/dev/null 2>&1 && systemctl is-enabled docker-registry >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi
if ! command -v cargo-nextest >/dev/null 2>&1 && ! cargo nextest --version >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi
# The ECS end-to-end suite (tests/ecs) drives the control plane with real AWS clients (boto3,
# the aws CLI v1) under pytest; the API benchmark compares against moto's server. Debian's
# PEP 668 forbids system pip, so they live in one venv, reused while its pins are unchanged.
venv=${BERTH_VENV:-/opt/berth-venv}
reqs="$(cd "$(dirname "$0")/.." && pwd)/tests/ecs/requirements.txt"
if [ ! -x "$venv/bin/python" ]; then
  /usr/bin/python3 -m venv "$venv"
fi
if ! cmp -s "$reqs" "$venv/.berth-requirements.txt"; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$reqs"
  cp "$reqs" "$venv/.berth-requirements.txt"
fi
