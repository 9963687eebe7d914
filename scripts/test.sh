#!/usr/bin/env bash
# Runs the whole Berth test suite: builds once, then runs every test with nextest.
# Container tests need root (namespaces, cgroups, mounts).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --workspace --all-targets
cargo nextest run --workspace --no-fail-fast "$@"
