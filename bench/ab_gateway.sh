#!/usr/bin/env bash
# A/B of two revisions of the gateway, for changes smaller than this machine's drift.
#
# CPU per request moves by +-15% between identical runs here, hour to hour. Comparing a change
# with numbers taken at another time therefore says little. This script alternates two git
# revisions, each round on a fresh `buttress serve` pinned to CPU 1, with the harness's mock
# upstream and load generator on CPU 0: warm up, then drive a fixed open-loop rate and read the
# gateway's CPU (all threads, from /proc) per request.
#
#   bench/ab_gateway.sh REV_A REV_B [ROUNDS]          # e.g. bench/ab_gateway.sh HEAD~3 HEAD 3
#   RATE=50 STREAM=1 bench/ab_gateway.sh main HEAD    # streams: CPU per stream
#
# Env: RATE (500), DURATION (10 s), WARMUP (4 s), STREAM (0), BENCH_DIR (/tmp/bench),
# BUTTRESS_PY (a python with buttress's gateway extra; default .venv-test). Needs
# ../shared/bench/gateway/setup.sh run once. WORKTREE is the working tree (uncommitted changes).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/gateway_project.sh"
bench_env "$ROOT"
A=${1:?revision A}; B=${2:?revision B}; ROUNDS=${3:-3}
RATE=${RATE:-500}; DURATION=${DURATION:-10}; WARMUP=${WARMUP:-4}
STREAM_ARG=(); [ "${STREAM:-0}" = 1 ] && STREAM_ARG=(--stream)
WORK=$(mktemp -d "$BENCH_DIR/ab.XXXXXX")
for side in A B; do
  rev=$A; [ "$side" = B ] && rev=$B
  mkdir -p "$WORK/$side"
  if [ "$rev" = WORKTREE ]; then cp -r "$ROOT/src" "$WORK/$side/src"
  else git -C "$ROOT" archive "$rev" src | tar -x -C "$WORK/$side"; fi
done
GW_PID=""
cleanup() {
  [ -n "$GW_PID" ] && kill -INT "$GW_PID" 2>/dev/null && wait "$GW_PID" 2>/dev/null || true
  [ -f "$BENCH_DIR/mock.pid" ] && kill "$(cat "$BENCH_DIR/mock.pid")" 2>/dev/null || true
}
trap cleanup EXIT
(cd "$H" && ./start_stack.sh mock >/dev/null)

load() {  # load SECRET RATE DURATION: the load generator's summary line
  taskset -c 0 "$P" "$H/loadgen.py" --url http://127.0.0.1:8080/v1/chat/completions \
    --rate "$2" --duration "$3" --model mock-gpt --header "Authorization: Bearer $1" \
    "${STREAM_ARG[@]}" 2>&1 | grep "rate=" | tail -1
}
printf "%-5s %-12s %10s  %s\n" side revision "CPU/req" "load generator"
for round in $(seq 1 "$ROUNDS"); do
  for side in A B; do
    rev=$A; [ "$side" = B ] && rev=$B
    project="$WORK/p-$side-$round"; mkdir -p "$project"
    secret=$(bench_project "$project" "$WORK/$side/src" ab)
    bench_serve "$project" "$WORK/$side/src" 8080 "$project/serve.log"
    GW_PID=$!
    for _ in $(seq 1 100); do curl -sf http://127.0.0.1:8080/health >/dev/null && break; sleep 0.1; done
    load "$secret" 300 "$WARMUP" >/dev/null
    t0=$(ticks "$GW_PID")
    line=$(load "$secret" "$RATE" "$DURATION")
    t1=$(ticks "$GW_PID")
    kill -INT "$GW_PID"; wait "$GW_PID" 2>/dev/null || true; GW_PID=""
    cpu=$(python3 -c "print(f'{($t1 - $t0) / 100 / ($RATE * $DURATION) * 1e3:.3f} ms')")
    printf "%-5s %-12s %10s  %s\n" "$side" "$rev" "$cpu" "$(echo "$line" | sed 's/^ *//' | cut -c1-110)"
  done
done
