# Sourced by the gateway benchmarks: a project serving bench/gateway.toml, and its virtual key.
#   bench_project DIR SRC NAME   writes DIR/buttress.toml and prints a new key's secret (RPM/TPM
#                                limits and a budget far above any load: every check runs on
#                                every request without refusing one); SRC is buttress's src/
#   bench_cli DIR SRC ARGS...    runs `buttress -C DIR ARGS...` from SRC with $BUTTRESS_PY
#   bench_env ROOT               sets H (the harness), BENCH_DIR, P (the harness's python; it
#                                must exist) and BUTTRESS_PY (default: ROOT's .venv-test)
#   bench_serve DIR SRC PORT LOG starts `buttress serve` in the background pinned to CPU 1, as
#                                the harness places gateways; its pid is then in $!
#   bench_start TARGET DIR SRC PORT SECRET
#                                starts buttress (bench_serve) or, for TARGET=floor, the harness's
#                                floor proxy with SECRET as its key, pinned to CPU 1 with its log
#                                in DIR/serve.log, and waits until it answers; its pid is then in $!
#   ticks PID                    the process's CPU so far (user + system, in clock ticks)
export BENCH_UPSTREAM_KEY=sk-mock-upstream
bench_cli() {
  local dir=$1 src=$2; shift 2
  PYTHONPATH="$src" "$BUTTRESS_PY" -c 'from buttress.cli.main import main; main()' -C "$dir" "$@"
}
bench_project() {
  cp "$(dirname "${BASH_SOURCE[0]}")/gateway.toml" "$1/buttress.toml"
  bench_cli "$1" "$2" keys create --name "$3" --rpm 10000000 --tpm 1000000000 \
    --budget-daily 1000000 | tail -1
}
bench_env() {
  H=$(cd "$1/../shared/bench/gateway" && pwd)
  export BENCH_DIR=${BENCH_DIR:-/tmp/bench}
  P=$BENCH_DIR/harness-venv/bin/python
  [ -x "$P" ] || { echo "no harness venv at $P: run $H/setup.sh first" >&2; exit 2; }
  BUTTRESS_PY=${BUTTRESS_PY:-$1/.venv-test/bin/python}
}
bench_serve() {
  PYTHONPATH="$2" taskset -c 1 "$BUTTRESS_PY" -c 'from buttress.cli.main import main; main()' \
    -C "$1" serve --port "$3" > "$4" 2>&1 &
}
bench_start() {
  local target=$1 dir=$2 src=$3 port=$4 secret=$5
  if [ "$target" = floor ]; then
    taskset -c 1 "$P" "$H/ref_proxy_floor.py" --host 127.0.0.1 --port "$port" \
      --upstream http://127.0.0.1:9000 --key "$secret" > "$dir/serve.log" 2>&1 &
  else
    bench_serve "$dir" "$src" "$port" "$dir/serve.log"
  fi
  for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
}
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
