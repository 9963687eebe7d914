#!/usr/bin/env bash
# Builds Berth, starts its engine with the embedded defaults (data in /var/lib/berth, API on
# /run/berth/engine.sock), imports a busybox image and shows a container running.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release -p berth
BERTH=${CARGO_TARGET_DIR:-$PWD/target}/release/berth
SOCK=/run/berth/engine.sock
if ! "$BERTH" version >/dev/null 2>&1; then
  mkdir -p /var/log/berth
  nohup "$BERTH" engine >/var/log/berth/engine.log 2>&1 &
  ENGINE_PID=$!
  for _ in $(seq 100); do [ -S "$SOCK" ] && "$BERTH" version >/dev/null 2>&1 && break; sleep 0.1; done
  if ! "$BERTH" version >/dev/null 2>&1; then
    echo "berth engine did not start; its log:" >&2
    cat /var/log/berth/engine.log >&2
    exit 1
  fi
  echo "berth engine started (pid $ENGINE_PID), log in /var/log/berth/engine.log"
fi
if ! "$BERTH" image inspect busybox >/dev/null 2>&1; then
  ROOTFS=$(mktemp -d)
  mkdir -p "$ROOTFS"/{bin,etc,tmp,root}
  cp /bin/busybox "$ROOTFS/bin/busybox"
  for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$ROOTFS/bin/$a"; done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$ROOTFS/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$ROOTFS/etc/group"
  chmod 1777 "$ROOTFS/tmp"
  "$BERTH" image import "$ROOTFS" --tag busybox:latest
  rm -rf "$ROOTFS"
fi
"$BERTH" rm -f hello >/dev/null 2>&1 || true
"$BERTH" run -d --name hello busybox sh -c 'while :; do echo "hello from $(hostname) at $(date)"; sleep 5; done'
"$BERTH" ps
sleep 1
"$BERTH" logs hello
echo
echo "The engine keeps running. Try: $BERTH run --rm busybox uname -a"
