#!/bin/sh
# The two commands a fresh machine needs (see README.md):
#   ./dev.sh serve [edge serve flags]   install edge with its demo model, then serve it on 127.0.0.1:8080
#   ./dev.sh test  [pytest args]        install edge with its test tools (and chromium), then run the test suite
#   ./dev.sh install --backend B        scripts/install.sh: llama.cpp for cpu|metal|cuda|jetson|vulkan
# The virtual environment lives in .venv (EDGE_VENV overrides). The first install compiles
# llama.cpp through llama-cpp-python (about 6 minutes on 2 cores, its progress shown); later runs reuse it.
# EDGE_BACKEND picks the backend of that first install (default cpu).
set -eu
cd "$(dirname "$0")"
VENV="${EDGE_VENV:-.venv}"

ensure_installed() {
    extra="$1"
    stamp="$VENV/.edge-installed-$extra"
    if [ -f "$stamp" ] && [ ! pyproject.toml -nt "$stamp" ]; then
        return
    fi
    scripts/install.sh --backend "${EDGE_BACKEND:-cpu}" --extra "$extra" --venv "$VENV"
    touch "$stamp"
}

# The browser tests drive Debian's chromium through playwright (no browser download). As root with
# apt-get (CI), a missing chromium is installed; elsewhere the browser tests say how to install it.
ensure_chromium() {
    [ -x /usr/bin/chromium ] && return
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "dev.sh: installing Debian's chromium for the browser tests" >&2
        apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >&2
    else
        echo "dev.sh: /usr/bin/chromium is missing; the browser tests need it (apt-get install chromium)" >&2
    fi
}

command="${1:-}"
[ $# -gt 0 ] && shift
case "$command" in
    serve)
        ensure_installed demo
        exec "$VENV/bin/edge" serve "$@"
        ;;
    test)
        ensure_installed dev
        ensure_chromium
        exec "$VENV/bin/python" -m pytest "$@"
        ;;
    install)
        exec scripts/install.sh --venv "$VENV" "$@"
        ;;
    *)
        echo "usage: ./dev.sh serve [edge serve flags] | ./dev.sh test [pytest args] | ./dev.sh install --backend B" >&2
        exit 64
        ;;
esac
