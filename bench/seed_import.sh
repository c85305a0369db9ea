#!/usr/bin/env bash
# seed_import.sh - how long the data loaders take: `enmsctl seed` (8 machines x
# 8,760 hourly rows) and `enmsctl import` of the same volume from CSV, each
# repeated, against a throwaway PostgreSQL. Writes docs/benchmarks.md's
# "Data loading" section figures to stdout and to build/bench/seed_import.txt.
#
#   make bench                 (or: bash bench/seed_import.sh [REPEATS])
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/servers.sh"
REPEATS=${1:-5}
BIN=${BENCH_BIN:-$ROOT/build/bin}  # make bench passes $(BUILD)/bin
TMP=$(mktemp -d /tmp/enms-bench.XXXXXX)
chmod 755 "$TMP"
PG_PORT=$(free_port)
trap 'pg_stop "$TMP/pg"; rm -rf "$TMP"' EXIT
pg_start "$TMP/pg" "$PG_PORT"
export ENMS_PG_DSN="postgresql://postgres@127.0.0.1:$PG_PORT/bench" ENMS_LOG_LEVEL=warn
pg_createdb "$PG_PORT" bench
"$BIN/enmsctl" migrate >/dev/null

now() { date +%s.%N; }
stats() { sort -n | awk '{a[NR]=$1} END {printf "median %.3f s, min %.3f s, max %.3f s (n=%d)", a[int((NR+1)/2)], a[1], a[NR], NR}'; }

: >"$TMP/seed.t"
for i in $(seq 1 "$REPEATS"); do
  t0=$(now)
  "$BIN/enmsctl" seed --force --end 2026-01-01 >/dev/null
  t1=$(now)
  awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.4f\n", b - a}' >>"$TMP/seed.t"
done

# The seeded readings, exported as CSV, re-imported into a second database.
psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres bench -c \
  "\\copy (SELECT machine_id, to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), energy_kwh, production_count, outdoor_temp_c FROM energy_readings ORDER BY 1, 2) TO '$TMP/readings.csv' WITH (FORMAT csv)"
sed -i '1i machine_id,ts,energy_kwh,production_count,outdoor_temp_c' "$TMP/readings.csv"
rows=$(($(wc -l <"$TMP/readings.csv") - 1))
: >"$TMP/import.t"
for i in $(seq 1 "$REPEATS"); do
  psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres bench -c "DELETE FROM energy_readings"
  t0=$(now)
  "$BIN/enmsctl" import "$TMP/readings.csv" >/dev/null
  t1=$(now)
  awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.4f\n", b - a}' >>"$TMP/import.t"
done

mkdir -p "$ROOT/build/bench"
{
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  echo "enmsctl seed (8 x 8,760 rows, --force): $(stats <"$TMP/seed.t")"
  echo "enmsctl import ($rows rows CSV): $(stats <"$TMP/import.t")"
} | tee "$ROOT/build/bench/seed_import.txt"
