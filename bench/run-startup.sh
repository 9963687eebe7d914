#!/usr/bin/env bash
# Container start latency, end to end, side by side in one run:
#   berth run --rm --network none IMAGE true
#   runc run of the same rootfs as a bare OCI bundle (the runtime floor)
#   docker run --rm --network none IMAGE true   (if dockerd can be installed/started)
# plus the engine's idle RSS and a per-container monitor's RSS.
# Usage: bench/run-startup.sh [RUNS]   (default 20 timed runs after 3 warm-ups)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-20}
WORK=$(mktemp -d /tmp/berth-bench.XXXXXX)
SOCK=$WORK/engine.sock
BERTH=${BERTH_BIN:-$PWD/target/release/berth}
# The engine's default bridge gets its own name prefix and subnet, removed on exit.
PREFIX=bs$(printf '%04x' $((RANDOM)))
cleanup() {
  set +e
  [ -n "${ENGINE_PID:-}" ] && kill "$ENGINE_PID" 2>/dev/null && wait "$ENGINE_PID" 2>/dev/null
  for l in $(ls /sys/class/net | grep "^$PREFIX"); do ip link del "$l" 2>/dev/null; done
  nft delete table inet "$PREFIX" 2>/dev/null
  [ -n "${DOCKERD_PID:-}" ] && kill "$DOCKERD_PID" 2>/dev/null && wait "$DOCKERD_PID" 2>/dev/null
  grep " $WORK" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$WORK"
  rmdir /sys/fs/cgroup/*/berth /sys/fs/cgroup/berth 2>/dev/null
}
trap cleanup EXIT

command -v hyperfine >/dev/null || { apt-get install -y -qq hyperfine >/dev/null; }
cargo build --release -p berth >/dev/null 2>&1 || cargo build --release -p berth

# A busybox root filesystem.
ROOTFS=$WORK/rootfs
mkdir -p "$ROOTFS"/{bin,etc,tmp,proc,sys,dev}
cp /bin/busybox "$ROOTFS/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$ROOTFS/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$ROOTFS/etc/passwd"
tar -C "$ROOTFS" -cf "$WORK/rootfs.tar" .

# Berth.
BERTH_NETWORK_PREFIX=$PREFIX BERTH_DEFAULT_BRIDGE_SUBNET=10.$((200 + RANDOM % 50)).$((RANDOM % 250)).0/24 \
  "$BERTH" -H "unix://$SOCK" --root "$WORK/berth" engine >"$WORK/engine.log" 2>&1 &
ENGINE_PID=$!
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.05; done
export BERTH_HOST=unix://$SOCK
"$BERTH" image import "$WORK/rootfs.tar" --tag bench >/dev/null
sleep 1
ENGINE_IDLE_RSS=$(awk '/VmRSS/{print $2}' /proc/$ENGINE_PID/status)

# runc bundle of the same rootfs: runc's default spec (own pid, net, ipc, uts, mount ns).
BUNDLE=$WORK/bundle
mkdir -p "$BUNDLE"
cp -a "$ROOTFS" "$BUNDLE/rootfs"
(cd "$BUNDLE" && runc spec && python3 - <<'PY'
import json
c = json.load(open("config.json"))
c["process"]["terminal"] = False
c["process"]["args"] = ["true"]
json.dump(c, open("config.json", "w"))
PY
)

CMDS=(-n "berth run --rm --network none" "$BERTH run --rm --network none bench true"
      -n "runc run (bare bundle)" "runc --root $WORK/runc run -b $BUNDLE bench-\$RANDOM >/dev/null")

# Docker, when it can run here.
if command -v dockerd >/dev/null; then
  dockerd --iptables=false --bridge=none --data-root "$WORK/docker" -H "unix://$WORK/docker.sock" \
    --exec-root "$WORK/docker-exec" --pidfile "$WORK/docker.pid" >"$WORK/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  for _ in $(seq 200); do docker -H "unix://$WORK/docker.sock" version >/dev/null 2>&1 && break; sleep 0.1; done
  if docker -H "unix://$WORK/docker.sock" import "$WORK/rootfs.tar" bench >/dev/null 2>&1 \
     && docker -H "unix://$WORK/docker.sock" run --rm --network none bench true >/dev/null 2>&1; then
    CMDS+=(-n "docker run --rm --network none" "docker -H unix://$WORK/docker.sock run --rm --network none bench true")
  else
    echo "dockerd did not run a container here; see $WORK/dockerd.log" >&2
    tail -5 "$WORK/dockerd.log" >&2 || true
  fi
fi

hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$WORK/startup.json" "${CMDS[@]}" >/dev/null 2>&1 || \
hyperfine --shell=bash --warmup 3 --runs "$RUNS" --export-json "$WORK/startup.json" "${CMDS[@]}" >/dev/null

# RSS of a monitor holding a running container, and the engine after the runs.
CID=$("$BERTH" run -d bench sleep 30)
sleep 0.5
MON_PID=$(pgrep -f "__monitor .*$CID" | head -1)
MONITOR_RSS=$(awk '/VmRSS/{print $2}' /proc/$MON_PID/status)
ENGINE_AFTER_RSS=$(awk '/VmRSS/{print $2}' /proc/$ENGINE_PID/status)
"$BERTH" rm -f "$CID" >/dev/null

python3 - "$WORK/startup.json" "$ENGINE_IDLE_RSS" "$ENGINE_AFTER_RSS" "$MONITOR_RSS" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))["results"]
med = {r["command"]: r["median"] * 1000 for r in data}
print("| command | median (ms) | mean (ms) | min (ms) | max (ms) |")
print("|---|---|---|---|---|")
for r in data:
    print(f"| {r['command']} | {r['median']*1000:.1f} | {r['mean']*1000:.1f} | {r['min']*1000:.1f} | {r['max']*1000:.1f} |")
b = med.get("berth run --rm --network none")
r = med.get("runc run (bare bundle)")
d = med.get("docker run --rm --network none")
if b and r:
    print(f"\nberth / runc = {b/r:.2f}x")
if b and d:
    print(f"docker / berth = {d/b:.2f}x")
print(f"\nengine idle RSS: {int(sys.argv[2])/1024:.1f} MiB; after the runs: {int(sys.argv[3])/1024:.1f} MiB")
print(f"monitor RSS (one running container): {int(sys.argv[4])/1024:.2f} MiB")
PY
