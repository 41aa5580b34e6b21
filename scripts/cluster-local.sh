#!/usr/bin/env bash
# urlhealth as a cluster of local processes, for those without a container engine: the topology
# of compose.yaml (one PostgreSQL, one API replica, N worker replicas) on this machine.
#
#   bash scripts/cluster-local.sh                 # API on http://127.0.0.1:8000, 2 workers
#   bash scripts/cluster-local.sh --workers 4 --port 8080
#
# PostgreSQL: a cluster of its own in <data>/postgres (initdb on first use, kept across runs:
# jobs, monitors and keys survive), on a free loopback port (or --pg-port), trust auth on
# 127.0.0.1 only. initdb and postgres refuse to run as root: as root they run as the `postgres`
# user (Debian's postgresql package creates it), which must be able to reach <data>.
# Replicas: `urlhealth serve --role api|worker` from the checkout's venv (.venv, or --venv),
# listening on 127.0.0.1 (so API keys are not required: auth "auto"), each logging to
# <data>/logs/<name>.log. Other settings come from your URLHEALTH_* environment (for example
# URLHEALTH_ALLOWED_NETWORKS=127.0.0.0/8 to check this machine); the database URL, host, port
# and data_dir are set here.
#
# Ctrl-C or SIGTERM: every replica gets SIGTERM and drains (a second Ctrl-C ends their grace
# period at once), then PostgreSQL stops. If a replica dies by itself, everything stops and the
# script exits 1.
#
# Options:
#   --port N            the API replica's port (default 8000; 0: a free one)
#   --workers N         worker replicas (default 2; one per core is the sizing rule)
#   --worker-port N     first worker's port, the next ones follow (default: free ports)
#   --pg-port N         PostgreSQL's port (default: a free one)
#   --data DIR          where PostgreSQL, logs and replica data live (default <checkout>/data/cluster)
#   --venv DIR          the virtualenv with urlhealth installed (default <checkout>/.venv)
#   --stop-timeout S    how long replicas may drain before they are killed (default 60)
#   --fresh             delete <data>/postgres first (a new, empty database)
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$script_dir/.." && pwd)

api_port=8000
workers=2
worker_port=""
pg_port=""
data=$repo_root/data/cluster
venv=$repo_root/.venv
stop_timeout_s=60
ready_timeout_s=${READY_TIMEOUT_S:-60}
fresh=0

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }
die() {
  echo "cluster-local: $*" >&2
  exit 2
}
need_number() { [[ $2 =~ ^[0-9]+$ ]] || die "$1 needs a number, got '$2'"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --port) need_number "$1" "${2-}"; api_port=$2; shift 2 ;;
    --workers) need_number "$1" "${2-}"; workers=$2; shift 2 ;;
    --worker-port) need_number "$1" "${2-}"; worker_port=$2; shift 2 ;;
    --pg-port) need_number "$1" "${2-}"; pg_port=$2; shift 2 ;;
    --data) [ -n "${2-}" ] || die "--data needs a directory"; data=$2; shift 2 ;;
    --venv) [ -n "${2-}" ] || die "--venv needs a directory"; venv=$2; shift 2 ;;
    --stop-timeout) need_number "$1" "${2-}"; stop_timeout_s=$2; shift 2 ;;
    --fresh) fresh=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
[ "$workers" -ge 1 ] || die "--workers must be at least 1"

urlhealth=$venv/bin/urlhealth
python=$venv/bin/python
[ -x "$urlhealth" ] && [ -x "$python" ] ||
  die "no urlhealth in $venv: python3 -m venv .venv && .venv/bin/pip install -e . (or --venv DIR)"

bindir=""
for candidate in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -n); do
  [ -x "$candidate/initdb" ] && bindir=$candidate
done
if [ -z "$bindir" ] && command -v initdb >/dev/null; then bindir=$(dirname "$(command -v initdb)"); fi
[ -n "$bindir" ] || die "no PostgreSQL server binaries (Debian/Ubuntu: apt-get install postgresql)"

mkdir -p "$data"
data=$(cd "$data" && pwd)
pgdir=$data/postgres
logs=$data/logs
mkdir -p "$logs" "$data/replicas"

# Server commands as the `postgres` user when root (initdb refuses root), else as ourselves.
as_pg=()
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || die "running as root and there is no 'postgres' user to run PostgreSQL"
  as_pg=(runuser -u postgres --)
  runuser -u postgres -- test -x "$data" ||
    die "the postgres user cannot reach $data (a parent directory is closed): use --data DIR"
fi

free_port() {
  "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
[ -n "$pg_port" ] || pg_port=$(free_port)
[ "$api_port" != 0 ] || api_port=$(free_port)

pg_started=0
names=()
pids=()
stopping=0

log() { echo "cluster-local: $*"; }

stop_postgres() {
  [ "$pg_started" = 1 ] || return 0
  pg_started=0
  log "stopping PostgreSQL"
  "${as_pg[@]}" "$bindir/pg_ctl" -D "$pgdir/data" -m fast -w -t 60 stop >/dev/null 2>&1 ||
    "${as_pg[@]}" "$bindir/pg_ctl" -D "$pgdir/data" -m immediate -w stop >/dev/null 2>&1 || true
}

alive_pids() {
  local pid
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && echo "$pid"; done
  return 0
}

# Replicas first (SIGTERM: each drains and flushes to the database), PostgreSQL last.
stop_all() {
  local pid left waited=0
  if [ "${#pids[@]}" -gt 0 ]; then
    log "stopping ${#pids[@]} replica(s) (SIGTERM; they drain, at most ${stop_timeout_s} s)"
    for pid in $(alive_pids); do kill -TERM "$pid" 2>/dev/null || true; done
    while [ -n "$(alive_pids)" ] && [ "$waited" -lt $((stop_timeout_s * 10)) ]; do
      sleep 0.1
      waited=$((waited + 1))
    done
    left=$(alive_pids)
    if [ -n "$left" ]; then
      log "still running after ${stop_timeout_s} s, killed: $left"
      for pid in $left; do kill -KILL "$pid" 2>/dev/null || true; done
    fi
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    pids=()
  fi
  stop_postgres
}

on_exit() {
  local rc=$?
  trap - EXIT INT TERM
  stop_all
  log "stopped"
  exit "$rc"
}
trap on_exit EXIT
# The first signal starts the stop; a second one is passed on (the replicas end their grace).
on_signal() {
  if [ "$stopping" = 1 ]; then
    local pid
    for pid in $(alive_pids); do kill -TERM "$pid" 2>/dev/null || true; done
    return
  fi
  stopping=1
}
trap on_signal INT TERM

# --- PostgreSQL -------------------------------------------------------------------------------
if [ "$fresh" = 1 ] && [ -d "$pgdir" ]; then
  log "--fresh: deleting $pgdir"
  rm -rf "$pgdir"
fi
mkdir -p "$pgdir"
[ "$(id -u)" != 0 ] || chown postgres: "$pgdir"
if [ ! -f "$pgdir/data/PG_VERSION" ]; then
  log "initdb $pgdir/data"
  "${as_pg[@]}" "$bindir/initdb" -D "$pgdir/data" -U postgres -A trust -E UTF8 --locale=C \
    >"$logs/initdb.log" 2>&1 || {
    cat "$logs/initdb.log" >&2
    die "initdb failed"
  }
fi
log "starting PostgreSQL on 127.0.0.1:$pg_port (log: $pgdir/postgres.log)"
# Its own session (setsid): a Ctrl-C on the terminal reaches this script only, which stops
# PostgreSQL after the replicas have flushed, not before. TCP on loopback only, no socket file.
pg_options="-p $pg_port -c listen_addresses=127.0.0.1 -c unix_socket_directories="
if ! setsid "${as_pg[@]}" "$bindir/pg_ctl" -D "$pgdir/data" -l "$pgdir/postgres.log" -w -t 60 \
  -o "$pg_options" start >"$logs/pg_ctl.log" 2>&1 </dev/null; then
  tail -n 20 "$pgdir/postgres.log" >&2 || true
  die "PostgreSQL did not start (port $pg_port in use? try --pg-port)"
fi
pg_started=1
pg_pid=$(head -n 1 "$pgdir/data/postmaster.pid")
log "postgres pid $pg_pid"

database_url="postgresql://postgres@127.0.0.1:$pg_port/urlhealth"
"$python" - "$pg_port" <<'PY'
import sys

import psycopg

with psycopg.connect(f"postgresql://postgres@127.0.0.1:{sys.argv[1]}/postgres", autocommit=True) as c:
    if c.execute("SELECT 1 FROM pg_database WHERE datname = 'urlhealth'").fetchone() is None:
        c.execute("CREATE DATABASE urlhealth")
PY
log "database $database_url"

# --- Replicas ---------------------------------------------------------------------------------
ready() {
  "$python" -c '
import sys, urllib.request
try:
    sys.exit(0 if urllib.request.urlopen(sys.argv[1], timeout=2).status == 200 else 1)
except Exception:
    sys.exit(1)' "$1"
}

# start_replica NAME ROLE PORT: started in a session of its own (see PostgreSQL's above).
start_replica() {
  local name=$1 role=$2 port=$3
  mkdir -p "$data/replicas/$name"
  URLHEALTH_DATABASE_URL=$database_url URLHEALTH_HOST=127.0.0.1 URLHEALTH_PORT=$port \
    URLHEALTH_DATA_DIR=$data/replicas/$name \
    setsid "$urlhealth" serve --role "$role" >"$logs/$name.log" 2>&1 </dev/null &
  names+=("$name")
  pids+=("$!")
  log "$name pid $! role $role http://127.0.0.1:$port (log: $logs/$name.log)"
}

# wait_ready NAME PID PORT: /readyz answers 200, or the replica died, or time ran out.
wait_ready() {
  local name=$1 pid=$2 port=$3 t0=$SECONDS
  until ready "http://127.0.0.1:$port/readyz"; do
    [ "$stopping" = 0 ] || exit 130
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 30 "$logs/$name.log" >&2
      log "$name exited before it was ready"
      exit 1
    fi
    if [ $((SECONDS - t0)) -ge "$ready_timeout_s" ]; then
      tail -n 30 "$logs/$name.log" >&2
      log "$name not ready within ${ready_timeout_s} s"
      exit 1
    fi
    sleep 0.2
  done
}

# The API first: it migrates the schema; the workers then find it done.
start_replica api api "$api_port"
wait_ready api "${pids[0]}" "$api_port"
ports=("$api_port")
for i in $(seq 1 "$workers"); do
  if [ -n "$worker_port" ]; then port=$((worker_port + i - 1)); else port=$(free_port); fi
  start_replica "worker-$i" worker "$port"
  ports+=("$port")
done
for i in $(seq 1 "$workers"); do wait_ready "worker-$i" "${pids[$i]}" "${ports[$i]}"; done

log "ready: API on http://127.0.0.1:$api_port ($workers worker(s)); Ctrl-C stops the cluster"
echo "API_URL=http://127.0.0.1:$api_port"

# Until a signal, or a replica dies on its own.
while [ "$stopping" = 0 ]; do
  for i in "${!pids[@]}"; do
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
      wait "${pids[$i]}" 2>/dev/null && rc=0 || rc=$?
      log "${names[$i]} exited on its own (status $rc; log: $logs/${names[$i]}.log)"
      exit 1
    fi
  done
  sleep 0.5 &
  wait $! || true
done
exit 0
