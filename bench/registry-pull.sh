#!/usr/bin/env bash
# Pull throughput. A 100 MiB image (4 layers of 25 MiB of random bytes: FROM scratch and four
# COPY steps) is built and pushed to a local `berth registry` on loopback; then `berth pull` of
# it into a fresh engine root (a new engine each run), N times (default 5). Prints the median
# MiB/s (and min-max), next to this disk's speed measured in the same run — a 100 MiB
# `dd oflag=direct` write and a `cp` + `sync` of a 100 MiB file — and `skopeo copy` of the same
# image into an OCI layout directory (a plain download + write, no unpacking), and `docker pull`
# of it into a private dockerd (when installed; the peer).
# A pull writes each layer twice (the blob into content/, the unpacked files into snapshots/)
# and makes both durable before it answers, so the last line also relates its speed to writing
# the image twice (2 x the dd time); the registry's blobs are in the page cache after the push.
# Usage: BERTH=path/to/berth bench/registry-pull.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-5}
BERTH=${BERTH:-${CARGO_TARGET_DIR:-$PWD/target}/release/berth}
[ -x "$BERTH" ] || { echo "build first: cargo build --release -p berth (or set BERTH)" >&2; exit 1; }
WORK=$(mktemp -d /tmp/berth-pullbench.XXXXXX)
PREFIX=bp$(printf '%04x' $((RANDOM)))
PIDS=()

cleanup() {
  set +e
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  for l in $(ls /sys/class/net | grep "^$PREFIX"); do ip link del "$l" 2>/dev/null; done
  nft delete table inet "$PREFIX" 2>/dev/null
  grep " $WORK" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$WORK"
  true
}
trap cleanup EXIT

free_subnet() {
  local routes; routes=$(ip -4 route show table all | awk '{print $1}')
  for _ in $(seq 200); do
    local s="10.$((200 + RANDOM % 50)).$((RANDOM % 250)).0"
    grep -q "^${s%.0}\." <<<"$routes" || { echo "$s/24"; return; }
  done
  echo "no free subnet" >&2; exit 1
}

# start_engine NAME: an engine on $WORK/NAME.sock with root $WORK/NAME.
start_engine() {
  BERTH_NETWORK_PREFIX=$PREFIX BERTH_DEFAULT_BRIDGE_SUBNET=$(free_subnet) \
    "$BERTH" -H "unix://$WORK/$1.sock" --root "$WORK/$1" engine >"$WORK/$1.log" 2>&1 &
  PIDS+=($!)
  ENGINE_PID=$!
  for _ in $(seq 200); do [ -S "$WORK/$1.sock" ] && return; sleep 0.05; done
  echo "engine $1 did not start" >&2; cat "$WORK/$1.log" >&2; exit 1
}

stop_engine() {
  kill "$ENGINE_PID" && wait "$ENGINE_PID" 2>/dev/null || true
}

ms() { echo $(( ($2 - $1) / 1000000 )); }
mibs() { awk -v b="$1" -v ms="$2" 'BEGIN { printf "%.0f", (b / 1048576) / (ms / 1000) }'; }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
minmax() { printf '%s\n' "$@" | sort -n | awk 'NR==1{lo=$1} {hi=$1} END {print lo "-" hi}'; }

# The registry.
"$BERTH" --root "$WORK/registry" registry --listen 127.0.0.1:0 >"$WORK/registry.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 200); do grep -q listening "$WORK/registry.out" && break; sleep 0.05; done
REG=$(grep -o '127\.0\.0\.1:[0-9]*' "$WORK/registry.out")
IMAGE=$REG/bench/pull:1

# The image: 4 x 25 MiB of random bytes.
mkdir -p "$WORK/ctx"
for i in 1 2 3 4; do head -c $((25 << 20)) /dev/urandom > "$WORK/ctx/l$i"; done
printf 'FROM scratch\nCOPY l1 /l1\nCOPY l2 /l2\nCOPY l3 /l3\nCOPY l4 /l4\n' > "$WORK/ctx/Dockerfile"
start_engine src
export BERTH_HOST=unix://$WORK/src.sock
"$BERTH" build -q -t "$IMAGE" "$WORK/ctx" >/dev/null
"$BERTH" push -q "$IMAGE" >/dev/null
stop_engine
BYTES=$(find "$WORK/registry/content/blobs/sha256" -type f -size +1M -printf '%s\n' | awk '{s+=$1} END {print s}')

# berth pull into a fresh root, N times.
pull_ms=()
for i in $(seq "$N"); do
  start_engine "dst$i"
  export BERTH_HOST=unix://$WORK/dst$i.sock
  s=$(date +%s%N)
  "$BERTH" pull -q "$IMAGE" >/dev/null
  e=$(date +%s%N)
  pull_ms+=($(ms "$s" "$e"))
  "$BERTH" image inspect --format '{{.Id}}' "$IMAGE" >/dev/null
  stop_engine
  rm -rf "${WORK:?}/dst$i"
done

# The disk, the same run.
dd_ms=()
cp_ms=()
cat "$WORK"/ctx/l{1,2,3,4} > "$WORK/src100"
for i in $(seq "$N"); do
  s=$(date +%s%N)
  dd if="$WORK/src100" of="$WORK/dd.out" bs=1M oflag=direct status=none
  e=$(date +%s%N)
  dd_ms+=($(ms "$s" "$e"))
  rm -f "$WORK/dd.out"
  s=$(date +%s%N)
  cp "$WORK/src100" "$WORK/cp.out" && sync "$WORK/cp.out"
  e=$(date +%s%N)
  cp_ms+=($(ms "$s" "$e"))
  rm -f "$WORK/cp.out"
done

# skopeo into an OCI layout, N times.
sk_ms=()
if command -v skopeo >/dev/null; then
  for i in $(seq "$N"); do
    s=$(date +%s%N)
    skopeo copy -q --src-tls-verify=false "docker://$IMAGE" "oci:$WORK/oci$i:x" >/dev/null
    sync
    e=$(date +%s%N)
    sk_ms+=($(ms "$s" "$e"))
    rm -rf "${WORK:?}/oci$i"
  done
fi

# docker pull of the same image (Docker 20.10's own puller), when dockerd is installed.
dk_ms=()
if command -v dockerd >/dev/null && command -v docker >/dev/null; then
  mkdir -p "$WORK/docker"
  dockerd --iptables=false --bridge=none --data-root "$WORK/docker/data" \
    --exec-root "$WORK/docker/exec" --pidfile "$WORK/docker/d.pid" \
    -H "unix://$WORK/docker/d.sock" >"$WORK/docker/log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 200); do [ -S "$WORK/docker/d.sock" ] && break; sleep 0.05; done
  for i in $(seq "$N"); do
    DOCKER_HOST=unix://$WORK/docker/d.sock docker rmi -f "$IMAGE" >/dev/null 2>&1 || true
    sync
    s=$(date +%s%N)
    DOCKER_HOST=unix://$WORK/docker/d.sock docker pull -q "$IMAGE" >/dev/null
    e=$(date +%s%N)
    dk_ms+=($(ms "$s" "$e"))
  done
fi

M=$(median "${pull_ms[@]}")
echo "image: $(awk -v b="$BYTES" 'BEGIN{printf "%.1f", b/1048576}') MiB in 4 layers, registry $REG (berth registry, loopback)"
echo "berth pull (fresh root, $N runs): median $M ms = $(mibs "$BYTES" "$M") MiB/s (min-max $(minmax "${pull_ms[@]}") ms)"
D=$(median "${dd_ms[@]}")
C=$(median "${cp_ms[@]}")
echo "disk: dd 100 MiB oflag=direct median $D ms = $(mibs $((100 << 20)) "$D") MiB/s; cp + sync 100 MiB median $C ms = $(mibs $((100 << 20)) "$C") MiB/s"
if ((${#sk_ms[@]})); then
  K=$(median "${sk_ms[@]}")
  echo "skopeo copy to an OCI dir ($N runs): median $K ms = $(mibs "$BYTES" "$K") MiB/s (min-max $(minmax "${sk_ms[@]}") ms)"
fi
if ((${#dk_ms[@]})); then
  K=$(median "${dk_ms[@]}")
  echo "docker pull ($N runs): median $K ms = $(mibs "$BYTES" "$K") MiB/s (min-max $(minmax "${dk_ms[@]}") ms); docker / berth time: $(awk -v k="$K" -v m="$M" 'BEGIN{printf "%.2f", k/m}')x"
fi
P=$(mibs "$BYTES" "$M")
echo "berth pull speed / dd direct write speed: $(awk -v p="$P" -v d="$(mibs $((100 << 20)) "$D")" 'BEGIN{printf "%.2f", p/d}'); / cp+sync speed: $(awk -v p="$P" -v c="$(mibs $((100 << 20)) "$C")" 'BEGIN{printf "%.2f", p/c}'); 2 x dd time / pull time (the image written twice): $(awk -v d="$D" -v m="$M" 'BEGIN{printf "%.2f", 2*d/m}')"
