#!/usr/bin/env bash
# Startup time and a 10-minute RSS soak of `buttress serve` at 500 req/s, placed as the harness
# places gateways: the mock upstream (50 ms) and the load generator on CPU 0, buttress on CPU 1,
# ledger and cost accounting on, every request with a virtual key.
#   bench/soak_gateway.sh            # RATE=500 ROUNDS=2 (x 300 s)
# Needs ../shared/bench/gateway/setup.sh once, and BUTTRESS_PY (default .venv-test's python).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/gateway_project.sh"
bench_env "$ROOT"
RATE=${RATE:-500}; ROUNDS=${ROUNDS:-2}; DURATION=${DURATION:-300}; PORT=${PORT:-8080}
PROJECT=$(mktemp -d "$BENCH_DIR/buttress-soak.XXXXXX")
SECRET=$(bench_project "$PROJECT" "$ROOT/src" soak)
(cd "$H" && ./start_stack.sh mock >/dev/null)
GW_PID=""
cleanup() { [ -n "$GW_PID" ] && kill -INT "$GW_PID" 2>/dev/null; "$H/stop_stack.sh" mock >/dev/null 2>&1 || true; }
trap cleanup EXIT
T0=$(date +%s.%N)
bench_serve "$PROJECT" "$ROOT/src" "$PORT" "$BENCH_DIR/soak.log"
GW_PID=$!
until curl -sf "http://127.0.0.1:$PORT/health" >/dev/null; do sleep 0.02; done
echo "startup: $(echo "$(date +%s.%N) - $T0" | bc) s"
rss() { awk '/VmRSS/{print $2/1024 " MB"}' "/proc/$GW_PID/status"; }
echo "RSS idle: $(rss)"
( while sleep 30; do echo "  RSS at +${SECONDS}s: $(rss)"; done ) & MON=$!
for r in $(seq 1 "$ROUNDS"); do
  taskset -c 0 "$P" "$H/loadgen.py" --url "http://127.0.0.1:$PORT/v1/chat/completions" \
    --model mock-gpt --rate "$RATE" --duration "$DURATION" --header "Authorization: Bearer $SECRET" \
    --out "$BENCH_DIR/soak$r.json" > /dev/null 2>&1
  "$P" -c "import json,sys; d=json.load(open(sys.argv[1])); l=d['latency_ms']; \
print(f\"round $r: ok {d['ok']} errors {d['error_count']} p50 {l['p50']:.1f} ms p99 {l['p99']:.1f} ms\")" \
    "$BENCH_DIR/soak$r.json"
done
kill "$MON"
echo "RSS at the end: $(rss)"
