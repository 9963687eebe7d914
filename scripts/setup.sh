#!/usr/bin/env bash
# Installs what building and testing Berth needs on a fresh Debian 12 machine. Idempotent.
set -euo pipefail
packages=(libseccomp-dev pkg-config busybox-static runc skopeo umoci iproute2 nftables procps
          python3-venv python3-pip)
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
