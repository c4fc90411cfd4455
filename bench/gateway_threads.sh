#!/usr/bin/env bash
# Where a gateway's CPU goes, thread by thread: user and system time and context switches per
# request (or stream), read from /proc/PID/task/*/ before and after a fixed open-loop load. With
# RATE=0 it measures the idle gateway instead (CPU and wakes a second). Placement is the
# harness's: the gateway on CPU 1, the mock upstream and the load generator on CPU 0.
#
#   bench/gateway_threads.sh                          # buttress, 20 streams/s for 30 s
#   STREAM=0 RATE=500 bench/gateway_threads.sh        # plain requests
#   TARGET=floor bench/gateway_threads.sh             # the harness's floor proxy, same load
#   RATE=0 DURATION=20 bench/gateway_threads.sh       # idle
#   TOML='[ledger]\nflush_interval_s = 1.0' bench/gateway_threads.sh   # a config variant
#
# Env: TARGET (buttress | floor), RATE (20), DURATION (30 s), STREAM (1), TOML (appended to the
# project's buttress.toml; bench/gateway.toml ends in its [ledger] table). Clock ticks are
# 10 ms: at 20 a second over 30 s, one tick is 17 µs a stream. Needs
# ../shared/bench/gateway/setup.sh run once.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/gateway_project.sh"
bench_env "$ROOT"
TARGET=${TARGET:-buttress}; RATE=${RATE:-20}; DURATION=${DURATION:-30}; PORT=${PORT:-8080}
STREAM_ARG=(--stream); [ "${STREAM:-1}" = 0 ] && STREAM_ARG=()
GW_PID=""
cleanup() {
  [ -n "$GW_PID" ] && kill -TERM "$GW_PID" 2>/dev/null && wait "$GW_PID" 2>/dev/null || true
  "$H/stop_stack.sh" mock >/dev/null 2>&1 || true
}
trap cleanup EXIT
"$H/stop_stack.sh" mock >/dev/null 2>&1 || true
(cd "$H" && ./start_stack.sh mock >/dev/null)
project=$(mktemp -d "$BENCH_DIR/threads.XXXXXX")
secret=$(bench_project "$project" "$ROOT/src" threads)
[ -n "${TOML:-}" ] && printf "%b\n" "$TOML" >> "$project/buttress.toml"
bench_start "$TARGET" "$project" "$ROOT/src" "$PORT" "$secret"
GW_PID=$!
load() {  # load RATE DURATION: the load generator's summary line
  taskset -c 0 "$P" "$H/loadgen.py" --url "http://127.0.0.1:$PORT/v1/chat/completions" \
    --rate "$1" --duration "$2" --model mock-gpt --header "Authorization: Bearer $secret" \
    "${STREAM_ARG[@]}" 2>&1 | grep "ok=" | tail -1
}
snapshot() {  # tid name utime stime voluntary involuntary
  for t in /proc/"$GW_PID"/task/*; do
    echo "$(basename "$t") $(tr ' ' _ < "$t/comm") $(awk '{print $14, $15}' "$t/stat")" \
      "$(awk '/ctxt_switches/ {printf "%s ", $2}' "$t/status")"
  done | sort
}
load 100 3 >/dev/null  # warm up: connections, caches, the first ledger batch
before=$(snapshot)
if [ "$RATE" = 0 ]; then
  sleep "$DURATION"; n=$DURATION; unit="a second"
else
  summary=$(load "$RATE" "$DURATION"); echo "$summary"
  n=$(echo "$summary" | grep -o "ok=[0-9]*" | cut -d= -f2); unit="a $([ "${STREAM:-1}" = 0 ] \
    && echo request || echo stream)"
fi
after=$(snapshot)
echo "$TARGET: CPU and context switches $unit, by thread (the event loop's is the process's"
echo "first; buttress's second is the ledger writer; libuv's idle workers are left out)"
join <(echo "$before") <(echo "$after") | awk -v n="$n" -v hz="$(getconf CLK_TCK)" \
    -v main="$GW_PID" '
  { if ($1 == main) $2 = "event-loop"; user = ($8 - $3) * 1e6 / hz / n; sys = ($9 - $4) * 1e6 / hz / n
    if ($2 ~ /libuv-worker/ && user + sys == 0) next
    printf "  %-24s user %8.0f µs  sys %7.0f µs  voluntary %6.2f  involuntary %5.2f\n",
           $2 " (" $1 ")", user, sys, ($10 - $5) / n, ($11 - $6) / n }'
