#!/usr/bin/env bash
# buttress's gateway under ../shared/bench/gateway, exactly as its README's "Benchmarking buttress":
# the mock upstream (50 ms) on CPU 0 with the load generator, `buttress serve` pinned to CPU 1,
# a model `mock-gpt` of an openai-type provider at http://127.0.0.1:9000/v1, the ledger and cost
# accounting ON, and a virtual key (with RPM/TPM limits and a budget far above the load, so every
# check runs on every request without refusing any).
#
#   bench/bench_gateway.sh                 # short sanity run: fixed 200 req/s for 10 s + a maxrate probe
#   FULL=1 bench/bench_gateway.sh          # the README's full matrix (about 30 min)
#
# Env: BENCH_DIR (/tmp/bench; `setup.sh` makes its harness-venv), BUTTRESS_PY (python with
# buttress and its gateway extra; default: the first of .venv-test, .venv, python3), PORT (8080),
# OUT (results file), RATES, DURATION, STEPS. FLOOR_ASGI=1 then also measures `asgi-floor`
# (bench/asgi_floor.py): a canned answer from a bare ASGI app under the same uvicorn settings,
# i.e. the HTTP server's own share of the gateway's CPU a request.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
H=$(cd "$ROOT/../shared/bench/gateway" && pwd)
BENCH_DIR=${BENCH_DIR:-/tmp/bench}
export BENCH_DIR
P=$BENCH_DIR/harness-venv/bin/python
[ -x "$P" ] || { echo "no harness venv at $P: run $H/setup.sh first" >&2; exit 2; }
if [ -z "${BUTTRESS_PY:-}" ]; then
  for c in "$ROOT/.venv-test/bin/python" "$ROOT/.venv/bin/python" python3; do
    if command -v "$c" >/dev/null 2>&1; then BUTTRESS_PY=$c; break; fi
  done
fi
PORT=${PORT:-8080}
OUT=${OUT:-$BENCH_DIR/results/buttress-$(date +%Y%m%d-%H%M%S).jsonl}
mkdir -p "$(dirname "$OUT")"
PROJECT=$(mktemp -d "$BENCH_DIR/buttress-project.XXXXXX")
. "$ROOT/bench/gateway_project.sh"
SECRET=$(bench_project "$PROJECT" "$ROOT/src" bench)

GW_PID=""
cleanup() {
  [ -n "$GW_PID" ] && kill -INT "$GW_PID" 2>/dev/null && wait "$GW_PID" 2>/dev/null || true
  [ -f "$BENCH_DIR/mock.pid" ] && kill "$(cat "$BENCH_DIR/mock.pid")" 2>/dev/null || true
}
trap cleanup EXIT

(cd "$H" && ./start_stack.sh mock)
PYTHONPATH="$ROOT/src" taskset -c 1 "$BUTTRESS_PY" -c 'from buttress.cli.main import main; main()' \
  -C "$PROJECT" serve --host 127.0.0.1 --port "$PORT" > "$BENCH_DIR/buttress.log" 2>&1 &
GW_PID=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$PORT/health" >/dev/null || { cat "$BENCH_DIR/buttress.log"; exit 1; }

cd "$H"
bench() { taskset -c 0 "$P" bench_gateway.py --python "$P" --out "$OUT" "$@"; }
T=(--url "http://127.0.0.1:$PORT/v1/chat/completions" --name buttress --model mock-gpt
   --header "Authorization: Bearer $SECRET" --pid "$GW_PID")
D=(--url http://127.0.0.1:9000/v1/chat/completions --name direct --pidfile "$BENCH_DIR/mock.pid")
if [ "${FULL:-0}" = 1 ]; then
  # the harness's matrix; REPS, DURATION, STEP_S, FIXED_RATES, STREAM_RATES as in run_all.sh
  R=${REPS:-3}; DU=${DURATION:-20}; ST=${STEP_S:-10}
  FR=${FIXED_RATES:-50,200,500}; SR=${STREAM_RATES:-20,50}
  bench "${T[@]}" fixed   --rates "$FR" --reps "$R" --duration "$DU"
  bench "${T[@]}" stream  --rates "$SR" --reps "$R" --duration "$DU"
  bench "${T[@]}" closed  --concurrency 64 --reps "$R" --duration "$ST"
  bench "${T[@]}" maxrate --steps "${STEPS:-100,200,400,600,800,1000,1200,1500,2000,2500,3000}" \
    --reps "$R" --duration "$ST"
  if [ "${SKIP_DIRECT:-0}" != 1 ]; then
    bench "${D[@]}" fixed   --rates "$FR" --reps "$R" --duration "$DU"
    bench "${D[@]}" stream  --rates "$SR" --reps "$R" --duration "$DU"
  fi
else
  bench "${T[@]}" fixed   --rates "${RATES:-200}" --reps 1 --duration "${DURATION:-10}"
  bench "${T[@]}" maxrate --steps "${STEPS:-500,1000,1500,2000,3000}" --reps 1 --duration "${DURATION:-10}"
  bench "${D[@]}" fixed   --rates "${RATES:-200}" --reps 1 --duration "${DURATION:-10}"
fi
if [ "${FLOOR_ASGI:-0}" = 1 ]; then
  kill -INT "$GW_PID" 2>/dev/null; wait "$GW_PID" 2>/dev/null || true; GW_PID=""
  PYTHONPATH="$ROOT/src" taskset -c 1 "$BUTTRESS_PY" "$ROOT/bench/asgi_floor.py" --port 8190 \
    > "$BENCH_DIR/asgi-floor.log" 2>&1 &
  GW_PID=$!
  for _ in $(seq 1 100); do curl -s -o /dev/null http://127.0.0.1:8190/ && break; sleep 0.1; done
  F=(--url http://127.0.0.1:8190/v1/chat/completions --name asgi-floor --model mock-gpt
     --pid "$GW_PID")
  bench "${F[@]}" fixed  --rates "${FIXED_RATES:-50,200,500}" --reps "${REPS:-1}" \
    --duration "${DURATION:-10}"
  bench "${F[@]}" stream --rates "${STREAM_RATES:-20,50}" --reps "${REPS:-1}" \
    --duration "${DURATION:-10}"
fi
bench report > "$OUT.md"
echo "results: $OUT and $OUT.md"
