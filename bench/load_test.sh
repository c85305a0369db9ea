#!/usr/bin/env bash
# load_test.sh - `make load`: the load test of issue 8 against a throwaway
# PostgreSQL and Redis (scripts/servers.sh, removed on exit): demo data
# seeded with `enmsctl seed`, one enms-api and two enms-workers of the
# chosen build, then bench/load.py's mixed wrk traffic while the workers
# train the jobs it triggers. Prints the figures (docs/reliability.md, Load)
# and writes them to <report>.md and <report>.json.
#
#   bash bench/load_test.sh [--bin DIR] [--seconds N] [--report PATH] [load.py options]
#     --bin DIR       enms-api, enms-worker, enmsctl (default build/bin, the normal build)
#     --seconds N     length of the traffic (default 60)
#     --report PATH   report files without extension (default build/load-report)
#
# Exit status 1 when any answer was a 5xx, wrk saw a socket error or a
# process died during the run.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../scripts/servers.sh
source "$ROOT/scripts/servers.sh"

BIN=$ROOT/build/bin
SECONDS_RUN=60
REPORT=$ROOT/build/load-report
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) BIN=$(cd "$2" && pwd); shift 2 ;;
    --seconds) SECONDS_RUN=$2; shift 2 ;;
    --report) REPORT=$2; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) EXTRA+=("$1"); shift ;;
  esac
done
for b in enms-api enms-worker enmsctl; do
  [ -x "$BIN/$b" ] || { echo "load: $BIN/$b missing (make build)" >&2; exit 2; }
done
command -v wrk >/dev/null || { echo "load: wrk missing: run make deps (scripts/deps.sh)" >&2; exit 2; }

TMP=$(mktemp -d /tmp/enms-load.XXXXXX)
chmod 755 "$TMP"
PG_PORT=$(free_port)
REDIS_PORT=$(free_port)
cleanup() {
  redis_stop "$TMP/redis" "$REDIS_PORT"
  pg_stop "$TMP/pg"
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pg_start "$TMP/pg" "$PG_PORT" || exit 1
redis_start "$TMP/redis" "$REDIS_PORT" no || exit 1
pg_createdb "$PG_PORT" enms_load || exit 1

mkdir -p "$(dirname "$REPORT")"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
"$PY" "$ROOT/bench/load.py" --bin "$BIN" --seconds "$SECONDS_RUN" \
  --pg-dsn "postgresql://postgres@127.0.0.1:$PG_PORT/enms_load" \
  --redis-url "redis://127.0.0.1:$REDIS_PORT/0" --logs "$TMP/logs" \
  --json "$REPORT.json" --md "$REPORT.md" "${EXTRA[@]}"
status=$?
if [ $status -ne 0 ] && [ -d "$TMP/logs" ]; then
  mkdir -p "$REPORT-logs" && cp "$TMP"/logs/*.log "$REPORT-logs/" 2>/dev/null
  echo "load: process logs kept in $REPORT-logs" >&2
fi
exit $status
