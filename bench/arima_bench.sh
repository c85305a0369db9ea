#!/usr/bin/env bash
# arima_bench.sh - how long automatic ARIMA takes: `enmsctl fit --model
# forecast_arima` (auto.arima: unit-root tests, stepwise search, final fit)
# on AirPassengers, WWWusage and hourly series of 744, 2,000 and 8,760 points,
# with the daily period (m = 24, seasonal ARIMA) and the weekly one (m = 168,
# Fourier terms with ARIMA errors). A benchmark, not a test: it asserts
# nothing, it prints a Markdown table of user CPU seconds (median of REPEATS
# runs; CPU time, not wall time, because this machine is shared).
#
#   bash bench/arima_bench.sh [options]
#     --bin PATH      enmsctl to time (default build/bin/enmsctl; make build)
#     --old PATH      a second enmsctl (e.g. an older commit's) timed alternately
#                     with the first, for a before/after ratio on the same load
#     --old-timeout S a run of the second binary stopped after S wall seconds
#                     counts as "> S" (default 120; the old code took minutes)
#     --r             also time R's forecast::auto.arima on the same series
#                     (optional; needs Rscript with r-cran-forecast; m = 24 and
#                     the non-hourly series only, R has no Fourier search)
#     --repeats N     runs per series and binary (default 3)
#     --quick         skip the 8,760-point series
#     --issue-cases   only the series issue 9 compares with R (AirPassengers,
#                     WWWusage, 744 and 8,760 hourly points with m = 24); adds
#                     a ratio column and build/bench/arima.jsonl (bench/run.sh)
#     --write-docs    replace the table between the arima-bench markers in
#                     docs/models-arima.md
#
# The series come from bench/arima_series.py (R's data sets from
# ../shared/reference/data, gretl-data's hourly load, seeded synthetic hourly
# loads). The table also goes to build/bench/arima.md.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$ROOT/build/bin/enmsctl
OLD=""
OLD_TIMEOUT=120
WITH_R=0
REPEATS=3
QUICK=0
WRITE_DOCS=0
ISSUE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) BIN=$2; shift 2 ;;
    --old) OLD=$2; shift 2 ;;
    --old-timeout) OLD_TIMEOUT=$2; shift 2 ;;
    --r) WITH_R=1; shift ;;
    --repeats) REPEATS=$2; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --write-docs) WRITE_DOCS=1; shift ;;
    --issue-cases) ISSUE=1; shift ;;
    -h|--help) sed -n '2,31p' "$0"; exit 0 ;;
    *) echo "arima_bench.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -x "$BIN" ] || { echo "arima_bench.sh: $BIN not found (run make build or pass --bin)" >&2; exit 1; }
[ -z "$OLD" ] || [ -x "$OLD" ] || { echo "arima_bench.sh: $OLD not found" >&2; exit 1; }
case "$REPEATS" in ''|*[!0-9]*|0) echo "arima_bench.sh: --repeats needs a positive integer" >&2; exit 2 ;; esac
if [ "$WITH_R" = 1 ] && ! Rscript -e 'suppressMessages(library(forecast))' >/dev/null 2>&1; then
  echo "arima_bench.sh: Rscript with the forecast package not found; R column left empty" >&2
  WITH_R=0
fi
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

TMP=$(mktemp -d /tmp/enms-arima-bench.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
"$PY" "$ROOT/bench/arima_series.py" "$TMP/data"

# name | file | period | R's time quoted in the issue or reference table
CASES="AirPassengers|airpassengers|12|2.0
WWWusage|wwwusage|1|0.12
744 h load (gretl)|load744|24|
744 h load (gretl)|load744|168|
2,000 h AR(1) + sines|ar2000|24|
2,000 h AR(1) + sines|ar2000|168|
2,000 h plant load|load2000|24|
2,000 h plant load|load2000|168|"
if [ "$QUICK" = 0 ]; then
  CASES="$CASES
8,760 h plant load|load8760|24|72 (an 8,760-point hourly series)
8,760 h plant load|load8760|168|"
fi

if [ "$ISSUE" = 1 ]; then
  CASES=$(printf '%s\n' "$CASES" | awk -F'|' '$3 <= 24 && $2 !~ /^(ar|load)2000$/')
fi
mkdir -p "$ROOT/build/bench"
JSONL=$ROOT/build/bench/arima.jsonl
: >"$JSONL"

# cpu_time BIN FILE M [TIMEOUT] -> prints "seconds|label|aicc" of one run,
# or "-1|?|nan" when it ran out of time
cpu_time() {
  local out="$TMP/out.json" t
  # INNER runs in one timing (user CPU of all, divided): short fits are below
  # the 10 ms resolution of /usr/bin/time otherwise.
  local inner=${INNER:-1}
  if ! t=$( { /usr/bin/time -f %U timeout "${4:-0}" bash -c 'for _ in $(seq 1 "$1"); do
          "$2" fit --model forecast_arima --csv "$3" --period "$4" --horizon 1 >"$5" || exit 1; done' \
          _ "$inner" "$1" "$2" "$3" "$out"; } 2>&1 | tail -1) || [ ! -s "$out" ]; then
    echo "-1|?|nan"
    return
  fi
  # The fit alone, as R's time is auto.arima() alone: enmsctl's own CPU
  # clock around the fit, INNER fits in one process (--repeat), averaged.
  "$1" fit --model forecast_arima --csv "$2" --period "$3" --horizon 1 --repeat "$inner" \
    >"$TMP/fit.json" 2>/dev/null || : >"$TMP/fit.json"
  "$PY" - "$out" "$t" "$inner" "$TMP/fit.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))["model"]
try:
    alone = "%.5f" % json.load(open(sys.argv[4]))["fit_cpu_seconds"]
except (ValueError, KeyError):  # an older enmsctl without --repeat
    alone = "-1"
print("%.4f|%s|%.4f|%s" % (float(sys.argv[2]) / int(sys.argv[3]), d.get("label", "?"),
                           d.get("aicc") or float("nan"), alone))
EOF
}
median() { sort -n | awk '{a[NR]=$1} END {printf (a[int((NR+1)/2)] < 0.1 ? "%.4f" : "%.2f"), a[int((NR+1)/2)]}'; }

r_time() { # FILE M INNER -> "seconds|label|aicc" from R (user CPU of auto.arima alone,
  # INNER calls in one timing, divided: proc.time() counts in 10 ms steps)
  Rscript - "$1" "$2" "${3:-1}" <<'EOF' 2>/dev/null | tail -1
suppressMessages(library(forecast))
a <- commandArgs(trailingOnly = TRUE)
y <- ts(read.csv(a[1])$y, frequency = as.integer(a[2]))
k <- as.integer(a[3])
t0 <- proc.time()
for (i in seq_len(k)) f <- auto.arima(y)
t1 <- proc.time()
o <- arimaorder(f)
lab <- sprintf("ARIMA(%s)", paste(o[1:3], collapse = ","))
if (length(o) > 3) lab <- sprintf("%s(%s)[%d]", lab, paste(o[4:6], collapse = ","), o[7])
cat(sprintf("%.4f|%s|%.4f\n", (t1 - t0)[["user.self"]] / k, lab, f$aicc))
EOF
}

HDR="| series | n | m | chosen (ours) | AICc | ours, whole process, CPU s | ours, fit alone, CPU s |"
SEP="|---|---|---|---|---|---|---|"
[ -n "$OLD" ] && { HDR="$HDR before, CPU s | speed-up |"; SEP="$SEP---|---|"; }
HDR="$HDR R auto.arima, s (issue) |"; SEP="$SEP---|"
[ "$WITH_R" = 1 ] && { HDR="$HDR R here, CPU s | R's choice |"; SEP="$SEP---|---|"; }
[ "$WITH_R" = 1 ] && [ "$ISSUE" = 1 ] && { HDR="$HDR R / ours, fit alone | R / ours, whole process | AICc ours − R |"; SEP="$SEP---|---|---|"; }
TABLE="$HDR
$SEP"
while IFS='|' read -r name file m rquote; do
  csv="$TMP/data/$file.csv"
  [ -f "$csv" ] || { echo "arima_bench.sh: $file missing, skipped" >&2; continue; }
  n=$(($(wc -l <"$csv") - 1))
  : >"$TMP/new.t"; : >"$TMP/old.t"; : >"$TMP/alone.t"
  INNER=1
  [ "$ISSUE" = 1 ] && [ "$n" -le 1000 ] && INNER=10
  # R's proc.time() counts in 10 ms steps: the short series (0.1-2 s in R)
  # are timed over several calls; a longer one is long enough alone.
  R_INNER=1
  [ "$n" -le 200 ] && R_INNER=5
  for _ in $(seq 1 "$REPEATS"); do
    res=$(INNER=$INNER cpu_time "$BIN" "$csv" "$m")
    echo "${res%%|*}" >>"$TMP/new.t"
    echo "${res##*|}" >>"$TMP/alone.t"
    if [ -n "$OLD" ]; then
      ores=$(cpu_time "$OLD" "$csv" "$m" "$OLD_TIMEOUT")
      echo "${ores%%|*}" >>"$TMP/old.t"
    fi
  done
  rest=${res#*|}; label=${rest%%|*}; rest=${rest#*|}; aicc=${rest%%|*}
  tn=$(median <"$TMP/new.t")
  ta=$(median <"$TMP/alone.t")
  row="| $name | $n | $m | $label | $aicc | $tn | $ta |"
  if [ -n "$OLD" ]; then
    if grep -q -- '^-1' "$TMP/old.t"; then
      row="$row > $OLD_TIMEOUT (stopped) | > $(awk -v a="$OLD_TIMEOUT" -v b="$tn" 'BEGIN {printf "%.0f", a / (b > 0.01 ? b : 0.01)}')× |"
    else
      to=$(median <"$TMP/old.t")
      row="$row $to | $(awk -v a="$to" -v b="$tn" 'BEGIN {if (b > 0) printf (a / b < 10 ? "%.1f×" : "%.0f×"), a / b; else print "–"}') |"
    fi
  fi
  row="$row ${rquote:-–} |"
  if [ "$WITH_R" = 1 ]; then
    if [ "$m" -le 24 ]; then
      : >"$TMP/r.t"
      for _ in $(seq 1 "$REPEATS"); do
        rres=$(r_time "$csv" "$m" "$R_INNER" || true)
        echo "${rres%%|*}" >>"$TMP/r.t"
      done
      tr=$(median <"$TMP/r.t")
      raicc=$(echo "$rres" | cut -d'|' -f3)
      row="$row $tr | $(echo "$rres" | cut -d'|' -f2) (AICc $raicc) |"
      if [ "$ISSUE" = 1 ]; then
        row="$row $(awk -v a="$tr" -v b="$ta" 'BEGIN {if (b > 0) printf "%.0f×", a / b; else print "–"}') | $(awk -v a="$tr" -v b="$tn" 'BEGIN {if (b > 0) printf "%.0f×", a / b; else print "–"}') | $(awk -v a="$aicc" -v b="$raicc" 'BEGIN {printf "%+.2f", a - b}') |"
      fi
      printf '{"series": "%s", "n": %s, "m": %s, "ours_s": %s, "ours_fit_s": %s, "aicc": %s, "r_s": %s, "r_aicc": %s, "label": "%s"}\n' \
        "$name" "$n" "$m" "$tn" "$ta" "$aicc" "${tr:-null}" "${raicc:-null}" "$label" >>"$JSONL"
    else
      row="$row – | – |"
    fi
  fi
  echo "$row" >&2
  TABLE="$TABLE
$row"
done <<<"$CASES"

FLAGS=""
[ -z "$OLD" ] || FLAGS="$FLAGS --old OLD_ENMSCTL --old-timeout $OLD_TIMEOUT"
[ "$WITH_R" = 0 ] || FLAGS="$FLAGS --r"
[ "$QUICK" = 0 ] || FLAGS="$FLAGS --quick"
[ "$ISSUE" = 0 ] || FLAGS="$FLAGS --issue-cases"
NOTE="Measured $(date -u +%Y-%m-%d) on $(nproc) cores, load average $(cut -d' ' -f1 /proc/loadavg); median of $REPEATS runs of user CPU time. Rerun: \`bash bench/arima_bench.sh$FLAGS --repeats $REPEATS --write-docs\`."
mkdir -p "$ROOT/build/bench"
printf '%s\n\n%s\n' "$TABLE" "$NOTE" | tee "$ROOT/build/bench/arima.md"

if [ "$WRITE_DOCS" = 1 ]; then
  DOC=$ROOT/docs/models-arima.md
  grep -q '<!-- arima-bench:begin -->' "$DOC" || { echo "arima_bench.sh: no arima-bench markers in $DOC" >&2; exit 1; }
  "$PY" - "$DOC" "$ROOT/build/bench/arima.md" <<'EOF'
import sys
doc, table = sys.argv[1], open(sys.argv[2]).read().rstrip("\n")
text = open(doc).read()
head, rest = text.split("<!-- arima-bench:begin -->", 1)
_, tail = rest.split("<!-- arima-bench:end -->", 1)
open(doc, "w").write(head + "<!-- arima-bench:begin -->\n" + table + "\n<!-- arima-bench:end -->" + tail)
EOF
  echo "arima_bench.sh: table written to $DOC" >&2
fi
