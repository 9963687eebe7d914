#!/usr/bin/env bash
# Cached rebuild of a 10-step Dockerfile (RUN, COPY, ENV, WORKDIR, ...): after one full build,
# `berth build` of the unchanged context again; every step is `---> Using cache`. Prints the
# median (and min-max) wall time of N rebuilds, CLI start to exit. Side by side in the same run,
# when dockerd is installed: `docker build` of the same context on a private dockerd (its
# classic builder, then BuildKit), the same busybox root filesystem imported as its base.
# Usage: BERTH=path/to/berth bench/build-cache.sh [N]   (default 10)
source "$(dirname "$0")/common-net.sh"
N=${1:-10}
DOCKER=""
cleanup_all() {
  if [ -n "${DOCKERD_PID:-}" ]; then
    kill "$DOCKERD_PID" 2>/dev/null && wait "$DOCKERD_PID" 2>/dev/null
  fi
  net_cleanup
}
trap cleanup_all EXIT
start_engine
CTX=$WORK/ctx
mkdir -p "$CTX"
echo hello > "$CTX/a.txt"
cat > "$CTX/Dockerfile" <<'DF'
FROM bench
ARG V=1
ENV APP=/srv/app
WORKDIR $APP
COPY a.txt .
RUN cat a.txt > b.txt
LABEL version=$V
EXPOSE 8080
USER 0
CMD ["cat", "b.txt"]
DF

# Times N runs of "$@" (after one untimed run); each output must show at least MIN lines
# matching CHECK (the builder's cache-hit marker); prints a line.
time_rebuilds() {
  local label=$1 check=$2 min=$3; shift 3
  "$@" >/dev/null 2>&1 || { echo "$label: first build failed:" >&2; "$@" >&2; exit 1; }
  local times=() s e out
  for _ in $(seq "$N"); do
    s=$(date +%s%N)
    out=$("$@" 2>&1)
    e=$(date +%s%N)
    [ "$(grep -cE "$check" <<<"$out")" -ge "$min" ] || { echo "$label: not all steps cached:" >&2; echo "$out" >&2; exit 1; }
    times+=($(( (e - s) / 1000000 )))
  done
  local sorted=($(printf '%s\n' "${times[@]}" | sort -n))
  echo "$label, cached rebuild of 10 steps: median ${sorted[$((N / 2))]} ms (min ${sorted[0]}, max ${sorted[$((N - 1))]}) over $N runs"
}

time_rebuilds "berth build" 'Using cache' 9 "$BERTH" build -t cached "$CTX"

if command -v dockerd >/dev/null && command -v docker >/dev/null; then
  dockerd --iptables=false --bridge=none --data-root "$WORK/docker" -H "unix://$WORK/docker.sock" \
    --exec-root "$WORK/docker-exec" --pidfile "$WORK/docker.pid" >"$WORK/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  DOCKER="docker -H unix://$WORK/docker.sock"
  for _ in $(seq 200); do $DOCKER version >/dev/null 2>&1 && break; sleep 0.1; done
  $DOCKER import "$WORK/rootfs.tar" bench >/dev/null
  DOCKER_BUILDKIT=0 time_rebuilds "docker build (classic builder)" 'Using cache' 9 \
    $DOCKER build --network none -t cached "$CTX"
  if DOCKER_BUILDKIT=1 $DOCKER build --network none -t cached-bk "$CTX" >/dev/null 2>&1; then
    DOCKER_BUILDKIT=1 time_rebuilds "docker build (BuildKit)" 'CACHED' 2 \
      $DOCKER build --progress plain --network none -t cached-bk "$CTX"
  else
    echo "docker build (BuildKit): not available here (the docker CLI needs the buildx plugin)" >&2
  fi
else
  echo "dockerd not installed: no side-by-side figure" >&2
fi
