#!/usr/bin/env bash
# ECS control-plane API benchmark: DescribeTasks and RunTask throughput and latency of
# `berth server --no-auth` side by side with moto's server (the same unsigned AWS JSON 1.1
# requests, loopback only), plus Berth's start time with 100,000 tasks in its store.
#
#   bash bench/ecs-api.sh [--runs N] [--duration 10s] [--conns 32] [--rate 1000]
#                         [--skip-moto] [--skip-start] [--json FILE]
#
# BERTH_BIN picks the binary (default: target/release/berth; build it with
# `cargo build --release -p berth`). Needs the venv from scripts/setup.sh (boto3, moto)
# and oha, which this script installs with `cargo install` into BERTH_BENCH_CACHE
# (default ~/.cache/berth-bench) the first time.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${BERTH_VENV:-/opt/berth-venv}
[ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import boto3, moto' 2>/dev/null \
  || bash scripts/setup.sh
cache=${BERTH_BENCH_CACHE:-$HOME/.cache/berth-bench}
oha="$cache/bin/oha"
if [ ! -x "$oha" ]; then
  mkdir -p "$cache"
  cargo install oha --version 1.16.0 --locked --root "$cache"
fi
berth=${BERTH_BIN:-$PWD/target/release/berth}
[ -x "$berth" ] || { echo "no berth binary at $berth (cargo build --release -p berth, or set BERTH_BIN)" >&2; exit 1; }
echo "berth: $berth"; echo "oha: $("$oha" --version)"; echo "moto: $("$venv/bin/python" -c 'import moto; print(moto.__version__)')"
echo "machine: $(. /etc/os-release; echo "$PRETTY_NAME"), $(nproc) cores"
exec "$venv/bin/python" bench/ecs-api.py --berth "$berth" --oha "$oha" "$@"
