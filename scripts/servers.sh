# servers.sh - start and stop a private PostgreSQL and Redis in a folder.
#
# Sourced by scripts/stack.sh (the `make run` stack) and tests/run.sh (the
# throwaway servers of `make test`), so both start servers the same way.
# Nothing here touches system services or the default ports.

PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}

# as_pg CMD...: runs CMD as the postgres user when we are root (initdb and
# postgres refuse to run as root), as ourselves otherwise.
as_pg() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# port_in_use PORT: true when something accepts connections on 127.0.0.1:PORT.
port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# free_port: prints a port nothing listens on (random, 20000-59999).
free_port() {
  local port tries=0
  while (( tries++ < 200 )); do
    port=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
    port_in_use "$port" || { echo "$port"; return 0; }
  done
  echo "servers: no free port found" >&2
  return 1
}

# pg_dir_usable DIR: true when the postgres user can reach and write DIR.
pg_dir_usable() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u postgres -- test -w "$1" 2>/dev/null
  else
    test -w "$1"
  fi
}

# pg_start DIR PORT: initdb into DIR/data when empty, start on 127.0.0.1:PORT
# with the socket in DIR. Trust auth: the server only listens on loopback.
pg_start() {
  local dir=$1 port=$2
  mkdir -p "$dir"
  [[ $(id -u) -eq 0 ]] && chown postgres:postgres "$dir"
  if ! pg_dir_usable "$dir"; then
    echo "servers: the postgres user cannot write $dir (a parent folder is not traversable)" >&2
    return 1
  fi
  if [[ ! -f "$dir/data/PG_VERSION" ]]; then
    as_pg "$PG_BIN/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
      --no-sync >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; return 1; }
  fi
  as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/pg.log" -w -t 60 start \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" \
    >/dev/null || { tail -n 20 "$dir/pg.log" >&2; return 1; }
}

# pg_stop DIR: fast shutdown (rolls back open transactions), waits for it.
pg_stop() {
  local dir=$1
  [[ -f "$dir/data/postmaster.pid" ]] || return 0
  as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null 2>&1 || true
}

# pg_createdb PORT NAME: creates database NAME unless it exists.
pg_createdb() {
  local port=$1 name=$2
  local exists
  exists=$(psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = '$name'")
  [[ "$exists" == 1 ]] || psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres \
    -c "CREATE DATABASE \"$name\"" >/dev/null
}

# redis_start DIR PORT PERSIST: PERSIST=yes keeps an append-only file in DIR
# (the `make run` stack keeps its queues across restarts); no for tests.
redis_start() {
  local dir=$1 port=$2 persist=${3:-no}
  mkdir -p "$dir"
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly "$persist" \
    --daemonize yes --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
    >/dev/null || return 1
  local i
  for i in $(seq 1 100); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "servers: redis did not start on port $port" >&2
  return 1
}

# redis_stop DIR PORT: asks Redis to shut down, then makes sure the pid is gone.
redis_stop() {
  local dir=$1 port=$2
  redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
  stop_pidfile "$dir/redis.pid"
}

# stop_pidfile FILE: TERM the process in FILE, KILL it after 10 s, remove FILE.
stop_pidfile() {
  local file=$1 pid i
  [[ -f "$file" ]] || return 0
  pid=$(cat "$file" 2>/dev/null || true)
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}
