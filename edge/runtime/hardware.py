"""What this machine's llama.cpp build can do, and the one hardware hazard we steer around.

llama.cpp's AMX matmul (registered as the CPU "extra buffer type" named ``AMX`` when llama.cpp was
built with AMX and the CPU has it) segfaults on quantized models as soon as a batch holds two or
more tokens (measured on this project's AMX machines). Weight repacking into extra buffer types is switched off in that
case only; elsewhere the repack fast paths (``CPU_REPACK`` for Q4_0 on AVX2/NEON, KleidiAI, ...) stay on.

We ask ggml which extra buffer types the CPU device really registered instead of parsing
/proc/cpuinfo: the hazard needs both an AMX build and an AMX CPU, and only ggml knows both.
"""

from __future__ import annotations

import ctypes
import enum
import functools
import os
import platform
from dataclasses import dataclass

# ggml_backend_dev_type: GGML_BACKEND_DEVICE_TYPE_CPU
_GGML_DEVICE_TYPE_CPU = 0
# extra buffer types whose kernels crash on quantized weights with multi-token batches
CRASHING_EXTRA_BUFFER_TYPES = frozenset({"AMX"})


class ExtraBuffers(str, enum.Enum):
    """The operator's choice for llama.cpp's weight-repacking buffers (``--extra-bufts``)."""

    AUTO = "auto"
    ON = "on"
    OFF = "off"


@dataclass(frozen=True)
class ExtraBufferDecision:
    enabled: bool
    reason: str


def decide_extra_buffers(choice: ExtraBuffers, registered: tuple[str, ...]) -> ExtraBufferDecision:
    """Pure policy: explicit choices win; ``auto`` turns repacking off only where AMX is registered."""
    if choice is ExtraBuffers.ON:
        return ExtraBufferDecision(True, "forced on by the operator")
    if choice is ExtraBuffers.OFF:
        return ExtraBufferDecision(False, "forced off by the operator")
    hazards = sorted(CRASHING_EXTRA_BUFFER_TYPES.intersection(registered))
    if hazards:
        return ExtraBufferDecision(
            False,
            f"auto: llama.cpp registered {', '.join(hazards)}, whose kernels crash on quantized "
            "models with multi-token batches",
        )
    listed = ", ".join(registered) or "none"
    return ExtraBufferDecision(True, f"auto: no crashing extra buffer type registered ({listed})")


@functools.lru_cache(maxsize=1)
def cpu_extra_buffer_types() -> tuple[str, ...]:
    """Names of the extra buffer types ggml's CPU device offers (e.g. ``("AMX", "CPU_REPACK")``)."""
    from llama_cpp._ggml import libggml

    _declare_ggml_prototypes(libggml)
    libggml.ggml_backend_load_all()
    device = libggml.ggml_backend_dev_by_type(_GGML_DEVICE_TYPE_CPU)
    if not device:
        return ()
    registry = libggml.ggml_backend_dev_backend_reg(device)
    address = libggml.ggml_backend_reg_get_proc_address(registry, b"ggml_backend_dev_get_extra_bufts")
    if not address:
        return ()
    get_extra_bufts = ctypes.CFUNCTYPE(ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p)(address)
    buffer_types = get_extra_bufts(device)
    names = []
    index = 0
    while buffer_types and buffer_types[index]:
        names.append(libggml.ggml_backend_buft_name(buffer_types[index]).decode())
        index += 1
    return tuple(names)


def _declare_ggml_prototypes(lib: ctypes.CDLL) -> None:
    lib.ggml_backend_load_all.argtypes = []
    lib.ggml_backend_load_all.restype = None
    lib.ggml_backend_dev_by_type.argtypes = [ctypes.c_int]
    lib.ggml_backend_dev_by_type.restype = ctypes.c_void_p
    lib.ggml_backend_dev_backend_reg.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_dev_backend_reg.restype = ctypes.c_void_p
    lib.ggml_backend_reg_get_proc_address.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.ggml_backend_reg_get_proc_address.restype = ctypes.c_void_p
    lib.ggml_backend_buft_name.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_buft_name.restype = ctypes.c_char_p


def extra_buffers_decision(choice: ExtraBuffers = ExtraBuffers.AUTO) -> ExtraBufferDecision:
    """The decision for this machine; probing ggml is skipped when the operator already chose."""
    registered = cpu_extra_buffer_types() if choice is ExtraBuffers.AUTO else ()
    return decide_extra_buffers(choice, registered)


def llama_system_info() -> str:
    import llama_cpp

    return llama_cpp.llama_print_system_info().decode(errors="replace").strip()


def default_thread_count() -> int:
    """Physical-ish core count: decode is bandwidth bound, and hyperthreads only add contention."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, available or 1)


def describe_machine() -> dict[str, object]:
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": _cpu_model_name(),
        "cpus_available": default_thread_count(),
        "cpu_extra_buffer_types": list(cpu_extra_buffer_types()),
        "llama_cpp_system_info": llama_system_info(),
    }


def _cpu_model_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
