#!/usr/bin/env bash
# Memory of the per-container monitor (`berth __monitor`), steady state, side by side in one run:
#   N idle containers (`sleep`) and N that log a line every 100 ms, each with its own monitor;
#   docker's per-container shim (containerd-shim-runc-v2) holding the same idle `sleep`, if
#   dockerd is installed here (runc itself leaves no process behind a container).
# Per process: VmRSS (/proc/PID/status) and Pss, Private_Dirty, Private_Clean, Shared_Clean
# (/proc/PID/smaps_rollup), read after the containers have run for SETTLE seconds; the table
# gives the median over the N processes (min-max in brackets for RSS).
# Usage: BERTH=path/to/release/berth bench/monitor-rss.sh [N] [SETTLE]   (default 5 5)
source "$(dirname "$0")/common-net.sh"
N=${1:-5}
SETTLE=${2:-5}

all_cleanup() {
  set +e
  if [ -n "${DOCKERD_PID:-}" ]; then
    for c in $(docker -H "unix://$WORK/docker.sock" ps -aq 2>/dev/null); do
      docker -H "unix://$WORK/docker.sock" rm -f "$c" >/dev/null 2>&1
    done
    kill "$DOCKERD_PID" 2>/dev/null && wait "$DOCKERD_PID" 2>/dev/null
  fi
  net_cleanup
}
trap all_cleanup EXIT

# One line per process: label pid rss pss private_dirty private_clean shared_clean (kB).
measure() {
  local label=$1 pid=$2
  local rss; rss=$(awk '/^VmRSS/{print $2}' "/proc/$pid/status")
  awk -v l="$label" -v p="$pid" -v r="$rss" '
    /^Pss:/{pss=$2} /^Private_Dirty:/{pd=$2} /^Private_Clean:/{pc=$2} /^Shared_Clean:/{sc=$2}
    END{print l, p, r, pss, pd, pc, sc}' "/proc/$pid/smaps_rollup"
}

start_engine
SAMPLES=$WORK/samples.txt
: >"$SAMPLES"
IDLE=() CHATTY=()
for _ in $(seq "$N"); do
  IDLE+=("$("$BERTH" run -d --network none bench sleep 3600)")
  CHATTY+=("$("$BERTH" run -d --network none bench sh -c 'while :; do echo tick; sleep 0.1; done')")
done
sleep "$SETTLE"
monitor_of() { pgrep -f "__monitor .*$1" | head -1; }
for c in "${IDLE[@]}"; do measure "berth-monitor-idle" "$(monitor_of "$c")" >>"$SAMPLES"; done
for c in "${CHATTY[@]}"; do measure "berth-monitor-logging" "$(monitor_of "$c")" >>"$SAMPLES"; done
measure "berth-engine" "$ENGINE_PID" >>"$SAMPLES"

# Docker's shim, when dockerd runs here (never installed by this script).
if command -v dockerd >/dev/null; then
  dockerd --iptables=false --bridge=none --data-root "$WORK/docker" -H "unix://$WORK/docker.sock" \
    --exec-root "$WORK/docker-exec" --pidfile "$WORK/docker.pid" >"$WORK/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  D="docker -H unix://$WORK/docker.sock"
  for _ in $(seq 200); do $D version >/dev/null 2>&1 && break; sleep 0.1; done
  if $D import "$WORK/rootfs.tar" bench >/dev/null 2>&1; then
    DOCKER_IDS=()
    for _ in $(seq "$N"); do DOCKER_IDS+=("$($D run -d --network none bench sleep 3600)"); done
    sleep "$SETTLE"
    for c in "${DOCKER_IDS[@]}"; do
      # The shim is the parent of the container's init.
      pid=$($D inspect -f '{{.State.Pid}}' "$c")
      measure "docker-shim-idle" "$(awk '{print $4}' "/proc/$pid/stat")" >>"$SAMPLES"
    done
  else
    echo "dockerd did not run a container here; see $WORK/dockerd.log" >&2
  fi
fi

python3 - "$SAMPLES" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    label, pid, *v = line.split()
    rows.setdefault(label, []).append([int(x) for x in v])
mib = lambda kb: f"{kb / 1024:.2f}"
print("| process | n | RSS MiB median (min-max) | PSS | Private_Dirty | Private_Clean | Shared_Clean |")
print("|---|---|---|---|---|---|---|")
for label, vals in rows.items():
    col = lambda i: statistics.median(v[i] for v in vals)
    rss = [v[0] for v in vals]
    print(f"| {label} | {len(vals)} | {mib(col(0))} ({mib(min(rss))}-{mib(max(rss))}) | "
          f"{mib(col(1))} | {mib(col(2))} | {mib(col(3))} | {mib(col(4))} |")
PY
