#!/usr/bin/env bash
# stack.sh - the private stack behind `make run`, `make up` and `make down`.
#
#   run   start PostgreSQL, Redis, migrate, seed demo data when empty, the API
#         and two workers; stay in the foreground; Ctrl-C stops everything.
#   up    the same, left running in the background.
#   down  stop what `up` (or a crashed `run`) left.
#
# Everything lives under the run folder (ENMS_RUN_DIR, default .run/ in the
# checkout): data, logs, pid files and `env`, a file an operator can source
# (`. .run/env; psql "$ENMS_PG_DSN"`). A second start reuses the data.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=servers.sh
source "$ROOT/scripts/servers.sh"

RUN=${ENMS_RUN_DIR:-$ROOT/.run}
BIN=${ENMS_BIN:-$ROOT/build/bin}
HTTP_PORT=${ENMS_HTTP_PORT:-8080}
WORKERS=${ENMS_RUN_WORKERS:-2}
mkdir -p "$RUN/pids" "$RUN/logs"
RUN=$(cd "$RUN" && pwd)

say() { echo "stack: $*"; }

# The postgres user must traverse every parent of its data folder; /root is
# mode 700, so under it the data goes to /tmp, keyed by the run folder path.
pg_data_dir() {
  if [[ -f "$RUN/env" ]] && grep -q '^STACK_PG_DIR=' "$RUN/env"; then
    sed -n 's/^STACK_PG_DIR=//p' "$RUN/env"
    return
  fi
  mkdir -p "$RUN/pg"
  [[ $(id -u) -eq 0 ]] && chown postgres:postgres "$RUN/pg"
  if pg_dir_usable "$RUN/pg"; then
    echo "$RUN/pg"
  else
    rmdir "$RUN/pg" 2>/dev/null || true
    echo "/tmp/enms-run-$(echo -n "$RUN" | md5sum | cut -c1-12)/pg"
  fi
}

load_ports() {
  PG_PORT="" REDIS_PORT=""
  if [[ -f "$RUN/env" ]]; then
    PG_PORT=$(sed -n 's/^STACK_PG_PORT=//p' "$RUN/env")
    REDIS_PORT=$(sed -n 's/^STACK_REDIS_PORT=//p' "$RUN/env")
  fi
  if [[ -z "$PG_PORT" ]] || port_in_use "$PG_PORT"; then PG_PORT=$(free_port); fi
  if [[ -z "$REDIS_PORT" ]] || port_in_use "$REDIS_PORT"; then REDIS_PORT=$(free_port); fi
}

write_env() {
  cat >"$RUN/env" <<ENV
# Written by scripts/stack.sh: source it to reach the private stack.
export ENMS_PG_DSN=postgresql://postgres@127.0.0.1:$PG_PORT/enms
export ENMS_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0
export ENMS_HTTP_PORT=$HTTP_PORT
STACK_PG_PORT=$PG_PORT
STACK_REDIS_PORT=$REDIS_PORT
STACK_PG_DIR=$PG_DIR
ENV
}

running_pids() {
  local f pid
  for f in "$RUN"/pids/*.pid; do
    [[ -f "$f" ]] || continue
    pid=$(cat "$f" 2>/dev/null || true)
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
  done
  return 0
}

stop_all() {
  trap - INT TERM
  local f
  say "stopping"
  for f in "$RUN"/pids/worker-*.pid "$RUN"/pids/api.pid; do
    [[ -f "$f" ]] && kill -TERM "$(cat "$f")" 2>/dev/null || true
  done
  for f in "$RUN"/pids/worker-*.pid "$RUN"/pids/api.pid; do
    stop_pidfile "$f"
  done
  if [[ -f "$RUN/env" ]]; then
    local pg_dir redis_port
    pg_dir=$(sed -n 's/^STACK_PG_DIR=//p' "$RUN/env")
    redis_port=$(sed -n 's/^STACK_REDIS_PORT=//p' "$RUN/env")
    [[ -n "$redis_port" ]] && redis_stop "$RUN/redis" "$redis_port"
    [[ -n "$pg_dir" ]] && pg_stop "$pg_dir"
  fi
  say "stopped"
}

# start_process NAME CMD...: starts CMD in the background with its log in
# logs/NAME.log, in a session of its own: a terminal's Ctrl-C then reaches
# only this script, which stops the processes in order (workers first, so
# they can hand back jobs, then the API, then Redis and PostgreSQL).
start_process() {
  local name=$1
  shift
  setsid "$@" >>"$RUN/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN/pids/$name.pid"
}

start_all() {
  if [[ -n "$(running_pids)" ]]; then
    say "already running (pids $(running_pids | tr '\n' ' ')); use make down first" >&2
    exit 1
  fi
  for b in enms-api enms-worker enmsctl; do
    [[ -x "$BIN/$b" ]] || { say "missing $BIN/$b: run make build" >&2; exit 1; }
  done
  if port_in_use "$HTTP_PORT"; then
    say "port $HTTP_PORT is in use: stop what holds it or set ENMS_HTTP_PORT" >&2
    exit 1
  fi
  PG_DIR=$(pg_data_dir)
  load_ports
  write_env
  # shellcheck disable=SC1091
  source "$RUN/env"
  export ENMS_PG_DSN ENMS_REDIS_URL ENMS_HTTP_PORT

  say "postgresql on 127.0.0.1:$PG_PORT (data $PG_DIR)"
  pg_start "$PG_DIR" "$PG_PORT"
  pg_createdb "$PG_PORT" enms
  say "redis on 127.0.0.1:$REDIS_PORT"
  redis_start "$RUN/redis" "$REDIS_PORT" yes
  "$BIN/enmsctl" migrate
  "$BIN/enmsctl" seed

  start_process api "$BIN/enms-api"
  local i
  for i in $(seq 1 "$WORKERS"); do
    start_process "worker-$i" env ENMS_WORKER_ID="$(hostname -s)-w$i" \
      "$BIN/enms-worker"
  done
  for i in $(seq 1 150); do
    curl -fsS "http://127.0.0.1:$HTTP_PORT/healthz" >/dev/null 2>&1 && break
    if ! kill -0 "$(cat "$RUN/pids/api.pid")" 2>/dev/null; then
      say "the API exited; its log:" >&2
      tail -n 20 "$RUN/logs/api.log" >&2
      return 1
    fi
    sleep 0.2
  done
  say "dashboard and API: http://127.0.0.1:$HTTP_PORT/  (logs in $RUN/logs)"
  say "connection settings: . $RUN/env"
}

case "${1:-}" in
run)
  trap 'stop_all; exit 0' INT TERM
  if ! start_all; then stop_all; exit 1; fi
  say "running; press Ctrl-C to stop"
  # Wait until a process dies or a signal arrives (wait returns early then).
  while [[ -n "$(running_pids)" ]]; do
    wait -n 2>/dev/null || true
    if ! kill -0 "$(cat "$RUN/pids/api.pid" 2>/dev/null)" 2>/dev/null; then
      say "the API exited; see $RUN/logs/api.log" >&2
      stop_all
      exit 1
    fi
  done
  ;;
up)
  if ! start_all; then stop_all; exit 1; fi
  say "running in the background; make down stops it"
  ;;
down)
  stop_all
  ;;
*)
  echo "usage: stack.sh run|up|down" >&2
  exit 2
  ;;
esac
