#!/bin/sh
# The two commands a fresh machine needs (see README.md):
#   ./dev.sh serve [edge serve flags]   install edge with its demo model, then serve it on 127.0.0.1:8080
#   ./dev.sh test  [pytest args]        install edge with its test tools, then run the whole test suite
# The virtual environment lives in .venv (EDGE_VENV overrides). The first install compiles
# llama.cpp through llama-cpp-python (about 6 minutes on 2 cores); later runs reuse it.
set -eu
cd "$(dirname "$0")"
VENV="${EDGE_VENV:-.venv}"

ensure_installed() {
    extra="$1"
    stamp="$VENV/.edge-installed-$extra"
    if [ -f "$stamp" ] && [ ! pyproject.toml -nt "$stamp" ]; then
        return
    fi
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    echo "dev.sh: installing edge[$extra] into $VENV (the first time compiles llama.cpp, ~6 min)" >&2
    "$VENV/bin/python" -m pip install --quiet -e ".[$extra]"
    touch "$stamp"
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
        exec "$VENV/bin/python" -m pytest "$@"
        ;;
    *)
        echo "usage: ./dev.sh serve [edge serve flags] | ./dev.sh test [pytest args]" >&2
        exit 64
        ;;
esac
