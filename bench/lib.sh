# lib.sh - shared pieces of the benchmark scripts (sourced, not run): a
# durable private PostgreSQL and a Redis for one benchmark run, the machine
# description every result table carries, medians, and the writer that puts
# a generated table between marker comments in a Markdown file.
#
# The PostgreSQL started here is DURABLE on purpose (fsync=on,
# synchronous_commit=on, full_page_writes=on), unlike the test servers of
# scripts/servers.sh: the dispatch goal counts durable commits. It also
# loads pg_stat_statements so a run can say which statements a job costs.

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$BENCH_ROOT/scripts/servers.sh"
BENCH_PY=/usr/bin/python3
[ -x "$BENCH_PY" ] || BENCH_PY=python3

# bench_pg_start DIR PORT: initdb when needed and start a durable server.
bench_pg_start() {
  local dir=$1 port=$2
  mkdir -p "$dir"
  [[ $(id -u) -eq 0 ]] && chown postgres:postgres "$dir"
  if [[ ! -f "$dir/data/PG_VERSION" ]]; then
    as_pg "$PG_BIN/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
      >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; return 1; }
  fi
  as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/pg.log" -w -t 60 start \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on \
        -c full_page_writes=on -c max_connections=300 -c shared_buffers=512MB \
        -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all \
        -c track_io_timing=on -c max_wal_size=4GB" \
    >/dev/null || { tail -n 20 "$dir/pg.log" >&2; return 1; }
}

# bench_servers_start DIR: durable PostgreSQL (database "bench", migrated)
# and Redis (no persistence: the same Redis every compared system uses) in
# DIR; exports BENCH_PG_PORT, BENCH_REDIS_PORT, ENMS_PG_DSN, ENMS_REDIS_URL,
# BENCH_DIR. Stop them with bench_servers_stop.
bench_servers_start() {
  BENCH_DIR=$1
  mkdir -p "$BENCH_DIR"
  chmod 755 "$BENCH_DIR"
  BENCH_PG_PORT=$(free_port)
  bench_pg_start "$BENCH_DIR/pg" "$BENCH_PG_PORT" || return 1
  BENCH_REDIS_PORT=$(free_port)
  redis_start "$BENCH_DIR/redis" "$BENCH_REDIS_PORT" no || return 1
  export BENCH_DIR BENCH_PG_PORT BENCH_REDIS_PORT
  export ENMS_PG_DSN="postgresql://postgres@127.0.0.1:$BENCH_PG_PORT/bench"
  export ENMS_REDIS_URL="redis://127.0.0.1:$BENCH_REDIS_PORT/0"
  pg_createdb "$BENCH_PG_PORT" bench
  bench_psql -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
  ENMS_SCHEMA_DIR="$BENCH_ROOT/schema" "$BENCH_BIN/enmsctl" migrate >/dev/null
}

bench_servers_stop() {
  [ -n "${BENCH_DIR:-}" ] || return 0
  redis_stop "$BENCH_DIR/redis" "${BENCH_REDIS_PORT:-0}"
  pg_stop "$BENCH_DIR/pg"
}

# bench_psql ARGS...: psql on the bench database, quiet, unaligned.
bench_psql() {
  psql -X -q -At -h 127.0.0.1 -p "$BENCH_PG_PORT" -U postgres -d bench "$@"
}

# bench_machine: one Markdown line naming the machine, versions and load.
bench_machine() {
  local cpu mem
  cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)
  mem=$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
  printf '%s, %s cores (%s), %s RAM, Debian %s, kernel %s; PostgreSQL %s, Redis %s; load average at start %s' \
    "$(date -u '+%Y-%m-%d %H:%M UTC')" "$(nproc)" "$cpu" "$mem" "$(cat /etc/debian_version)" \
    "$(uname -r)" "$("$PG_BIN/postgres" --version | awk '{print $3}')" \
    "$(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')" \
    "$(cut -d' ' -f1-3 /proc/loadavg)"
}

# bench_median: median of the numbers on stdin, one a line.
bench_median() { sort -g | awk '{a[NR]=$1} END {if (NR) printf "%.6g", a[int((NR+1)/2)]}'; }

# bench_write_section DOC NAME FILE: replaces what is between
# <!-- bench:NAME:begin --> and <!-- bench:NAME:end --> in DOC with FILE.
bench_write_section() {
  "$BENCH_PY" - "$1" "$2" "$3" <<'EOF'
import sys
doc, name, path = sys.argv[1:4]
body = open(path).read().rstrip("\n")
text = open(doc).read()
b, e = "<!-- bench:%s:begin -->" % name, "<!-- bench:%s:end -->" % name
if b not in text or e not in text:
    sys.exit("bench: markers %s missing in %s" % (name, doc))
head, rest = text.split(b, 1)
_, tail = rest.split(e, 1)
open(doc, "w").write(head + b + "\n" + body + "\n" + e + tail)
EOF
}
