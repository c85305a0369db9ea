#!/usr/bin/env bash
# run_chaos.sh - runs tests/chaos/chaos.py against its own throwaway
# PostgreSQL and Redis (started like tests/run.sh does, through
# scripts/servers.sh, and removed with every process in the folder on exit).
#
#   tests/chaos/run_chaos.sh BUILD_DIR [chaos.py arguments...]
#
# `make chaos` (1,000 jobs, a kill every 2-3 s) and `make chaos-short` call it
# with the normal (not sanitizer) build.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
# shellcheck source=../../scripts/servers.sh
source "$ROOT/scripts/servers.sh"

B=${1:?usage: run_chaos.sh BUILD_DIR [chaos.py arguments]}
shift
TMP=$(mktemp -d /tmp/enms-chaos.XXXXXX)
chmod 755 "$TMP"
PG_PORT=$(free_port)
REDIS_PORT=$(free_port)

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  redis_stop "$TMP/redis" "$REDIS_PORT"
  pg_stop "$TMP/pg"
  if [[ -n "${ENMS_CHAOS_KEEP:-}" ]]; then
    echo "chaos: kept $TMP (logs in $TMP/logs)"
  else
    rm -rf "$TMP"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pg_start "$TMP/pg" "$PG_PORT" || exit 1
redis_start "$TMP/redis" "$REDIS_PORT" no || exit 1
pg_createdb "$PG_PORT" enms_chaos || exit 1
export ENMS_PG_DSN="postgresql://postgres@127.0.0.1:$PG_PORT/enms_chaos"
export ENMS_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
"$ROOT/$B/bin/enmsctl" migrate >/dev/null || { echo "chaos: migrate failed"; exit 1; }
mkdir -p "$TMP/logs"
/usr/bin/python3 "$ROOT/tests/chaos/chaos.py" --bin "$ROOT/$B/bin" --workdir "$TMP/logs" "$@"
