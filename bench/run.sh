#!/usr/bin/env bash
# run.sh - `make bench` / `make bench-quick`: every side-by-side benchmark of
# docs/performance.md in one run on this machine, against a private DURABLE
# PostgreSQL (fsync=on, synchronous_commit=on) and a Redis started here
# (bench/lib.sh), then the figure tables regenerated between the
# <!-- bench:NAME:begin/end --> markers of docs/performance.md.
#
#   bash bench/run.sh [--quick] [--repeats N] [--only LIST] [--no-docs] [--bin DIR]
#     --quick      fewer jobs, shorter wrk runs, one repeat, no 8,760-point
#                  ARIMA series (a smoke run, under 2 minutes)
#     --repeats N  runs per figure, median reported (default 3; quick 1)
#     --only LIST  comma-separated sections: dispatch,api,models,arima,profile
#     --no-docs    leave docs/performance.md alone (tables still in build/bench/)
#     --bin DIR    folder of enms-api, enms-worker, enmsctl (default build/bin)
#
# A benchmark never fails the test suite and asserts nothing; a section that
# breaks is reported and the others still run. The scale run is separate:
# bench/scale.sh (make bench-scale).
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
QUICK=0
REPEATS=""
ONLY="dispatch,api,models,arima,profile"
DOCS=1
BENCH_BIN=$ROOT/build/bin
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1; shift ;;
    --repeats) REPEATS=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --no-docs) DOCS=0; shift ;;
    --bin) BENCH_BIN=$(cd "$2" && pwd); shift 2 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -n "$REPEATS" ] || { [ "$QUICK" = 1 ] && REPEATS=1 || REPEATS=3; }
export BENCH_BIN
source "$ROOT/bench/lib.sh"
for b in enms-api enms-worker enmsctl; do
  [ -x "$BENCH_BIN/$b" ] || { echo "run.sh: $BENCH_BIN/$b missing (make build)" >&2; exit 1; }
done
for tool in wrk redis-benchmark pgbench node perf; do
  command -v "$tool" >/dev/null || echo "run.sh: $tool not found (scripts/deps.sh --bench); its figures will be missing" >&2
done
if [ ! -d "$ROOT/bench/node/node_modules" ] && command -v npm >/dev/null; then
  (cd "$ROOT/bench/node" && npm ci --no-audit --no-fund --loglevel=error) ||
    echo "run.sh: npm ci failed; BullMQ figures will be missing" >&2
fi

OUT=$ROOT/build/bench
# Outputs of the sections about to run are removed first, so a broken section
# never leaves an older table to be written into the docs.
for s in ${ONLY//,/ }; do rm -f "$OUT/${s/models/models_fit}.md" "$OUT/${s/models/models_fit}.json"; done
[[ ",$ONLY," == *",arima,"* ]] && rm -f "$OUT/arima.jsonl"
mkdir -p "$OUT"
TMP=$(mktemp -d /tmp/enms-bench.XXXXXX)
trap 'bench_servers_stop; rm -rf "$TMP"' EXIT
bench_machine >"$OUT/machine.md"
cat "$OUT/machine.md"; echo
bench_servers_start "$TMP" || { echo "run.sh: servers did not start" >&2; exit 1; }
export ENMS_LOG_LEVEL=warn
# A year of the demo machines' readings: the trend machine, the model fits.
"$BENCH_BIN/enmsctl" seed --end 2026-01-01 --days 365 >/dev/null

FLAGS=(--repeats "$REPEATS")
[ "$QUICK" = 1 ] && FLAGS+=(--quick)
has() { [[ ",$ONLY," == *",$1,"* ]]; }
failed=()
section() { # NAME CMD...
  local name=$1; shift
  echo "== $name"
  "$@" || { echo "run.sh: section $name failed" >&2; failed+=("$name"); }
}
has dispatch && section dispatch "$BENCH_PY" "$ROOT/bench/bench.py" dispatch "${FLAGS[@]}"
has api && section api "$BENCH_PY" "$ROOT/bench/bench.py" api "${FLAGS[@]}"
has models && section models "$BENCH_PY" "$ROOT/bench/bench.py" models-fit "${FLAGS[@]}"
has profile && section profile "$BENCH_PY" "$ROOT/bench/bench.py" profile "${FLAGS[@]}"
if has arima; then
  AFLAGS=(--bin "$BENCH_BIN/enmsctl" --r --issue-cases --repeats "$REPEATS")
  [ "$QUICK" = 1 ] && AFLAGS+=(--quick)
  section arima bash "$ROOT/bench/arima_bench.sh" "${AFLAGS[@]}"
fi
printf '; load average at the end: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.md"

CMD="make bench"
[ "$QUICK" = 1 ] && CMD="make bench-quick"
"$BENCH_PY" "$ROOT/bench/report.py" --command "$CMD" --repeats "$REPEATS" >/dev/null || failed+=(report)
if [ "$DOCS" = 1 ]; then
  for s in machine goals dispatch api models_fit arima profile; do
    [ -f "$OUT/$s.md" ] && bench_write_section "$ROOT/docs/performance.md" "$s" "$OUT/$s.md"
  done
  echo "run.sh: docs/performance.md tables regenerated"
fi
[ ${#failed[@]} -eq 0 ] || echo "run.sh: sections with errors: ${failed[*]}" >&2
exit 0
