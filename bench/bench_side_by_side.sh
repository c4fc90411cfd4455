#!/usr/bin/env bash
# One session, one results file: direct-to-mock, the Portkey gateway, the LiteLLM proxy, the
# harness's floor proxy (../shared/bench/gateway/run_all.sh), then buttress's gateway
# (bench/bench_gateway.sh) with the same knobs, and uvicorn alone (bench/asgi_floor.py: the HTTP
# server's own cost); then the harness's report, whose "added" columns are against the same
# direct baseline.
#   bench/bench_side_by_side.sh            # REPS=1 DURATION=10 STEP_S=8: about 20 minutes
#   REPS=3 DURATION=20 STEP_S=10 bench/bench_side_by_side.sh    # the README's matrix
# Needs ../shared/bench/gateway/setup.sh run once, and a Python with buttress's gateway extra:
# .venv-test (from `python3 dev.py test`) is found by itself, else set BUTTRESS_PY.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
H=$(cd "$ROOT/../shared/bench/gateway" && pwd)
export BENCH_DIR=${BENCH_DIR:-/tmp/bench} REPS=${REPS:-1} DURATION=${DURATION:-10} STEP_S=${STEP_S:-8}
export RESULTS=${RESULTS:-$BENCH_DIR/results/side-$(date +%Y%m%d-%H%M%S).jsonl}
GATEWAYS=${GATEWAYS:-portkey litellm floor} "$H/run_all.sh"
FULL=1 SKIP_DIRECT=1 FLOOR_ASGI=${FLOOR_ASGI:-1} OUT=$RESULTS "$ROOT/bench/bench_gateway.sh"
"$BENCH_DIR/harness-venv/bin/python" "$H/bench_gateway.py" report --out "$RESULTS" > "$RESULTS.md"
echo "tables: $RESULTS.md"
