#!/usr/bin/env bash
# scale.sh - `make bench-scale`: MACHINES machines x one year of hourly readings
# (default 1,000: 8.76 M readings) in a private durable PostgreSQL, seeding
# time and database size, then baseline and anomaly models retrained by 2
# workers: 10 machines with only 10 in the table, then with all MACHINES in
# the table 10, 100, every machine and the first 10 again (bench/bench.py
# scale). Writes the scale table of docs/performance.md unless --no-docs.
# Long: about 2,060 jobs at 1,000 machines, ~0.5 s of wall time each with 2
# workers on a quiet 2-core VM (docs/performance.md): about 25 minutes.
#
#   bash bench/scale.sh [--machines N] [--no-docs] [--bin DIR]
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MACHINES=1000
DOCS=1
BENCH_BIN=$ROOT/build/bin
while [ $# -gt 0 ]; do
  case "$1" in
    --machines) MACHINES=$2; shift 2 ;;
    --no-docs) DOCS=0; shift ;;
    --bin) BENCH_BIN=$(cd "$2" && pwd); shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "scale.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
export BENCH_BIN
source "$ROOT/bench/lib.sh"
TMP=$(mktemp -d /tmp/enms-bench-scale.XXXXXX)
trap 'bench_servers_stop; rm -rf "$TMP"' EXIT
mkdir -p "$ROOT/build/bench"
bench_servers_start "$TMP" || exit 1
export ENMS_LOG_LEVEL=warn
echo "$(bench_machine)" >"$ROOT/build/bench/scale-machine.md"
"$BENCH_PY" "$ROOT/bench/bench.py" scale --machines "$MACHINES" || { echo "scale.sh: failed" >&2; exit 0; }
{ echo; echo "Machine: $(cat "$ROOT/build/bench/scale-machine.md"). Rerun: \`make bench-scale\` (\`bash bench/scale.sh --machines $MACHINES\`)."; } >>"$ROOT/build/bench/scale.md"
"$BENCH_PY" "$ROOT/bench/report.py" --command "make bench-scale" >/dev/null
if [ "$DOCS" = 1 ]; then
  bench_write_section "$ROOT/docs/performance.md" scale "$ROOT/build/bench/scale.md"
  echo "scale.sh: docs/performance.md scale table regenerated"
fi
exit 0
