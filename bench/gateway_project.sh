# Sourced by the gateway benchmarks: a project serving bench/gateway.toml, and its virtual key.
#   bench_project DIR SRC NAME   writes DIR/buttress.toml and prints a new key's secret (RPM/TPM
#                                limits and a budget far above any load: every check runs on
#                                every request without refusing one); SRC is buttress's src/
#   bench_cli DIR SRC ARGS...    runs `buttress -C DIR ARGS...` from SRC with $BUTTRESS_PY
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
