#!/usr/bin/env bash
# The engine's container tests again, on a cgroup v2 host: runs the already built test
# executables of crates/cli's engine suites (limits and OOM, lifecycle, isolation, live restore,
# basics) inside the cgroup-v2-only guest of tests/vm/run.sh. Exit status: non-zero if any
# suite fails (or the guest cannot boot). Build first (`cargo build --workspace --all-targets`).
set -euo pipefail
cd "$(dirname "$0")/../.."
suites=(engine_limits engine_lifecycle engine_isolation engine_restore engine_basics)
args=()
for s in "${suites[@]}"; do args+=(--test "$s"); done
err=$(mktemp)
trap 'rm -f "$err"' EXIT
# The test executables from cargo's JSON messages (plain text tools: no python needed here).
mapfile -t exes < <(cargo test -p berth "${args[@]}" --no-run --message-format=json 2>"$err" |
  grep '"reason":"compiler-artifact"' | grep '"kind":\["test"\]' |
  grep -o '"executable":"[^"]*"' | sed 's/^"executable":"//; s/"$//')
if [ "${#exes[@]}" != "${#suites[@]}" ]; then
  echo "cgroup-v2.sh: cargo listed ${#exes[@]} of ${#suites[@]} test executables; cargo said:" >&2
  cat "$err" >&2
  # Fall back to the newest built executable of each suite (the build step made them all).
  exes=()
  deps=${CARGO_TARGET_DIR:-$PWD/target}/debug/deps
  for s in "${suites[@]}"; do
    newest=$(find "$deps" -maxdepth 1 -type f -perm -u+x -name "$s-*" -printf '%T@ %p\n' 2>/dev/null |
      sort -rn | awk 'NR == 1 { sub(/^[^ ]+ /, ""); print }' || true)
    [ -n "$newest" ] && exes+=("$newest")
  done
  if [ "${#exes[@]}" != "${#suites[@]}" ]; then
    echo "cgroup-v2.sh: found ${#exes[@]} of ${#suites[@]} test executables in $deps either" >&2
    exit 1
  fi
  echo "cgroup-v2.sh: using the newest built executables in $deps" >&2
fi
script='s=0; for t in "$@"; do echo "== cgroup v2: ${t##*/}"; "$t" --test-threads 2 || s=1; done; exit $s'
echo "cgroup v2 guest: ${suites[*]}"
bash tests/vm/run.sh sh -c "$script" sh "${exes[@]}"
