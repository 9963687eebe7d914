#!/usr/bin/env bash
# Throughput and latency through a published port on loopback, against busybox httpd in a
# container (612-byte page; httpd forks per request and closes the connection, so every
# request is a new TCP connection through the proxy). Load: wrk, ROUNDS rounds of DURATION
# each per target, median of the rounds. Targets:
#   raw           busybox httpd on the host's 127.0.0.1 (no container, no proxy: the floor)
#   berth-direct  the Berth container's bridge address (no proxy)
#   berth-publish 127.0.0.1:PORT published by Berth (-p 127.0.0.1:PORT:80)
#   docker-publish / docker-direct  the same with dockerd (docker-proxy), if dockerd runs here:
#                 started with its own bridge (created here, named by this run), no iptables,
#                 no ip_forward/masquerade changes, its data under the work dir; all removed.
# Usage: BERTH=path/to/release/berth bench/net-throughput.sh [DURATION] [ROUNDS] [CONNS]
source "$(dirname "$0")/common-net.sh"
DOCKER_BR=bd$(printf '%04x' $((RANDOM)))
cleanup() {
  set +e
  [ -n "${RAW_PID:-}" ] && kill "$RAW_PID" 2>/dev/null && wait "$RAW_PID" 2>/dev/null
  if [ -n "${DOCKERD_PID:-}" ]; then
    docker -H "unix://$WORK/docker.sock" rm -f web >/dev/null 2>&1
    kill "$DOCKERD_PID" 2>/dev/null && wait "$DOCKERD_PID" 2>/dev/null
  fi
  ip link del "$DOCKER_BR" 2>/dev/null
  net_cleanup
}
trap cleanup EXIT
DURATION=${1:-10s}
ROUNDS=${2:-3}
CONNS=${3:-16}
command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

declare -A URL
start_engine
RAW_PORT=$(free_port)
busybox httpd -f -p "127.0.0.1:$RAW_PORT" -h "$ROOTFS/www" & RAW_PID=$!
URL[raw]=http://127.0.0.1:$RAW_PORT/
PUB=$(free_port)
"$BERTH" run -d --name web -p "127.0.0.1:$PUB:80" bench httpd -f -p 80 -h /www >/dev/null
URL[berth-direct]=http://$("$BERTH" inspect --format '{{.NetworkSettings.IPAddress}}' web)/
URL[berth-publish]=http://127.0.0.1:$PUB/
TARGETS=(raw berth-direct berth-publish)

if command -v dockerd >/dev/null; then
  DSUB=$(free_subnet); DSUB=${DSUB%.0/24}
  ip link add "$DOCKER_BR" type bridge && ip addr add "$DSUB.1/24" dev "$DOCKER_BR" && ip link set "$DOCKER_BR" up
  dockerd --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
    --bridge="$DOCKER_BR" --data-root "$WORK/docker" -H "unix://$WORK/docker.sock" \
    --exec-root "$WORK/docker-exec" --pidfile "$WORK/docker.pid" >"$WORK/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  D="docker -H unix://$WORK/docker.sock"
  for _ in $(seq 200); do $D version >/dev/null 2>&1 && break; sleep 0.1; done
  DPUB=$(free_port)
  if $D import "$WORK/rootfs.tar" bench >/dev/null 2>&1 \
     && $D run -d --name web -p "127.0.0.1:$DPUB:80" bench httpd -f -p 80 -h /www >/dev/null; then
    URL[docker-direct]=http://$($D inspect --format '{{.NetworkSettings.IPAddress}}' web)/
    URL[docker-publish]=http://127.0.0.1:$DPUB/
    TARGETS+=(docker-direct docker-publish)
  else
    echo "dockerd did not run a container here; see $WORK/dockerd.log" >&2
    tail -5 "$WORK/dockerd.log" >&2 || true
  fi
fi

for t in "${TARGETS[@]}"; do
  for _ in $(seq 50); do curl -sf -o /dev/null "${URL[$t]}" && break; sleep 0.1; done
  curl -sf -o /dev/null "${URL[$t]}" || { echo "$t (${URL[$t]}) does not answer" >&2; exit 1; }
done

for r in $(seq "$ROUNDS"); do
  for t in "${TARGETS[@]}"; do   # interleaved, so drift of the machine hits all targets alike
    wrk -t2 -c"$CONNS" -d"$DURATION" --latency "${URL[$t]}" >"$WORK/$t.$r.txt"
  done
done

python3 - "$WORK" "$ROUNDS" "${TARGETS[@]}" <<'PY'
import re, sys, statistics
work, rounds, targets = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def ms(v):
    n, unit = re.match(r"([\d.]+)(us|ms|s)", v).groups()
    return float(n) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
rows = {}
for t in targets:
    rps, p50, p99, errs = [], [], [], 0
    for r in range(1, rounds + 1):
        txt = open(f"{work}/{t}.{r}.txt").read()
        rps.append(float(re.search(r"Requests/sec:\s+([\d.]+)", txt).group(1)))
        p50.append(ms(re.search(r"\s50%\s+(\S+)", txt).group(1)))
        p99.append(ms(re.search(r"\s99%\s+(\S+)", txt).group(1)))
        m = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", txt)
        if m: errs += 1
    rows[t] = (statistics.median(rps), statistics.median(p50), statistics.median(p99), rps, errs)
print("| target | req/s (median) | p50 latency (ms) | p99 latency (ms) | req/s of each round | rounds with errors |")
print("|---|---|---|---|---|---|")
for t, (r, a, b, all_, e) in rows.items():
    print(f"| {t} | {r:.0f} | {a:.2f} | {b:.2f} | {', '.join(f'{x:.0f}' for x in all_)} | {e} |")
if "berth-publish" in rows and "docker-publish" in rows:
    print(f"\nberth-publish / docker-publish throughput = {rows['berth-publish'][0]/rows['docker-publish'][0]:.2f}x")
if "berth-publish" in rows:
    print(f"berth-publish / berth-direct throughput = {rows['berth-publish'][0]/rows['berth-direct'][0]:.2f}x")
PY
