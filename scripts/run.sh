#!/usr/bin/env bash
# Builds Berth and starts it with its embedded defaults: `berth up` runs the ECS-compatible
# control plane (http://127.0.0.1:9400, store in /var/lib/berth/server), one node agent
# (cluster `default`) and the engine (unix:///run/berth/engine.sock, data in /var/lib/berth)
# in one process. Then it imports a busybox image, runs a task through the ECS API with the
# aws CLI, and shows its container running.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release -p berth
BERTH=${CARGO_TARGET_DIR:-$PWD/target}/release/berth
AWS=${BERTH_VENV:-/opt/berth-venv}/bin/aws
ENDPOINT=http://127.0.0.1:9400
export AWS_SHARED_CREDENTIALS_FILE=/var/lib/berth/server/credentials
export AWS_CONFIG_FILE=/dev/null AWS_DEFAULT_REGION=us-east-1 AWS_DEFAULT_OUTPUT=json AWS_EC2_METADATA_DISABLED=true
ecs() { "$AWS" --endpoint-url "$ENDPOINT" ecs "$@"; }

if ! "$BERTH" version >/dev/null 2>&1; then
  mkdir -p /var/log/berth
  nohup "$BERTH" up >/var/log/berth/up.log 2>&1 &
  UP_PID=$!
  for _ in $(seq 300); do
    "$BERTH" version >/dev/null 2>&1 && [ -f "$AWS_SHARED_CREDENTIALS_FILE" ] &&
      ecs list-container-instances --cluster default 2>/dev/null | grep -q container-instance && break
    kill -0 "$UP_PID" 2>/dev/null || break
    sleep 0.1
  done
  if ! ecs list-container-instances --cluster default 2>/dev/null | grep -q container-instance; then
    echo "berth up did not start; its log:" >&2
    cat /var/log/berth/up.log >&2
    exit 1
  fi
  echo "berth up started (pid $UP_PID), log in /var/log/berth/up.log"
else
  echo "an engine already answers on /run/berth/engine.sock; using it"
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

ecs register-task-definition --family hello --network-mode bridge --container-definitions \
  '[{"name":"hello","image":"busybox:latest","memory":32,"command":["sh","-c","while :; do echo hello from $(hostname) at $(date); sleep 5; done"]}]' \
  >/dev/null
TASK=$(ecs run-task --cluster default --task-definition hello \
  --query 'tasks[0].taskArn' --output text)
ecs wait tasks-running --cluster default --tasks "$TASK"
ecs describe-tasks --cluster default --tasks "$TASK" \
  --query 'tasks[0].{task:taskArn,lastStatus:lastStatus,container:containers[0].runtimeId}'
"$BERTH" ps
echo
echo "Berth keeps running. Try:"
echo "  AWS_SHARED_CREDENTIALS_FILE=$AWS_SHARED_CREDENTIALS_FILE $AWS --endpoint-url $ENDPOINT ecs list-tasks --cluster default"
echo "  $BERTH run --rm busybox uname -a"
