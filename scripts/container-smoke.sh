#!/usr/bin/env bash
# Container smoke test: builds the Docker image from a local Debian base and checks it end to end.
#
#   bash scripts/container-smoke.sh
#
# These machines reach no container registry and have no Docker engine, and `podman run` cannot
# start containers here, so:
#   - the base image is made locally by ../shared/tools/python-base-image.sh
#     (localhost/python-base:bookworm; it installs podman, buildah and debootstrap when missing);
#   - the image is built by `podman build` (vfs storage, chroot isolation, host network) with
#     --format docker, because the OCI image format has no HEALTHCHECK and podman drops it,
#     and --layers=false, because cached layers are slower than none on vfs;
#   - the image is run with `buildah run --isolation chroot --network host`, which shares the
#     host's network and pid namespace: the server listens on the host's 127.0.0.1.
# Checks: CMD / HEALTHCHECK / STOPSIGNAL / USER in the image; the process runs as non-root; the
# HEALTHCHECK command fails with no server and passes with one; /healthz answers 200; a job that
# checks a loopback target ends `done` with one ok result; SIGTERM stops the server in time;
# then, on a PostgreSQL of its own, the image as an API replica and a worker replica
# (compose.yaml's roles) take the same job and stop on SIGTERM.
# Every wait is bounded; everything started here is cleaned up on exit. Exit 0 only if all pass.
# Environment overrides: BASE_IMAGE, IMAGE, SHARED_DIR, READY_TIMEOUT_S, JOB_TIMEOUT_S,
# STOP_TIMEOUT_S, KEEP_IMAGE=0 (remove the image afterwards; default 1: keep it),
# SMOKE_NO_CURL=1 (use python3 urllib even where curl exists).
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$script_dir/.." && pwd)
shared_dir=${SHARED_DIR:-$repo_root/../shared}
base_image=${BASE_IMAGE:-localhost/python-base:bookworm}
image=${IMAGE:-localhost/urlhealth:smoke}
ready_timeout_s=${READY_TIMEOUT_S:-60}
job_timeout_s=${JOB_TIMEOUT_S:-30}
stop_timeout_s=${STOP_TIMEOUT_S:-15}
store=(--storage-driver vfs)

failures=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
die() {
  echo "FAIL: $*"
  echo "container-smoke: FAILED"
  exit 1
}
info() { echo "---- $*"; }
now() { date +%s; }

[ "$(id -u)" = 0 ] || die "must run as root (podman/buildah with vfs storage and chroot isolation)"
command -v python3 >/dev/null || die "python3 is needed on the host"

work=$(mktemp -d /tmp/urlhealth-smoke.XXXXXX)
container=""
server_pid=""
target_pid=""
replica_pids=()  # step 10: `buildah run` of the replicas on PostgreSQL
pg_bin=""
pg_started=0

# SIGTERM to each replica's urlhealth process (they drain), then kill what is left; returns 1
# if any had to be killed.
stop_replicas() {
  local p pid clean=0
  for pid in "${replica_pids[@]}"; do
    for p in $(app_pids "$pid"); do kill -TERM "$p" 2>/dev/null; done
  done
  for pid in "${replica_pids[@]}"; do
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then
      clean=1
      for p in $(app_pids "$pid"); do kill -KILL "$p" 2>/dev/null; done
      kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
  done
  replica_pids=()
  return "$clean"
}

cleanup() {
  local rc=$?
  set +e
  if [ -n "$target_pid" ] && kill -0 "$target_pid" 2>/dev/null; then
    kill -TERM "$target_pid" 2>/dev/null
    wait "$target_pid" 2>/dev/null
  fi
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    # The app first (graceful), then buildah run itself if it is still there.
    local p
    for p in $(app_pids "$server_pid"); do kill -TERM "$p" 2>/dev/null; done
    for _ in $(seq 1 20); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$server_pid" 2>/dev/null; then
      for p in $(app_pids "$server_pid"); do kill -KILL "$p" 2>/dev/null; done
      kill -KILL "$server_pid" 2>/dev/null
    fi
    wait "$server_pid" 2>/dev/null
  fi
  stop_replicas
  if [ "$pg_started" = 1 ]; then
    runuser -u postgres -- "$pg_bin/pg_ctl" -D "$work/pg/data" -m immediate -w stop >/dev/null 2>&1
  fi
  if [ -n "$container" ]; then
    buildah "${store[@]}" rm "$container" >/dev/null 2>&1
  fi
  if [ "${KEEP_IMAGE:-1}" != 1 ]; then
    podman "${store[@]}" rmi -f "$image" >/dev/null 2>&1
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# All descendants of a pid (buildah run -> buildah-chroot-runtime -> buildah-chroot-exec -> app).
descendants() {
  local child
  for child in $(pgrep -P "$1" 2>/dev/null || true); do
    echo "$child"
    descendants "$child"
  done
}
# The urlhealth server process(es) under a `buildah run` pid: not buildah's own helpers.
app_pids() {
  local p args
  for p in $(descendants "$1"); do
    args=$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null || true)
    case "$args" in
      *buildah*) ;;
      *"urlhealth serve"*) echo "$p" ;;
    esac
  done
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# http METHOD URL [JSON_BODY] -> prints the status code (000 when no answer); body in $work/body.
if [ -z "${SMOKE_NO_CURL:-}" ] && command -v curl >/dev/null; then
  http() {
    local args=(-sS -o "$work/body" -w '%{http_code}' --max-time 5 -X "$1")
    [ $# -ge 3 ] && args+=(-H 'Content-Type: application/json' --data-binary "$3")
    curl "${args[@]}" "$2" 2>"$work/http.err" || true
  }
else
  http() {
    python3 - "$work/body" "$@" <<'PY' 2>"$work/http.err" || echo 000
import sys, urllib.error, urllib.request
body_file, method, url = sys.argv[1:4]
data = sys.argv[4].encode() if len(sys.argv) > 4 else None
req = urllib.request.Request(url, data=data, method=method)
if data is not None:
    req.add_header("Content-Type", "application/json")
try:
    with urllib.request.urlopen(req, timeout=5) as resp:
        status, body = resp.status, resp.read()
except urllib.error.HTTPError as exc:
    status, body = exc.code, exc.read()
with open(body_file, "wb") as f:
    f.write(body)
print(status)
PY
  }
fi

# json_get EXPR < file: evaluates EXPR against the parsed JSON `d`; prints it (JSON for non-str).
json_get() {
  python3 -c '
import json, sys
d = json.load(sys.stdin)
v = eval(sys.argv[1], {"d": d})
print(v if isinstance(v, str) else json.dumps(v))' "$1"
}

server_alive() { [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; }
show_server_log() {
  echo "---- server log (last 40 lines):"
  tail -n 40 "$work/server.log" 2>/dev/null | sed 's/^/    /'
}

t_start=$(now)

# 1. Base image (installs podman/buildah/debootstrap when missing).
info "base image $base_image"
t0=$(now)
bash "$shared_dir/tools/python-base-image.sh" "$base_image" || die "base image script failed"
pass "base image ready ($(($(now) - t0)) s)"

# 2. Build.
info "building $image (log: shown on failure)"
t0=$(now)
# The previous smoke image would only be left behind, dangling: nothing reuses it without layers.
podman "${store[@]}" rmi -f "$image" >/dev/null 2>&1 || true
# --layers=false: with vfs storage every cached layer is a full copy of the root filesystem,
# so a fully cached layered build takes ~110 s here, a build with no layer cache ~25 s.
if ! podman "${store[@]}" build --layers=false --format docker --isolation chroot --network host \
  --build-arg BASE_IMAGE="$base_image" \
  -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro \
  -t "$image" "$repo_root" >"$work/build.log" 2>&1; then
  tail -n 60 "$work/build.log" | sed 's/^/    /'
  die "podman build failed"
fi
build_s=$(($(now) - t0))
pass "image built in ${build_s} s"

# 3. Image metadata.
podman "${store[@]}" image inspect "$image" --format '{{json .Config}}' >"$work/config.json"
podman "${store[@]}" image inspect "$image" --format '{{json .HealthCheck}}' >"$work/healthcheck.json"
cmd=$(json_get 'd.get("Cmd")' <"$work/config.json")
entrypoint=$(json_get 'd.get("Entrypoint")' <"$work/config.json")
stopsignal=$(json_get 'd.get("StopSignal")' <"$work/config.json")
image_user=$(json_get 'd.get("User") or ""' <"$work/config.json")
echo "     CMD=$cmd ENTRYPOINT=$entrypoint STOPSIGNAL=$stopsignal USER=$image_user"
if [ "$cmd" = '["urlhealth", "serve"]' ]; then
  pass "CMD is exec form [\"urlhealth\", \"serve\"]"
else
  fail "CMD is $cmd, expected [\"urlhealth\", \"serve\"]"
fi
case "$entrypoint" in null | '[]') ;; *) fail "unexpected ENTRYPOINT $entrypoint" ;; esac
if [ "$stopsignal" = SIGTERM ]; then pass "STOPSIGNAL SIGTERM"; else fail "STOPSIGNAL is $stopsignal"; fi
case "$image_user" in
  "" | root | 0 | root:* | 0:*) fail "image USER is '$image_user' (root)" ;;
  *) pass "image USER is $image_user" ;;
esac
volumes=$(json_get 'sorted((d.get("Volumes") or {}).keys())' <"$work/config.json")
data_env=$(json_get '[e for e in (d.get("Env") or []) if e.startswith("URLHEALTH_DATA_DIR=")]' <"$work/config.json")
if [ "$volumes" = '["/data"]' ] && [ "$data_env" = '["URLHEALTH_DATA_DIR=/data"]' ]; then
  pass "VOLUME /data, URLHEALTH_DATA_DIR=/data"
else
  fail "expected VOLUME /data and URLHEALTH_DATA_DIR=/data, got Volumes=$volumes Env=$data_env"
fi
hc_kind=$(json_get '(d or {}).get("Test", [None])[0]' <"$work/healthcheck.json")
case "$hc_kind" in
  CMD-SHELL | CMD) pass "HEALTHCHECK present ($hc_kind)" ;;
  *) die "image has no HEALTHCHECK (HealthCheck=$(cat "$work/healthcheck.json"))" ;;
esac
# The HEALTHCHECK as an argv to run in the container, one NUL-terminated word each.
python3 -c '
import json, sys
test = json.load(open(sys.argv[1]))["Test"]
argv = ["/bin/sh", "-c", test[1]] if test[0] == "CMD-SHELL" else test[1:]
sys.stdout.write("".join(a + "\0" for a in argv))' "$work/healthcheck.json" >"$work/healthcheck.argv"
mapfile -d '' hc_argv <"$work/healthcheck.argv"

# 4. A working container from the image.
container=$(buildah "${store[@]}" from --name "urlhealth-smoke-$$" "$image")
# A root filesystem made with `mktemp -d` (as by python-base-image.sh) has / mode 0700, which no
# layer can change; a non-root USER then cannot exec anything. Open it in this working copy.
mnt=$(buildah "${store[@]}" mount "$container")
root_mode=$(stat -c '%a' "$mnt")
if [ "$root_mode" != 755 ]; then
  echo "NOTE: the image's / has mode $root_mode (from the base image); chmod 755 in the working container"
  chmod 755 "$mnt"
fi
buildah "${store[@]}" umount "$container" >/dev/null

port=$(free_port)
env_args=(--env "URLHEALTH_PORT=$port" --env URLHEALTH_HOST=127.0.0.1
  --env "URLHEALTH_ALLOWED_NETWORKS=127.0.0.0/8,::1/128")
crun() { buildah "${store[@]}" run --isolation chroot --network host "${env_args[@]}" "$container" -- "$@"; }

uid=$(crun id -u 2>"$work/id.err") || {
  cat "$work/id.err"
  die "cannot run a command in the container"
}
if [ "$uid" != 0 ]; then
  pass "container process runs as uid $uid (non-root)"
else
  fail "container process runs as root"
fi
if crun test -w /opt/venv/bin 2>/dev/null; then
  fail "the venv is writable by the runtime user"
else
  pass "the venv is read-only for the runtime user"
fi

# 5. HEALTHCHECK with no server: must fail.
if timeout 20 buildah "${store[@]}" run --isolation chroot --network host "${env_args[@]}" \
  "$container" -- "${hc_argv[@]}" >/dev/null 2>&1; then
  fail "HEALTHCHECK passed with no server listening"
else
  pass "HEALTHCHECK fails (exit non-zero) with no server listening"
fi

# 6. Start the server: the image's CMD, with the image's environment.
info "starting urlhealth serve on 127.0.0.1:$port"
mapfile -t cmd_argv < <(json_get 'd["Cmd"]' <"$work/config.json" | python3 -c 'import json, sys; print("\n".join(json.load(sys.stdin)))')
buildah "${store[@]}" run --isolation chroot --network host "${env_args[@]}" "$container" -- \
  "${cmd_argv[@]}" >"$work/server.log" 2>&1 &
server_pid=$!
t0=$(now)
ready=0
while [ $(($(now) - t0)) -lt "$ready_timeout_s" ]; do
  server_alive || break
  code=$(http GET "http://127.0.0.1:$port/healthz")
  if [ "$code" = 200 ]; then
    ready=1
    break
  fi
  sleep 0.5
done
if [ "$ready" != 1 ]; then
  show_server_log
  server_alive && die "GET /healthz did not answer 200 within ${ready_timeout_s} s"
  die "the server exited before answering /healthz"
fi
pass "GET /healthz -> 200 after $(($(now) - t0)) s: $(head -c 200 "$work/body")"
app_pid=$(app_pids "$server_pid" | head -n 1)
[ -n "$app_pid" ] || die "cannot find the urlhealth process under buildah run (pid $server_pid)"
app_uid=$(awk '/^Uid:/{print $2}' "/proc/$app_pid/status")
if [ "$app_uid" != 0 ]; then
  pass "server process $app_pid runs as uid $app_uid"
else
  fail "server process $app_pid runs as root"
fi

# 7. The HEALTHCHECK command, inside the container, with the server up: must pass.
if timeout 20 buildah "${store[@]}" run --isolation chroot --network host "${env_args[@]}" \
  "$container" -- "${hc_argv[@]}" >"$work/hc.out" 2>&1; then
  pass "HEALTHCHECK command passes inside the container"
else
  sed 's/^/    /' "$work/hc.out"
  fail "HEALTHCHECK command failed with the server up"
fi

# 8. A loopback target and one job against it.
target_port=$(free_port)
mkdir -p "$work/www"
echo "hello from the smoke target" >"$work/www/index.html"
python3 -m http.server --bind 127.0.0.1 --directory "$work/www" "$target_port" \
  >"$work/target.log" 2>&1 &
target_pid=$!
t0=$(now)
until [ "$(http GET "http://127.0.0.1:$target_port/")" = 200 ]; do
  if [ $(($(now) - t0)) -ge 15 ] || ! kill -0 "$target_pid" 2>/dev/null; then
    die "the loopback target did not start"
  fi
  sleep 0.2
done
target_url="http://127.0.0.1:$target_port/"
code=$(http POST "http://127.0.0.1:$port/v1/jobs" "{\"urls\": [\"$target_url\"]}")
if [ "$code" != 202 ]; then
  echo "    body: $(head -c 500 "$work/body")"
  show_server_log
  die "POST /v1/jobs -> $code, expected 202"
fi
job_id=$(json_get 'd["id"]' <"$work/body")
pass "POST /v1/jobs -> 202, job $job_id"
t0=$(now)
status=""
while [ $(($(now) - t0)) -lt "$job_timeout_s" ]; do
  code=$(http GET "http://127.0.0.1:$port/v1/jobs/$job_id")
  if [ "$code" = 200 ]; then
    status=$(json_get 'd["status"]' <"$work/body")
    case "$status" in queued | running) ;; *) break ;; esac
  fi
  sleep 0.3
done
cp "$work/body" "$work/job.json"
if [ "$status" = "done" ]; then
  pass "job $job_id is done after $(($(now) - t0)) s"
  n=$(json_get 'len(d["results"])' <"$work/job.json")
  ok=$(json_get 'd["results"][0]["ok"] if d["results"] else None' <"$work/job.json")
  if [ "$n" = 1 ] && [ "$ok" = true ]; then
    pass "one result, ok=true: $(json_get '{k: d["results"][0].get(k) for k in ("url", "status_code", "elapsed_ms")}' <"$work/job.json")"
  else
    echo "    job: $(head -c 1500 "$work/job.json")"
    fail "expected one result with ok=true, got $n result(s), ok=$ok"
  fi
else
  echo "    last answer ($code): $(head -c 1500 "$work/body")"
  fail "job $job_id not done within ${job_timeout_s} s (status '${status}')"
fi

# The job is kept in the volume's SQLite file, which the non-root user owns. Seen through the
# server process's root: `buildah run` mounts a VOLUME apart from the working container.
db_owner=$(stat -c '%u' "/proc/$app_pid/root/data/urlhealth.db" 2>/dev/null || echo missing)
if [ "$db_owner" = 10001 ]; then
  pass "/data/urlhealth.db exists, owned by uid 10001"
else
  fail "/data/urlhealth.db: owner $db_owner, expected uid 10001"
fi

# 9. SIGTERM, straight to the urlhealth process (as a container runtime does for STOPSIGNAL).
#    Signalling `buildah run` itself does not forward it: buildah's chroot runtime then KILLs
#    the process, so a graceful stop is never seen.
info "SIGTERM to urlhealth (pid $app_pid)"
kill -TERM "$app_pid"
t0=$(now)
stopped=0
while [ $(($(now) - t0)) -lt "$stop_timeout_s" ]; do
  if ! server_alive; then
    stopped=1
    break
  fi
  sleep 0.2
done
if [ "$stopped" = 1 ]; then
  set +e
  wait "$server_pid"
  server_rc=$?
  set -e
  server_pid=""
  stop_s=$(($(now) - t0))
  # uvicorn re-raises the signal once it has shut down, so the process ends "killed by SIGTERM"
  # (128+15 under Docker); `buildah run` reports that as "subprocess exited on terminated",
  # status 1. Either that or exit 0 is a clean stop, if the lifespan shutdown completed.
  clean_exit=0
  if [ "$server_rc" = 0 ]; then
    clean_exit=1
  elif grep -q 'subprocess exited on terminated' "$work/server.log"; then
    clean_exit=1
  fi
  if [ "$clean_exit" = 1 ] && grep -q 'Application shutdown complete' "$work/server.log"; then
    pass "server shut down gracefully and exited within ${stop_s} s of SIGTERM (buildah run status $server_rc)"
  else
    show_server_log
    fail "server did not stop cleanly after SIGTERM (buildah run status $server_rc)"
  fi
else
  show_server_log
  fail "server still running ${stop_s:-$stop_timeout_s} s after SIGTERM"
fi
grep -qiE 'traceback' "$work/server.log" && {
  show_server_log
  fail "the server log has a traceback"
}

# 10. The image as replicas on PostgreSQL (compose.yaml's roles): `serve --role api` and
#     `serve --role worker` on one database, then the same job through the API replica.
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -n | tail -n 1 || true)
if [ -z "$pg_bin" ] || ! id postgres >/dev/null 2>&1; then
  if [ "${CI:-}" = true ]; then
    fail "no PostgreSQL server binaries (or no postgres user): cannot run the replicas"
  else
    echo "SKIP: replicas on PostgreSQL (apt-get install postgresql to run them)"
  fi
else
  info "replicas on PostgreSQL: one API, one worker"
  chmod 711 "$work" # the postgres user must reach $work/pg
  mkdir -p "$work/pg"
  chown postgres: "$work/pg"
  pg_port=$(free_port)
  runuser -u postgres -- "$pg_bin/initdb" -D "$work/pg/data" -U postgres -A trust --no-sync \
    >"$work/pg/initdb.log" 2>&1 || die "initdb failed: $(tail -n 5 "$work/pg/initdb.log")"
  runuser -u postgres -- "$pg_bin/pg_ctl" -D "$work/pg/data" -l "$work/pg/log" -w \
    -o "-p $pg_port -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c fsync=off" \
    start >/dev/null 2>&1 || die "PostgreSQL did not start: $(tail -n 5 "$work/pg/log")"
  pg_started=1
  pg_url="postgresql://postgres@127.0.0.1:$pg_port/postgres"
  api_port=""
  for role in api worker; do
    rport=$(free_port)
    [ -n "$api_port" ] || api_port=$rport
    buildah "${store[@]}" run --isolation chroot --network host \
      --env "URLHEALTH_PORT=$rport" --env URLHEALTH_HOST=127.0.0.1 \
      --env "URLHEALTH_ALLOWED_NETWORKS=127.0.0.0/8,::1/128" \
      --env "URLHEALTH_DATABASE_URL=$pg_url" "$container" -- \
      urlhealth serve --role "$role" >"$work/$role.log" 2>&1 &
    rpid=$!
    replica_pids+=("$rpid")
    t0=$(now)
    until [ "$(http GET "http://127.0.0.1:$rport/readyz")" = 200 ]; do
      if [ $(($(now) - t0)) -ge "$ready_timeout_s" ] || ! kill -0 "$rpid" 2>/dev/null; then
        tail -n 40 "$work/$role.log" | sed 's/^/    /'
        die "the $role replica did not become ready on PostgreSQL"
      fi
      sleep 0.5
    done
    pass "--role $role on PostgreSQL: /readyz -> 200 after $(($(now) - t0)) s"
  done
  code=$(http POST "http://127.0.0.1:$api_port/v1/jobs" "{\"urls\": [\"$target_url\"]}")
  [ "$code" = 202 ] || die "POST /v1/jobs to the API replica -> $code: $(head -c 300 "$work/body")"
  job_id=$(json_get 'd["id"]' <"$work/body")
  t0=$(now)
  status=""
  while [ $(($(now) - t0)) -lt "$job_timeout_s" ]; do
    if [ "$(http GET "http://127.0.0.1:$api_port/v1/jobs/$job_id")" = 200 ]; then
      status=$(json_get 'd["status"]' <"$work/body")
      case "$status" in queued | running) ;; *) break ;; esac
    fi
    sleep 0.3
  done
  if [ "$status" = done ] && [ "$(json_get '[r["ok"] for r in d["results"]]' <"$work/body")" = '[true]' ]; then
    pass "a job through the API replica is done, one ok result"
  else
    fail "job $job_id through the API replica: status '$status': $(head -c 500 "$work/body")"
  fi
  if stop_replicas; then
    pass "both replicas stopped on SIGTERM"
  else
    fail "a replica had to be killed after SIGTERM"
  fi
  for role in api worker; do
    if grep -qiE 'traceback' "$work/$role.log"; then
      tail -n 40 "$work/$role.log" | sed 's/^/    /'
      fail "the $role replica's log has a traceback"
    fi
  done
fi

echo "---- build ${build_s} s, total $(($(now) - t_start)) s"
if [ "$failures" -gt 0 ]; then
  echo "container-smoke: FAILED ($failures check(s))"
  exit 1
fi
echo "container-smoke: all checks PASSED"
