#!/usr/bin/env bash
# run.sh - runs one fuzz target on its committed seeds; `make fuzz` and the
# suite's fuzz smoke (tests/run.sh) both come through here, so they read the
# same seeds.
#
#   fuzz/run.sh BINARY WORKDIR [libFuzzer flags...]
#
# New inputs go to WORKDIR (created; the first corpus folder is the one
# libFuzzer writes to). The seeds are fuzz/corpus/<target>/ and, for the
# file parsers, the sample files in tests/data. Crash inputs are written to
# WORKDIR as crash-<sha1> (replay: BINARY that-file).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ $# -lt 2 ]]; then
  echo "usage: fuzz/run.sh BINARY WORKDIR [libFuzzer flags...]" >&2
  exit 2
fi
bin=$1
work=$2
shift 2
name=$(basename "$bin")
seeds=("$ROOT/fuzz/corpus/$name")
case $name in
fuzz_csv_reading | fuzz_gretl | fuzz_model_artifact | fuzz_arima_artifact)
  seeds+=("$ROOT/tests/data")
  ;;
esac
for d in "${seeds[@]}"; do
  [[ -d "$d" ]] || { echo "fuzz/run.sh: no seed folder $d" >&2; exit 2; }
done
mkdir -p "$work"
exec "$bin" -artifact_prefix="$work/" "$@" "$work" "${seeds[@]}"
