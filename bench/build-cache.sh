#!/usr/bin/env bash
# Cached rebuild of a 10-step Dockerfile (RUN, COPY, ENV, WORKDIR, ...): after one full build,
# `berth build` of the unchanged context again; every step is `---> Using cache`. Prints the
# median (and min-max) wall time of N rebuilds, CLI start to exit.
# Usage: BERTH=path/to/berth bench/build-cache.sh [N]   (default 10)
source "$(dirname "$0")/common-net.sh"
N=${1:-10}
trap net_cleanup EXIT
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
"$BERTH" build -t cached "$CTX" >/dev/null
times=()
for _ in $(seq "$N"); do
  s=$(date +%s%N)
  out=$("$BERTH" build -t cached "$CTX")
  e=$(date +%s%N)
  [ "$(grep -c 'Using cache' <<<"$out")" = 9 ] || { echo "not all steps cached:" >&2; echo "$out" >&2; exit 1; }
  times+=($(( (e - s) / 1000000 )))
done
sorted=($(printf '%s\n' "${times[@]}" | sort -n))
echo "cached rebuild of 10 steps: median ${sorted[$((N / 2))]} ms (min ${sorted[0]}, max ${sorted[$((N - 1))]}) over $N runs"
