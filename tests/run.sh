#!/usr/bin/env bash
# run.sh - the test harness behind `make test`.
#
# Builds the normal and the sanitizer binaries, starts a throwaway PostgreSQL
# and Redis on free ports in a temporary folder (removed, with every process
# in it, on any exit), runs the C unit tests in both builds and the black-box
# pytest suite against the sanitizer binaries, then prints one summary line.
#
#   tests/run.sh                 everything
#   tests/run.sh -k import       pass pytest arguments (unit tests still run)
#   ENMS_TEST_KEEP=1 ...         keep the folder and servers for debugging
#   ENMS_BUILD_DIR=build/x ...   build into another folder (parallel checkouts)
#   ENMS_TEST_FAST=1 ...         skip lint, fuzz smoke and the normal-build
#                                unit run (for iterating; never in CI)
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=../scripts/servers.sh
source "$ROOT/scripts/servers.sh"

JOBS=$(nproc 2>/dev/null || echo 2)
B=${ENMS_BUILD_DIR:-build}
make -s -j"$JOBS" BUILD="$B" build unit || exit 1
make -s -j"$JOBS" ASAN_BUILD="$B/asan" asan || exit 1
FAST=${ENMS_TEST_FAST:-}
if [[ -n "$FAST" && -n "${CI:-}" ]]; then
  echo "harness: ENMS_TEST_FAST is not allowed in CI" >&2
  exit 1
fi

TMP=$(mktemp -d /tmp/enms-test.XXXXXX)
chmod 755 "$TMP"
PG_PORT=$(free_port)
REDIS_PORT=$(free_port)

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [[ -n "${ENMS_TEST_KEEP:-}" ]]; then
    echo "harness: kept $TMP (postgres :$PG_PORT, redis :$REDIS_PORT)"
    exit "$status"
  fi
  # Anything a test started under TMP goes first, then the servers.
  pkill -TERM -f "$TMP/" 2>/dev/null
  redis_stop "$TMP/redis" "$REDIS_PORT"
  pg_stop "$TMP/pg"
  sleep 0.5
  # Nothing may outlive the suite: a leftover is reported as a failure.
  local left
  left=$(pgrep -af "$TMP/" || true)
  if [[ -n "$left" ]] || port_in_use "$PG_PORT" || port_in_use "$REDIS_PORT"; then
    echo "harness: processes left running after the tests:"
    echo "${left:-(a server still listens on :$PG_PORT or :$REDIS_PORT)}"
    pkill -KILL -f "$TMP/" 2>/dev/null
    status=1
  fi
  rm -rf "$TMP"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pg_start "$TMP/pg" "$PG_PORT" || exit 1
redis_start "$TMP/redis" "$REDIS_PORT" no || exit 1
pg_createdb "$PG_PORT" enms_test || exit 1

export ENMS_TEST_PG_ADMIN_DSN="postgresql://postgres@127.0.0.1:$PG_PORT/postgres"
export ENMS_PG_DSN="postgresql://postgres@127.0.0.1:$PG_PORT/enms_test"
export ENMS_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
export ENMS_BIN="$ROOT/$B/asan/bin"
export ENMS_TEST_TMP="$TMP"
export ENMS_LOG_LEVEL=warn
export ASAN_OPTIONS="abort_on_error=0:detect_leaks=1:exitcode=86"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
# Leaks inside third-party libraries we cannot fix (listed with reasons).
export LSAN_OPTIONS="suppressions=$ROOT/tests/lsan.supp:print_suppressions=0"

# The suite's default database is migrated once; tests that need a database
# of their own make one (fresh_db / migrated_db fixtures).
"$ENMS_BIN/enmsctl" migrate >/dev/null || { echo "harness: migrate failed"; exit 1; }

passed=0
failed=0

# run_unit NAME BINARY: Criterion prints
# "[====] Synthesis: Tested: N | Passing: P | Failing: F | Crashing: C".
run_unit() {
  local name=$1 binary=$2 out
  echo "== unit tests ($name)"
  out=$("$binary" -j"$JOBS" 2>&1)
  local status=$?
  echo "$out" | grep -vE '^\[----\] +$' | tail -n 40
  local line p f c
  line=$(echo "$out" | grep 'Synthesis:' | tail -n 1)
  p=$(echo "$line" | sed -n 's/.*Passing: \([0-9]*\).*/\1/p')
  f=$(echo "$line" | sed -n 's/.*Failing: \([0-9]*\).*/\1/p')
  c=$(echo "$line" | sed -n 's/.*Crashing: \([0-9]*\).*/\1/p')
  passed=$((passed + ${p:-0}))
  failed=$((failed + ${f:-0} + ${c:-0}))
  if [[ -z "$line" || $status -ne 0 ]] && [[ ${f:-0} -eq 0 && ${c:-0} -eq 0 ]]; then
    echo "harness: $name unit tests exited with status $status"
    failed=$((failed + 1))
  fi
}

[[ -n "$FAST" ]] || run_unit normal "$ROOT/$B/bin/unit-tests"
run_unit asan "$ROOT/$B/asan/bin/unit-tests"

# check NAME CMD...: a command that must succeed, counted as one test.
check() {
  local name=$1
  shift
  if "$@" >"$TMP/check.log" 2>&1; then
    echo "[PASS] $name"
    passed=$((passed + 1))
  else
    echo "[FAIL] $name"
    tail -n 30 "$TMP/check.log"
    failed=$((failed + 1))
  fi
}

if [[ -z "$FAST" ]]; then
echo "== static checks and fuzz smoke"
check "make lint (clang-format, cppcheck)" make -s lint
check "fuzz targets build" make -s -j"$JOBS" fuzz-build
# Each target for ENMS_FUZZ_SMOKE_S seconds (30 in CI, 10 otherwise), four at
# a time so the block takes about a quarter of the sum (on 2 cores each then
# runs at half speed: fewer inputs, the same seeds; the suite stays within its
# 15 minutes). fuzz/run.sh adds the
# committed seeds; new inputs and any crash-* file go to a scratch folder.
smoke_s=${ENMS_FUZZ_SMOKE_S:-$([[ -n "${CI:-}" ]] && echo 30 || echo 10)}
fuzz_names=()
fuzz_pids=()
fuzz_collect() {
  local i
  for i in "${!fuzz_pids[@]}"; do
    if wait "${fuzz_pids[$i]}"; then
      echo "[PASS] fuzz smoke ${fuzz_names[$i]} ($smoke_s s)"
      passed=$((passed + 1))
    else
      echo "[FAIL] fuzz smoke ${fuzz_names[$i]} ($smoke_s s)"
      grep -E 'ERROR|SUMMARY|runtime error|Test unit written' "$TMP/fuzz-${fuzz_names[$i]}.log" |
        head -n 20
      failed=$((failed + 1))
    fi
  done
  fuzz_names=()
  fuzz_pids=()
}
for f in "$ROOT"/build/fuzz/fuzz_*; do
  [[ -x "$f" && -f "$f" ]] || continue
  n=$(basename "$f")
  bash "$ROOT/fuzz/run.sh" "$f" "$TMP/corpus-$n" -max_total_time="$smoke_s" \
    -print_final_stats=1 >"$TMP/fuzz-$n.log" 2>&1 &
  fuzz_pids+=($!)
  fuzz_names+=("$n")
  [[ ${#fuzz_pids[@]} -lt 4 ]] || fuzz_collect
done
fuzz_collect
fi

echo "== black-box tests (pytest, sanitizer binaries)"
/usr/bin/python3 -m pytest -q -p no:cacheprovider -o junit_family=xunit2 --durations=25 \
  --junitxml="$TMP/pytest.xml" "$ROOT/tests/integration" "$@"
pytest_status=$?
if [[ -f "$TMP/pytest.xml" ]]; then
  read -r t f e s < <(/usr/bin/python3 - "$TMP/pytest.xml" <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suite = root if root.tag == "testsuite" else root.find("testsuite")
print(suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("skipped"))
PY
)
  # A skipped test is not a passed one: it is counted as a failure.
  passed=$((passed + t - f - e - s))
  failed=$((failed + f + e + s))
elif [[ $pytest_status -ne 0 ]]; then
  failed=$((failed + 1))
fi

echo "enms-retrain: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
