#!/usr/bin/env bash
# The one command for the urlhealth benchmark (see bench/README.md):
#   bash bench/run.sh [--scenarios S1,S2] [--reps N] [--quick] [--no-baseline] [--strict]
# Installs what it needs if missing (nginx + its echo module from Debian's packages, and the
# project into bench/.venv), then runs bench/bench.py with the arguments given.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$BENCH_DIR/.." && pwd)"
VENV="$BENCH_DIR/.venv"
PYTHON_BIN="${PYTHON:-python3.11}"
ECHO_MODULE_GLOB="/usr/lib*/nginx/modules/ngx_http_echo_module.so"

log() { printf 'bench/run.sh: %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        log "need root to run: $*"
        return 1
    fi
}

install_nginx() {
    if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then
        if compgen -G "$ECHO_MODULE_GLOB" >/dev/null; then
            return 0
        fi
    fi
    log "installing nginx-light and libnginx-mod-http-echo (Debian packages)"
    as_root apt-get update -qq
    # The system nginx service is not needed: the benchmark runs its own nginx.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        nginx-light libnginx-mod-http-echo >/dev/null
    compgen -G "$ECHO_MODULE_GLOB" >/dev/null || {
        log "the echo module is still missing after the install"
        return 1
    }
}

install_venv() {
    # Re-install when pyproject.toml changed since the last install (dependencies may have).
    local stamp="$VENV/.bench-installed"
    local want
    want="$(sha256sum "$REPO_DIR/pyproject.toml" | cut -d' ' -f1)"
    if [ -x "$VENV/bin/urlhealth" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        command -v "$PYTHON_BIN" >/dev/null 2>&1 || PYTHON_BIN=python3
        log "creating $VENV with $PYTHON_BIN"
        "$PYTHON_BIN" -m venv "$VENV"
    fi
    log "installing urlhealth (editable, [dev]) and requests into $VENV (log: $VENV/install.log)"
    if ! (cd "$REPO_DIR" && "$VENV/bin/python" -m pip install -e '.[dev]' requests) \
        >"$VENV/install.log" 2>&1; then
        tail -n 30 "$VENV/install.log" >&2
        log "pip install failed"
        return 1
    fi
    echo "$want" >"$stamp"
}

install_nginx
install_venv

# 500 workers x 8 hosts of connections, plus nginx's side of them: raise the soft limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

exec "$VENV/bin/python" "$BENCH_DIR/bench.py" "$@"
