"""What this machine is, read from what the operating system, the driver and llama.cpp report.

Every detection is a pure function of text a machine produces (``/proc/cpuinfo``, ``nvidia-smi`` CSV,
``sysctl`` lines, ``system_profiler -json``, ``/proc/device-tree/model``, ``/etc/nv_tegra_release``) so it
is tested on recorded inputs from machines we do not have (tests/fixtures/devices/). ``Sources`` is the one
place that reads files and runs commands; the tests hand in a folder of recorded outputs instead.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GIB = 1024**3

# nvidia-smi's stable CSV query (nvidia-smi --help-query-gpu); compute_cap needs driver 510 or newer
NVIDIA_SMI_QUERY = ["nvidia-smi", "--query-gpu=name,memory.total,memory.free,driver_version,compute_cap",
                    "--format=csv,noheader,nounits"]
SYSCTL_KEYS = ["hw.memsize", "hw.physicalcpu", "hw.logicalcpu", "machdep.cpu.brand_string",
               "hw.optional.arm64", "hw.optional.AdvSIMD", "hw.optional.arm.FEAT_DotProd",
               "hw.optional.arm.FEAT_I8MM", "hw.optional.arm.FEAT_BF16", "hw.optional.avx2_0",
               "hw.optional.avx512f", "hw.pagesize"]


class Sources:
    """Files and commands of the machine this runs on. A command that is missing or fails reads as None."""

    def system(self) -> str:
        return platform.system()

    def machine(self) -> str:
        return platform.machine()

    def release(self) -> str:
        return platform.release()

    def read(self, path: str) -> str | None:
        try:
            return Path(path).read_bytes().decode("utf-8", errors="replace")
        except OSError:
            return None

    def run(self, command: list[str]) -> str | None:
        if shutil.which(command[0]) is None:
            return None
        try:
            completed = subprocess.run(command, capture_output=True, text=True, timeout=15, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return completed.stdout if completed.returncode == 0 else None

    def cpus_available(self) -> int:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class RecordedSources(Sources):
    """A machine recorded into a folder: ``system.json`` ({"system", "machine", "release", "cpus"}), files
    under their own path (``proc/cpuinfo``, ``etc/nv_tegra_release``) and the output of each program as
    ``commands/<program>.txt`` (detect.py runs every program with one fixed set of arguments)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.facts = json.loads((self.folder / "system.json").read_text())

    def system(self) -> str:
        return self.facts["system"]

    def machine(self) -> str:
        return self.facts["machine"]

    def release(self) -> str:
        return self.facts.get("release", "")

    def cpus_available(self) -> int:
        return int(self.facts["cpus"])

    def read(self, path: str) -> str | None:
        recorded = self.folder / path.lstrip("/")
        return recorded.read_text() if recorded.is_file() else None

    def run(self, command: list[str]) -> str | None:
        recorded = self.folder / "commands" / f"{command[0]}.txt"
        return recorded.read_text() if recorded.is_file() else None


# ------------------------------------------------------------------------------------------------- CPU

@dataclass(frozen=True)
class Cpu:
    model: str
    architecture: str  # "x86_64" or "arm64"
    cores: int  # CPUs this process may run on
    features: tuple[str, ...]  # of the ones llama.cpp cares about: AVX2, AVX512, AMX, F16C, FMA, NEON, ...

    def has(self, feature: str) -> bool:
        return feature in self.features


# /proc/cpuinfo flag (x86 "flags", arm64 "Features") -> the name llama.cpp's system info prints
_LINUX_FLAGS = {"avx": "AVX", "avx2": "AVX2", "f16c": "F16C", "fma": "FMA", "avx512f": "AVX512",
                "avx512_vnni": "AVX512_VNNI", "avx512_bf16": "AVX512_BF16", "avx_vnni": "AVX_VNNI",
                "amx_tile": "AMX", "amx_int8": "AMX_INT8", "amx_bf16": "AMX_BF16",
                "asimd": "NEON", "asimddp": "DOTPROD", "i8mm": "MATMUL_INT8", "sve": "SVE", "sve2": "SVE2",
                "asimdhp": "FP16_VA", "bf16": "BF16"}
_SYSCTL_FLAGS = {"hw.optional.AdvSIMD": "NEON", "hw.optional.arm.FEAT_DotProd": "DOTPROD",
                 "hw.optional.arm.FEAT_I8MM": "MATMUL_INT8", "hw.optional.arm.FEAT_BF16": "BF16",
                 "hw.optional.avx2_0": "AVX2", "hw.optional.avx512f": "AVX512"}
_ARM_PARTS = {"0xd0b": "Cortex-A76", "0xd41": "Cortex-A78", "0xd42": "Cortex-A78AE", "0xd08": "Cortex-A72",
              "0xd03": "Cortex-A53", "0xd05": "Cortex-A55", "0xd40": "Neoverse-V1", "0xd4f": "Neoverse-V2",
              "0xd0c": "Neoverse-N1"}


def parse_cpuinfo(text: str, architecture: str, cores: int) -> Cpu:
    """Linux /proc/cpuinfo: x86 names its model and ``flags``; arm64 has ``Features`` and a part number."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    flags = (fields.get("flags") or fields.get("Features") or "").split()
    features = sorted({_LINUX_FLAGS[flag] for flag in flags if flag in _LINUX_FLAGS})
    model = fields.get("model name") or _arm_model(fields) or platform.processor() or "unknown"
    return Cpu(model=model, architecture=_normal_arch(architecture), cores=cores, features=tuple(features))


def _arm_model(fields: dict[str, str]) -> str | None:
    part = fields.get("CPU part", "").lower()
    return _ARM_PARTS.get(part, f"Arm part {part}") if part else fields.get("Model")


def parse_sysctl(text: str) -> dict[str, str]:
    """``sysctl KEY ...`` lines: ``hw.memsize: 17179869184``."""
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            values[key.strip()] = value.strip()
    return values


def cpu_from_sysctl(values: dict[str, str], architecture: str) -> Cpu:
    features = sorted({name for key, name in _SYSCTL_FLAGS.items() if values.get(key) == "1"})
    return Cpu(model=values.get("machdep.cpu.brand_string", "unknown"), architecture=_normal_arch(architecture),
               cores=int(values.get("hw.logicalcpu", "1")), features=tuple(features))


def _normal_arch(machine: str) -> str:
    return {"aarch64": "arm64", "amd64": "x86_64", "x64": "x86_64"}.get(machine.lower(), machine.lower())


# ---------------------------------------------------------------------------------------------- memory

@dataclass(frozen=True)
class Memory:
    total: int
    available: int


def parse_meminfo(text: str) -> Memory:
    values = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts:
            values[key] = int(parts[0]) * 1024
    available = values.get("MemAvailable", values.get("MemFree", 0) + values.get("Cached", 0))
    return Memory(total=values.get("MemTotal", 0), available=available)


def parse_vm_stat(text: str, total: int) -> Memory:
    """macOS ``vm_stat``: free + inactive + speculative + purgeable pages are available to a new process."""
    page = int(re.search(r"page size of (\d+) bytes", text).group(1)) if "page size of" in text else 16384
    pages = {}
    for line in text.splitlines():
        match = re.match(r'^"?([^":]+)"?:\s+(\d+)\.?$', line.strip())
        if match:
            pages[match.group(1)] = int(match.group(2))
    free = sum(pages.get(name, 0) for name in ("Pages free", "Pages inactive", "Pages speculative",
                                                 "Pages purgeable"))
    return Memory(total=total, available=free * page)


# ------------------------------------------------------------------------------------------------ GPUs

@dataclass(frozen=True)
class Gpu:
    vendor: str  # "NVIDIA" or "Apple"
    name: str
    memory_total: int | None  # bytes; None where the memory is the system's (Apple, Jetson)
    memory_free: int | None
    driver: str = ""
    compute_capability: str = ""  # NVIDIA: "8.9"; Jetson Orin: "8.7"
    cores: int | None = None  # Apple: GPU cores
    metal: str = ""  # Apple: the Metal family system_profiler reports


def parse_nvidia_smi(text: str) -> list[Gpu]:
    """Rows of ``name, memory.total [MiB], memory.free [MiB], driver_version, compute_cap``."""
    gpus = []
    for row in text.strip().splitlines():
        cells = [cell.strip() for cell in row.split(",")]
        if len(cells) < 4 or not cells[0]:
            continue
        gpus.append(Gpu(vendor="NVIDIA", name=cells[0], memory_total=_mib(cells[1]), memory_free=_mib(cells[2]),
                        driver=cells[3], compute_capability=cells[4] if len(cells) > 4 else ""))
    return gpus


def _mib(text: str) -> int | None:
    """nvidia-smi prints ``[N/A]`` (or ``[Not Supported]``) where a Jetson's memory is the system's."""
    return int(float(text)) * 1024 * 1024 if re.fullmatch(r"\d+(\.\d+)?", text) else None


def parse_system_profiler_displays(text: str) -> list[Gpu]:
    """``system_profiler SPDisplaysDataType -json``: Apple GPUs list their core count and Metal family."""
    try:
        entries = json.loads(text).get("SPDisplaysDataType", [])
    except (json.JSONDecodeError, AttributeError):
        return []
    gpus = []
    for entry in entries:
        name = entry.get("sppci_model") or entry.get("_name", "unknown GPU")
        cores = entry.get("sppci_cores")
        metal = entry.get("spdisplays_mtlgpufamilysupport", "").replace("spdisplays_", "")
        gpus.append(Gpu(vendor=entry.get("spdisplays_vendor", "").replace("sppci_vendor_", "") or "Apple",
                        name=name, memory_total=None, memory_free=None,
                        cores=int(cores) if str(cores).isdigit() else None, metal=metal))
    return gpus


# ----------------------------------------------------------------------------------------------- board

@dataclass(frozen=True)
class Board:
    model: str  # /proc/device-tree/model: "NVIDIA Jetson Orin Nano Developer Kit", "Raspberry Pi 5 ..."
    l4t: str = ""  # Jetson Linux release, "36.4.3"
    jetpack: str = ""  # the JetPack that ships that L4T, "6.2"

    @property
    def is_jetson(self) -> bool:
        return "jetson" in self.model.lower() or bool(self.l4t)

    @property
    def is_raspberry_pi(self) -> bool:
        return "raspberry pi" in self.model.lower()


# NVIDIA's JetPack archive: the L4T (Jetson Linux) release each JetPack ships
_JETPACK_FOR_L4T = {"36.4.4": "6.2.1", "36.4.3": "6.2", "36.4": "6.1", "36.3": "6.0", "36.2": "6.0 DP",
                    "35.6": "5.1.4", "35.5": "5.1.3", "35.4.1": "5.1.2", "35.3.1": "5.1.1", "35.2.1": "5.1",
                    "35.1": "5.0.2", "32.7.5": "4.6.5", "32.7.4": "4.6.4", "32.7.3": "4.6.3", "32.7.2": "4.6.2",
                    "32.7.1": "4.6.1", "32.6.1": "4.6"}


def parse_device_tree_model(raw: str) -> str:
    return raw.replace("\x00", "").strip()


def parse_nv_tegra_release(text: str) -> str:
    """``# R36 (release), REVISION: 4.3, GCID: ...`` -> ``36.4.3``."""
    match = re.search(r"#\s*R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text)
    return f"{match.group(1)}.{match.group(2)}" if match else ""


def jetpack_for(l4t: str) -> str:
    parts = l4t.split(".")
    for length in range(len(parts), 1, -1):
        release = ".".join(parts[:length])
        if release in _JETPACK_FOR_L4T:
            return _JETPACK_FOR_L4T[release]
    return ""


def parse_os_release(text: str) -> str:
    values = dict(re.findall(r'^(\w+)="?([^"\n]*)"?$', text, flags=re.MULTILINE))
    return values.get("PRETTY_NAME", values.get("NAME", ""))


# ------------------------------------------------------------------------------- llama.cpp's backends

@dataclass(frozen=True)
class BackendDevice:
    name: str  # "CPU", "CUDA0", "Metal", "Vulkan0"
    description: str
    type: str  # "CPU", "GPU", "IGPU", "ACCEL"
    memory_free: int
    memory_total: int


_DEVICE_TYPES = {0: "CPU", 1: "GPU", 2: "IGPU", 3: "ACCEL", 4: "META"}


def read_backend_devices(lib: Any) -> list[BackendDevice]:
    """Every device llama.cpp's build registered (``ggml_backend_dev_*``), the ones a model can use."""
    lib.ggml_backend_load_all()
    devices = []
    for index in range(lib.ggml_backend_dev_count()):
        device = lib.ggml_backend_dev_get(index)
        free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
        lib.ggml_backend_dev_memory(device, ctypes.byref(free), ctypes.byref(total))
        devices.append(BackendDevice(
            name=_text(lib.ggml_backend_dev_name(device)), description=_text(lib.ggml_backend_dev_description(device)),
            type=_DEVICE_TYPES.get(lib.ggml_backend_dev_type(device), "unknown"),
            memory_free=int(free.value), memory_total=int(total.value)))
    return devices


def _text(value: bytes | str | None) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else (value or "")


def ggml_library() -> Any:
    """libggml with the prototypes ``read_backend_devices`` calls."""
    from llama_cpp._ggml import libggml

    size_p = ctypes.POINTER(ctypes.c_size_t)
    prototypes: dict[str, tuple[list, Any]] = {
        "ggml_backend_load_all": ([], None), "ggml_backend_dev_count": ([], ctypes.c_size_t),
        "ggml_backend_dev_get": ([ctypes.c_size_t], ctypes.c_void_p),
        "ggml_backend_dev_name": ([ctypes.c_void_p], ctypes.c_char_p),
        "ggml_backend_dev_description": ([ctypes.c_void_p], ctypes.c_char_p),
        "ggml_backend_dev_type": ([ctypes.c_void_p], ctypes.c_int),
        "ggml_backend_dev_memory": ([ctypes.c_void_p, size_p, size_p], None),
    }
    for name, (argtypes, restype) in prototypes.items():
        function = getattr(libggml, name)
        function.argtypes, function.restype = argtypes, restype
    return libggml


def parse_system_info(text: str) -> dict[str, dict[str, str]]:
    """``llama_print_system_info``: ``CPU : SSE3 = 1 | AVX2 = 1 | ... | CUDA : ARCHS = 870 | ...``."""
    backends: dict[str, dict[str, str]] = {}
    current = None
    for part in text.split("|"):
        part = part.strip()
        if not part:
            continue
        if " : " in part:
            backend, _, part = part.partition(" : ")
            current = backends.setdefault(backend.strip(), {})
        if current is None:
            continue
        key, _, value = part.partition("=")
        current[key.strip()] = value.strip()
    return backends


# ------------------------------------------------------------------------------------------- repacking

# ggml-cpu/repack.cpp (ggml_repack_get_optimal_repack_type): weight types repacked on each ISA
_REPACK_X86_AVX2 = frozenset({"Q4_0", "Q4_K", "IQ4_NL", "MXFP4"})
_REPACK_ARM_DOTPROD = frozenset({"Q4_0", "Q4_K", "Q5_K", "Q6_K", "IQ4_NL", "MXFP4", "Q8_0"})


def repack_types_for(cpu_features: tuple[str, ...] | frozenset[str], repacking_on: bool) -> frozenset[str]:
    if not repacking_on:
        return frozenset()
    features = set(cpu_features)
    types: set[str] = set()
    if "AVX2" in features:
        types |= _REPACK_X86_AVX2 | ({"Q2_K"} if "AVX512" in features else set())
    if "DOTPROD" in features:
        types |= _REPACK_ARM_DOTPROD
    return frozenset(types)


# --------------------------------------------------------------------------------------------- gather

@dataclass(frozen=True)
class Machine:
    os: str
    cpu: Cpu
    memory: Memory
    gpus: tuple[Gpu, ...] = ()
    board: Board | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def unified_memory(self) -> bool:
        return bool(self.board and self.board.is_jetson) or (
            self.cpu.architecture == "arm64" and any(gpu.vendor == "Apple" for gpu in self.gpus))


def detect_machine(sources: Sources | None = None) -> Machine:
    sources = sources or Sources()
    if sources.system() == "Darwin":
        return _detect_macos(sources)
    return _detect_linux(sources)


def _detect_linux(sources: Sources) -> Machine:
    notes = []
    cpu = parse_cpuinfo(sources.read("/proc/cpuinfo") or "", sources.machine(), sources.cpus_available())
    memory = parse_meminfo(sources.read("/proc/meminfo") or "")
    smi = sources.run(NVIDIA_SMI_QUERY)
    gpus = parse_nvidia_smi(smi) if smi else []
    board = _board(sources)
    if smi is None and board is None:
        notes.append("nvidia-smi not found or failed: no NVIDIA driver visible")
    elif smi is None and board.is_jetson:
        notes.append("no nvidia-smi (Jetson Linux before JetPack 6 ships none): the GPU shows as llama.cpp's device")
    distro = parse_os_release(sources.read("/etc/os-release") or "")
    os_name = f"Linux {sources.release()}" + (f" ({distro})" if distro else "")
    return Machine(os=os_name, cpu=cpu, memory=memory, gpus=tuple(gpus), board=board, notes=tuple(notes))


def _board(sources: Sources) -> Board | None:
    model = parse_device_tree_model(sources.read("/proc/device-tree/model") or "")
    l4t = parse_nv_tegra_release(sources.read("/etc/nv_tegra_release") or "")
    if not model and not l4t:
        return None
    return Board(model=model or "NVIDIA Jetson (model unknown)", l4t=l4t, jetpack=jetpack_for(l4t) if l4t else "")


def _detect_macos(sources: Sources) -> Machine:
    values = parse_sysctl(sources.run(["sysctl", *SYSCTL_KEYS]) or "")
    total = int(values.get("hw.memsize", "0"))
    memory = parse_vm_stat(sources.run(["vm_stat"]) or "", total)
    cpu = cpu_from_sysctl(values, sources.machine())
    gpus = parse_system_profiler_displays(sources.run(["system_profiler", "SPDisplaysDataType", "-json"]) or "")
    version = (sources.run(["sw_vers", "-productVersion"]) or "").strip()
    return Machine(os=f"macOS {version}".strip(), cpu=cpu, memory=memory, gpus=tuple(gpus))


def measure_bandwidth_quick(threads: int) -> float:
    """Bytes/s read by numpy over a 256 MiB buffer, median of 3 (edge.bench.bandwidth)."""
    from edge.bench.bandwidth import measure_bandwidth

    return float(measure_bandwidth(threads=threads, buffer_mib=256, repeats=3)["bytes_per_s"]["median"])


