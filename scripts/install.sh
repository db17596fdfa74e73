#!/bin/sh
# Install edge into a virtual environment with llama.cpp (through llama-cpp-python) built for one backend.
#
#   scripts/install.sh [--backend cpu|metal|cuda|jetson|vulkan] [--extra demo|dev|bench|none]
#                      [--venv DIR] [--cuda-arch LIST] [--dry-run]
#
#   cpu     the default: llama.cpp's CPU backend tuned for this CPU (AVX2/AVX-512/NEON, repacking)
#   metal   Apple Silicon GPUs (macOS)
#   cuda    NVIDIA GPUs; --cuda-arch 86, "86;89" or native (the default: the GPUs in this machine)
#   jetson  NVIDIA Jetson Orin (CUDA architecture 87; Xavier is 72: --cuda-arch 72), JetPack's nvcc
#   vulkan  any GPU with a Vulkan driver (AMD, Intel, NVIDIA); needs the Vulkan SDK's glslc
#
# --dry-run prints the exact commands and changes nothing. The build takes minutes; its progress is shown
# as one line (llama.cpp's compile steps) and the full pip output goes to DIR/install.log.
# A GPU backend is always compiled from source: pip's cached CPU wheel would otherwise be reused.
set -eu
cd "$(dirname "$0")/.."

# the llama-cpp-python release edge is pinned to (pyproject.toml; tests/unit/test_install.py checks both agree)
LLAMA_CPP_PYTHON="llama-cpp-python==0.3.36"

backend=cpu
extra=demo
venv="${EDGE_VENV:-.venv}"
cuda_arch=""
dry_run=0
python="${PYTHON:-python3}"

usage() {  # the comment block at the top of this file
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
    exit 64
}

while [ $# -gt 0 ]; do
    case "$1" in
        --backend) [ $# -ge 2 ] || usage; backend="$2"; shift 2 ;;
        --backend=*) backend="${1#*=}"; shift ;;
        --extra) [ $# -ge 2 ] || usage; extra="$2"; shift 2 ;;
        --extra=*) extra="${1#*=}"; shift ;;
        --venv) [ $# -ge 2 ] || usage; venv="$2"; shift 2 ;;
        --venv=*) venv="${1#*=}"; shift ;;
        --cuda-arch) [ $# -ge 2 ] || usage; cuda_arch="$2"; shift 2 ;;
        --cuda-arch=*) cuda_arch="${1#*=}"; shift ;;
        --dry-run) dry_run=1; shift ;;
        -h|--help) usage ;;
        *) echo "install.sh: unknown argument $1" >&2; usage ;;
    esac
done

cuda_compiler() {
    # JetPack and NVIDIA's installers put nvcc in /usr/local/cuda/bin, which is often not on PATH
    if [ -x /usr/local/cuda/bin/nvcc ]; then echo /usr/local/cuda/bin/nvcc
    elif command -v nvcc >/dev/null 2>&1; then command -v nvcc
    else echo /usr/local/cuda/bin/nvcc; fi
}

build_env=""
case "$backend" in
    cpu) cmake_args="-DGGML_NATIVE=ON" ;;
    metal) cmake_args="-DGGML_METAL=ON" ;;
    cuda) cmake_args="-DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=${cuda_arch:-native}"
          build_env="CUDACXX=$(cuda_compiler)" ;;
    jetson) cmake_args="-DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=${cuda_arch:-87}"
            build_env="CUDACXX=$(cuda_compiler)" ;;
    vulkan) cmake_args="-DGGML_VULKAN=ON" ;;
    *) echo "install.sh: unknown backend '$backend' (cpu, metal, cuda, jetson, vulkan)" >&2; usage ;;
esac
case "$extra" in
    none) target="." ;;
    demo|dev|bench) target=".[$extra]" ;;
    *) echo "install.sh: unknown extra '$extra' (demo, dev, bench, none)" >&2; usage ;;
esac

log="$venv/install.log"
pip="$venv/bin/python -m pip"

show() {  # the command as one copy-pasteable line: arguments with spaces or quotes are single-quoted
    line=""
    for argument in "$@"; do
        case "$argument" in
            *[!A-Za-z0-9_./=:,+@%-]*|"") argument="'$(printf '%s' "$argument" | sed "s/'/'\\\\''/g")'" ;;
        esac
        line="${line:+$line }$argument"
    done
    printf '%s\n' "$line"
}

step() {  # step LABEL COMMAND...: run it, a progress line on stderr, everything in the log
    label="$1"
    shift
    if [ "$dry_run" = 1 ]; then
        show "$@"
        return
    fi
    echo "install.sh: $label" >&2
    status_file="$venv/.install-status"
    { "$@" 2>&1; echo $? >"$status_file"; } | awk -v logfile="$log" -v tty="$([ -t 2 ] && echo 1 || echo 0)" \
        -f scripts/install-progress.awk
    status=$(cat "$status_file")
    rm -f "$status_file"
    if [ "$status" != 0 ]; then
        echo "install.sh: '$label' failed (exit $status); the full output is in $log" >&2
        exit "$status"
    fi
}

preflight() {
    [ "$dry_run" = 1 ] && return
    case "$backend" in
        metal) [ "$(uname -s)" = Darwin ] || { echo "install.sh: --backend metal needs macOS" >&2; exit 69; } ;;
        cuda|jetson) [ -x "$(cuda_compiler)" ] || {
            echo "install.sh: no nvcc found (CUDA toolkit; on a Jetson: sudo apt install nvidia-jetpack)" >&2; exit 69; } ;;
        vulkan) command -v glslc >/dev/null 2>&1 || {
            echo "install.sh: no glslc found (the Vulkan SDK, or apt install glslc libvulkan-dev)" >&2; exit 69; } ;;
    esac
    if [ ! -x "$venv/bin/python" ]; then
        "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
            { echo "install.sh: edge needs Python 3.10 or newer ($python is older)" >&2; exit 69; }
    fi
}

preflight
if [ "$dry_run" = 1 ]; then
    show "$python" -m venv "$venv"
elif [ ! -x "$venv/bin/python" ]; then
    echo "install.sh: creating $venv" >&2
    "$python" -m venv "$venv"
fi
[ "$dry_run" = 1 ] || : >"$log"
step "upgrading pip" $pip install --upgrade pip
if [ "$backend" = cpu ]; then
    # pip's wheel cache may hold a CPU build already: then this takes seconds
    step "installing edge$( [ "$target" = . ] || echo "[$extra]") (the first time compiles llama.cpp, ~6 min on 2 cores)" \
        env CMAKE_ARGS="$cmake_args" $pip install -v -e "$target"
else
    step "compiling llama.cpp for $backend ($cmake_args); this takes several minutes" \
        env CMAKE_ARGS="$cmake_args" $build_env $pip install -v --no-cache-dir --force-reinstall \
        --no-binary llama-cpp-python "$LLAMA_CPP_PYTHON"
    step "installing edge$( [ "$target" = . ] || echo "[$extra]")" $pip install -v -e "$target"
fi
step "checking the build" "$venv/bin/python" -c "import sys, llama_cpp; gpu = llama_cpp.llama_supports_gpu_offload(); \
print(\"llama.cpp GPU offload:\", gpu); sys.exit(0 if gpu or \"$backend\" == \"cpu\" else 1)"
[ "$dry_run" = 1 ] || echo "install.sh: done. $venv/bin/edge doctor shows what this machine can run." >&2
