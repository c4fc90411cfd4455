#!/usr/bin/env bash
# Splits the gateway's CPU a stream into a fixed part and a part per chunk: the mock upstream is
# restarted with each chunk count in turn, and the gateway's CPU (all threads, from /proc) is
# divided by the streams served. buttress and the harness's floor proxy run in the same script,
# placed as the harness places gateways (gateway on CPU 1; mock and load generator on CPU 0).
#
#   bench/stream_slope.sh                      # RATE=20 CHUNK_COUNTS="2 20 60" DURATION=15
#   TARGETS=buttress RATE=50 bench/stream_slope.sh
#
# The slope between two chunk counts is the cost of a chunk; what is left at zero chunks is the
# cost of a stream's request, response and ledger record. Needs ../shared/bench/gateway/setup.sh
# once, and BUTTRESS_PY (default .venv-test's python).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/gateway_project.sh"
bench_env "$ROOT"
RATE=${RATE:-20}; DURATION=${DURATION:-15}; PORT=${PORT:-8080}
CHUNK_COUNTS=${CHUNK_COUNTS:-2 20 60}; TARGETS=${TARGETS:-buttress floor}
GW_PID=""
cleanup() {
  [ -n "$GW_PID" ] && kill -TERM "$GW_PID" 2>/dev/null && wait "$GW_PID" 2>/dev/null || true
  "$H/stop_stack.sh" mock >/dev/null 2>&1 || true
}
trap cleanup EXIT
mock() { "$H/stop_stack.sh" mock >/dev/null 2>&1 || true; (cd "$H" && CHUNKS=$1 ./start_stack.sh mock >/dev/null); }
load() {  # load SECRET RATE DURATION: the number of streams served
  taskset -c 0 "$P" "$H/loadgen.py" --url "http://127.0.0.1:$PORT/v1/chat/completions" \
    --rate "$2" --duration "$3" --model mock-gpt --header "Authorization: Bearer $1" --stream \
    2>&1 | grep -o "ok=[0-9]*" | tail -1 | cut -d= -f2
}
printf "%-9s %7s %8s %14s\n" target chunks streams "CPU/stream ms"
for target in $TARGETS; do
  project=$(mktemp -d "$BENCH_DIR/slope.XXXXXX")
  secret=$(bench_project "$project" "$ROOT/src" slope)
  mock 20
  bench_start "$target" "$project" "$ROOT/src" "$PORT" "$secret"
  GW_PID=$!
  load "$secret" 100 3 >/dev/null  # warm up
  for chunks in $CHUNK_COUNTS; do
    mock "$chunks"
    load "$secret" 50 2 >/dev/null  # fresh upstream connections
    t0=$(ticks "$GW_PID")
    served=$(load "$secret" "$RATE" "$DURATION")
    t1=$(ticks "$GW_PID")
    printf "%-9s %7s %8s %14.3f\n" "$target" "$chunks" "$served" \
      "$(echo "($t1 - $t0) * 1000 / $(getconf CLK_TCK) / $served" | bc -l)"
  done
  # buttress drains on SIGINT; the floor proxy stops only on SIGTERM
  kill "-$([ "$target" = floor ] && echo TERM || echo INT)" "$GW_PID" 2>/dev/null
  wait "$GW_PID" 2>/dev/null || true; GW_PID=""
done
