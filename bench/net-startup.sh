#!/usr/bin/env bash
# Added start latency of bridge networking: `berth run --rm IMAGE true` with --network none,
# bridge (the default network) and a user-defined network (which also gets the embedded DNS),
# ROUNDS rounds of RUNS iterations (after 3 warm-ups of each), the modes interleaved.
# Usage: BERTH=path/to/release/berth bench/net-startup.sh [RUNS] [ROUNDS]   (default 20 3)
source "$(dirname "$0")/common-net.sh"
trap net_cleanup EXIT
RUNS=${1:-20}
ROUNDS=${2:-3}
start_engine
"$BERTH" network create --subnet "$(free_subnet)" benchnet >/dev/null

# Interleaved: every iteration runs the three modes in a fresh random order, so load from
# elsewhere on the machine hits all modes alike; the added latency is the median of the
# per-iteration differences.
python3 - "$BERTH" "$RUNS" "$ROUNDS" <<'PY'
import random, statistics, subprocess, sys, time
berth, runs, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
modes = {"none": "none", "bridge": "bridge", "user": "benchnet"}
def once(net):
    t = time.perf_counter()
    subprocess.run([berth, "run", "--rm", "--network", net, "bench", "true"], check=True,
                   stdout=subprocess.DEVNULL)
    return (time.perf_counter() - t) * 1000
for m in modes.values():          # warm-up
    for _ in range(3):
        once(m)
print("| round | runs | none median (ms) | bridge median (ms) | user network median (ms) | bridge - none (median of pairs) | user - none (median of pairs) |")
print("|---|---|---|---|---|---|---|")
all_b, all_u = [], []
for r in range(1, rounds + 1):
    t = {k: [] for k in modes}
    for _ in range(runs):
        order = list(modes)
        random.shuffle(order)
        for k in order:
            t[k].append(once(modes[k]))
    db = [b - n for b, n in zip(t["bridge"], t["none"])]
    du = [u - n for u, n in zip(t["user"], t["none"])]
    all_b += db; all_u += du
    med = {k: statistics.median(v) for k, v in t.items()}
    print(f"| {r} | {runs} | {med['none']:.1f} | {med['bridge']:.1f} | {med['user']:.1f} | "
          f"{statistics.median(db):+.1f} | {statistics.median(du):+.1f} |")
print(f"\nadded start latency over --network none, median of all {len(all_b)} pairs: "
      f"bridge {statistics.median(all_b):+.1f} ms, user network {statistics.median(all_u):+.1f} ms")
PY
