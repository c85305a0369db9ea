#!/usr/bin/env bash
# deps.sh - installs the Debian packages the project needs, when missing.
#
# `deps.sh --bench` adds what the benchmarks need.
# Idempotent and quiet when everything is present. As root it runs apt-get;
# otherwise it prints the command to run and fails, so nothing half-works.
set -euo pipefail

PACKAGES=(
  # build
  build-essential pkg-config git
  libcivetweb-dev libhiredis-dev libpq-dev libcjson-dev libgsl-dev
  # tests and tooling
  libcriterion-dev clang-format cppcheck curl procps
  jq  # the shell examples in docs/ (run by tests/integration/test_docs_examples.py)
  clang libclang-rt-14-dev
  python3-pytest python3-psycopg2 python3-redis python3-requests
  # the dashboard: its charting library, and the browser its tests drive
  libjs-chart.js chromium chromium-driver python3-selenium
  # the private stack
  postgresql redis-server redis-tools
  # real data that `enmsctl import --gretl` loads
  gretl-data
  # operations checks: compose file validation, /metrics format, systemd units
  docker-compose prometheus systemd
  # the load test the suite runs (tests/integration/test_load.py, make load)
  wrk
)

# Benchmarks only (make bench runs `deps.sh --bench`): profilers, the durable
# PostgreSQL's pg_stat_statements, and the stacks compared side by side
# (python-rq, R auto.arima, a FastAPI + asyncpg trend endpoint; Node for
# BullMQ, whose package comes from npm in bench/node). Not needed to build,
# run or test, so CI does not install them.
BENCH_PACKAGES=(
  postgresql-contrib linux-perf valgrind python3-rq r-base-core r-cran-forecast
  python3-fastapi python3-asyncpg python3-uvicorn python3-uvloop python3-httptools nodejs
)
if [[ "${1:-}" == "--bench" ]]; then
  PACKAGES+=("${BENCH_PACKAGES[@]}")
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "deps: missing Debian packages: ${missing[*]}" >&2
  echo "deps: run as root: apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: done"
