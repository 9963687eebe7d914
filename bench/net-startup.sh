#!/usr/bin/env bash
# Added start latency of bridge networking: `berth run --rm IMAGE true` with --network none,
# bridge (the default network) and a user-defined network (which also gets the embedded DNS),
# timed by hyperfine in ROUNDS rounds of RUNS runs each (after 3 warm-ups), so drift of the
# machine shows as spread between rounds rather than as a difference between modes.
# Usage: BERTH=path/to/release/berth bench/net-startup.sh [RUNS] [ROUNDS]   (default 20 3)
source "$(dirname "$0")/common-net.sh"
trap net_cleanup EXIT
RUNS=${1:-20}
ROUNDS=${2:-3}
start_engine
"$BERTH" network create --subnet "$(free_subnet)" benchnet >/dev/null

for r in $(seq "$ROUNDS"); do
  hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$WORK/round$r.json" \
    -n none "$BERTH run --rm --network none bench true" \
    -n bridge "$BERTH run --rm --network bridge bench true" \
    -n user "$BERTH run --rm --network benchnet bench true" >/dev/null
done

python3 - "$WORK" "$ROUNDS" <<'PY'
import json, sys, statistics
work, rounds = sys.argv[1], int(sys.argv[2])
print("| round | none median (ms) | bridge median (ms) | user network median (ms) | bridge - none | user - none |")
print("|---|---|---|---|---|---|")
adds_b, adds_u = [], []
for r in range(1, rounds + 1):
    res = {x["command"]: x["median"] * 1000 for x in json.load(open(f"{work}/round{r}.json"))["results"]}
    b, u = res["bridge"] - res["none"], res["user"] - res["none"]
    adds_b.append(b); adds_u.append(u)
    print(f"| {r} | {res['none']:.1f} | {res['bridge']:.1f} | {res['user']:.1f} | {b:+.1f} | {u:+.1f} |")
print(f"\nadded by bridge: median of rounds {statistics.median(adds_b):+.1f} ms; "
      f"user network: {statistics.median(adds_u):+.1f} ms")
PY
