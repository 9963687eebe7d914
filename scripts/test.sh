#!/usr/bin/env bash
# Runs the whole Berth test suite: builds once, runs every Rust test with nextest, then the
# ECS end-to-end suite (tests/ecs: boto3 and the aws CLI against `berth server`) with pytest
# from the venv that scripts/setup.sh installs. Container tests need root (namespaces, cgroups,
# mounts). Then the engine's container suites again inside a cgroup-v2-only guest (tests/vm).
# Every part always runs; the script fails if any fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --workspace --all-targets
status=0
cargo nextest run --workspace --no-fail-fast "$@" || status=$?
BERTH_BIN=${BERTH_BIN:-$PWD/target/debug/berth} \
  "${BERTH_VENV:-/opt/berth-venv}/bin/python" -m pytest -n 2 --dist loadfile tests/ecs || status=$?
# The engine's container suites once more on a cgroup v2 host (a qemu guest; see tests/vm).
bash tests/vm/cgroup-v2.sh || status=$?
# The shared parent cgroups the engines made, once nothing runs in them (empty dirs only).
for d in /sys/fs/cgroup/*/berth /sys/fs/cgroup/berth; do rmdir "$d" 2>/dev/null || true; done
exit "$status"
