# Shared setup of the networking benchmarks (sourced): a work dir, a busybox image, a Berth
# engine with its own link prefix and default-bridge subnet, and a cleanup that removes
# everything they made (engine, containers, links, nft table, mounts, cgroups, files).
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=$(mktemp -d /tmp/berth-netbench.XXXXXX)
SOCK=$WORK/engine.sock
BERTH=${BERTH:-${CARGO_TARGET_DIR:-$PWD/target}/release/berth}
PREFIX=bn$(printf '%04x' $((RANDOM)))

# A free /24 of 10.200-254.x.0 (no route of the host overlaps it).
free_subnet() {
  local routes; routes=$(ip -4 route show table all | awk '{print $1}')
  for _ in $(seq 200); do
    local s="10.$((200 + RANDOM % 50)).$((RANDOM % 250)).0"
    grep -q "^${s%.0}\." <<<"$routes" || { echo "$s/24"; return; }
  done
  echo "no free subnet" >&2; exit 1
}

net_cleanup() {
  local rc=$?
  set +e
  if [ "$rc" != 0 ] && [ -f "$WORK/engine.log" ]; then
    echo "--- engine log (last lines) ---" >&2; tail -20 "$WORK/engine.log" >&2
  fi
  if [ -n "${ENGINE_PID:-}" ]; then
    for c in $(BERTH_HOST=unix://$SOCK "$BERTH" ps -aq 2>/dev/null); do
      BERTH_HOST=unix://$SOCK "$BERTH" rm -f "$c" >/dev/null 2>&1
    done
    kill "$ENGINE_PID" 2>/dev/null && wait "$ENGINE_PID" 2>/dev/null
  fi
  for l in $(ls /sys/class/net | grep "^$PREFIX"); do ip link del "$l" 2>/dev/null; done
  nft delete table inet "$PREFIX" 2>/dev/null
  grep " $WORK" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$WORK"
  rmdir /sys/fs/cgroup/*/berth /sys/fs/cgroup/berth 2>/dev/null
  true
}

[ -x "$BERTH" ] || { echo "build first: cargo build --release -p berth (or set BERTH)" >&2; exit 1; }
command -v hyperfine >/dev/null || apt-get install -y -qq hyperfine >/dev/null

# A busybox root filesystem with a small page (612 bytes, the size of nginx's default).
ROOTFS=$WORK/rootfs
mkdir -p "$ROOTFS"/{bin,etc,tmp,proc,sys,dev,www}
cp /bin/busybox "$ROOTFS/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$ROOTFS/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$ROOTFS/etc/passwd"
head -c 612 /dev/zero | tr '\0' 'x' > "$ROOTFS/www/index.html"
tar -C "$ROOTFS" -cf "$WORK/rootfs.tar" .

start_engine() {
  BERTH_NETWORK_PREFIX=$PREFIX BERTH_DEFAULT_BRIDGE_SUBNET=$(free_subnet) \
    "$BERTH" -H "unix://$SOCK" --root "$WORK/berth" engine >"$WORK/engine.log" 2>&1 &
  ENGINE_PID=$!
  for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.05; done
  export BERTH_HOST=unix://$SOCK
  "$BERTH" image import "$WORK/rootfs.tar" --tag bench >/dev/null
}
