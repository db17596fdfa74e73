"""``edge doctor``: this machine as llama.cpp will see it, and what to run on it.

The report gathers the OS, CPU model and features, memory, the GPUs the driver shows, a Jetson's model
and JetPack release, the devices llama.cpp's build registered, its build features, a quick memory
bandwidth figure and the weight-repacking (AMX) decision, then recommends a profile, a quantization, a
context size and the GPU layers by running the memory plan of Gemma 4 E4B against this machine.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from edge.device.detect import (GIB, BackendDevice, Machine, Sources, detect_machine, ggml_library,
                                measure_bandwidth_quick, parse_system_info, read_backend_devices,
                                repack_types_for)
from edge.device.plan import Budget, PlanConfig, verdict
from edge.device.profiles import Profile, load_profile
from edge.device.shape import KNOWN_ARCHITECTURES, ShapeError
from edge.runtime.hardware import ExtraBufferDecision, ExtraBuffers, extra_buffers_decision, llama_system_info

# what to try, best first, when the profile's model does not fit (catalogue names with a known shape)
FALLBACK_MODELS = ("gemma-4-e4b:Q4_K_M", "gemma-4-e4b-qat:Q4_0")
_GPU_DEVICE_TYPES = ("GPU", "IGPU")


@dataclass(frozen=True)
class Recommendation:
    profile: str
    model: str
    ctx_size: int | None
    n_gpu_layers: int
    reasons: tuple[str, ...]
    overrides: tuple[str, ...] = ()  # flags that differ from the profile's own values

    @property
    def command(self) -> str:
        flags = " ".join(self.overrides)
        return f"edge pull {self.model} && edge serve --model {self.model} --profile {self.profile}" + (
            f" {flags}" if flags else "")


@dataclass(frozen=True)
class Report:
    machine: Machine
    backend_devices: tuple[BackendDevice, ...]
    build_features: dict[str, dict[str, str]]
    gpu_offload: bool
    bandwidth_bytes_per_s: float | None
    repacking: ExtraBufferDecision
    repack_types: frozenset[str]
    recommendation: Recommendation

    def to_dict(self) -> dict[str, Any]:
        machine = asdict(self.machine)
        machine["unified_memory"] = self.machine.unified_memory
        return {
            "machine": machine,
            "llama_cpp": {"backend_devices": [asdict(device) for device in self.backend_devices],
                          "build_features": self.build_features, "gpu_offload": self.gpu_offload},
            "memory_bandwidth_bytes_per_s": self.bandwidth_bytes_per_s,
            "weight_repacking": {"enabled": self.repacking.enabled, "reason": self.repacking.reason,
                                 "repacked_types": sorted(self.repack_types)},
            "recommendation": {**asdict(self.recommendation), "command": self.recommendation.command},
        }


# --------------------------------------------------------------------------------------------- gather

def build_report(sources: Sources | None = None, backend_devices: list[BackendDevice] | None = None,
                 system_info: str | None = None, repacking: ExtraBufferDecision | None = None,
                 bandwidth: bool = True) -> Report:
    """This machine by default; tests hand in recorded sources, devices and system info."""
    machine = detect_machine(sources)
    devices = tuple(backend_devices if backend_devices is not None else read_backend_devices(ggml_library()))
    features = parse_system_info(system_info if system_info is not None else llama_system_info())
    repacking = repacking or extra_buffers_decision(ExtraBuffers.AUTO)
    repack_types = repack_types_for(machine.cpu.features, repacking.enabled and _build_repacks(features))
    measured = measure_bandwidth_quick(machine.cpu.cores) if bandwidth else None
    gpu_offload = any(device.type in _GPU_DEVICE_TYPES for device in devices)
    recommendation = recommend(machine, devices, repack_types)
    return Report(machine, devices, features, gpu_offload, measured, repacking, repack_types, recommendation)


def _build_repacks(features: dict[str, dict[str, str]]) -> bool:
    return features.get("CPU", {}).get("REPACK", "1") == "1"


def repack_types_here(choice: ExtraBuffers = ExtraBuffers.AUTO) -> frozenset[str]:
    """The weight types this machine's llama.cpp CPU backend will copy into repacked buffers."""
    decision = extra_buffers_decision(choice)
    features = parse_system_info(llama_system_info())
    return repack_types_for(detect_machine().cpu.features, decision.enabled and _build_repacks(features))


def machine_budget(machine: Machine, devices: tuple[BackendDevice, ...] | list[BackendDevice]) -> Budget:
    """Available system memory, and the free memory of the largest discrete GPU llama.cpp can use."""
    gpus = [device for device in devices if device.type in _GPU_DEVICE_TYPES and device.memory_total]
    unified = machine.unified_memory or any(device.type == "IGPU" for device in gpus)
    gpu_free = max((device.memory_free for device in gpus), default=None)
    if unified:
        # Metal reports the working set macOS lets the GPU wire, CUDA on a Jetson the kernel's MemAvailable:
        # both are what a unified-memory load may use, and macOS's own "available" undercounts it
        return Budget("this machine", host=max(machine.memory.available, gpu_free or 0), unified=True)
    return Budget("this machine", host=machine.memory.available, device=gpu_free)


# ------------------------------------------------------------------------------------------ recommend

def choose_profile(machine: Machine) -> tuple[str, str]:
    board = machine.board
    if board and board.is_jetson:
        model = board.model.lower()
        if "agx" in model:
            return "jetson-agx-orin-32gb", f"board: {board.model}"
        closest = "" if ("orin nano" in model or "orin nx" in model) else " (closest profile)"
        return "jetson-orin-nano-8gb", f"board: {board.model}{closest}"
    if board and board.is_raspberry_pi:
        return "raspberry-pi-5-8gb", f"board: {board.model}"
    if machine.os.startswith("macOS") and machine.cpu.architecture == "arm64":
        return "apple-silicon-16gb", f"Apple Silicon: {machine.cpu.model}"
    return "laptop-cpu", f"{machine.cpu.architecture} machine without a device profile of its own"


def recommend(machine: Machine, devices: tuple[BackendDevice, ...], repack_types: frozenset[str]) -> Recommendation:
    name, why = choose_profile(machine)
    profile = load_profile(name)
    reasons = [f"profile {name}: {why}"]
    gpu_layers, gpu_reason = _gpu_layers(profile, devices)
    reasons.append(gpu_reason)
    config = replace(_profile_config(profile, repack_types), n_gpu_layers=gpu_layers)
    budget = machine_budget(machine, devices)
    gpu_flag = () if gpu_layers == profile.settings.get("n_gpu_layers", 0) else (f"--n-gpu-layers {gpu_layers}",)
    for model in _candidates(profile.model):
        shape = _known_shape(model)
        for planned, flags in _leaner(config):
            result = verdict(shape, planned, budget)
            if result.fits:
                reasons.append(f"{model} at ctx {planned.ctx_size:,} plans {result.summary}")
                return Recommendation(name, model, planned.ctx_size, gpu_layers, tuple(reasons), (*flags, *gpu_flag))
        if result.largest_ctx:
            reasons.append(f"{model} fits only up to ctx {result.largest_ctx:,} here "
                           f"({result.used / GIB:.1f} GiB planned at {planned.ctx_size:,})")
            return Recommendation(name, model, result.largest_ctx, gpu_layers, tuple(reasons),
                                  (*flags, f"--ctx-size {result.largest_ctx}", *gpu_flag))
        reasons.append(f"{model} does not fit ({result.used / GIB:.1f} GiB planned, {result.limit / GIB:.1f} free)")
    reasons.append("Gemma 4 E4B does not fit in the free memory: try the smaller E2B")
    return Recommendation(name, "gemma-4-e2b", None, gpu_layers, tuple(reasons), gpu_flag)


def _leaner(config: PlanConfig) -> list[tuple[PlanConfig, tuple[str, ...]]]:
    """The profile's settings, then without the host-memory conversation cache: the first thing to give
    up, since it only saves re-evaluating conversations that lost their slot."""
    options = [(config, ())]
    if config.cache_ram_mib:
        options.append((replace(config, cache_ram_mib=0), ("--cache-ram 0",)))
    return options


def _gpu_layers(profile: Profile, devices: tuple[BackendDevice, ...]) -> tuple[int, str]:
    gpus = [device for device in devices if device.type in _GPU_DEVICE_TYPES]
    wanted = int(profile.settings.get("n_gpu_layers", 0))
    if gpus:
        return max(wanted, 99), f"llama.cpp can offload to {gpus[0].name} ({gpus[0].description}): all layers"
    if profile.device.accelerator != "cpu":
        return 0, (f"this llama.cpp build has no GPU backend: reinstall with "
                   f"scripts/install.sh --backend {_backend_for(profile)} to use the {profile.device.accelerator} GPU")
    return 0, "no GPU backend in this llama.cpp build: CPU only"


def _backend_for(profile: Profile) -> str:
    if profile.name.startswith("jetson"):
        return "jetson"
    return profile.device.accelerator


def _profile_config(profile: Profile, repack_types: frozenset[str]) -> PlanConfig:
    from edge.settings import Settings

    settings = Settings(**dict(profile.settings))
    return PlanConfig.from_settings(settings, repack_types)


def _candidates(first: str) -> list[str]:
    normal = _normal_model(first)
    return [normal] + [model for model in FALLBACK_MODELS if model != normal]


def _normal_model(spec: str) -> str:
    from edge.device.catalogue import lookup

    return lookup(spec).spec


def _known_shape(spec: str):
    from edge.device.catalogue import lookup

    named = lookup(spec)
    if named.entry.architecture not in KNOWN_ARCHITECTURES:
        raise ShapeError(f"{spec}: no known architecture to plan without the file")
    return KNOWN_ARCHITECTURES[named.entry.architecture](named.quant, name=named.spec)


# --------------------------------------------------------------------------------------------- format

def format_report(report: Report) -> str:
    machine = report.machine
    cpu = machine.cpu
    lines = ["edge doctor", f"  os:          {machine.os}, {cpu.architecture}",
             f"  cpu:         {cpu.model}, {cpu.cores} CPU(s) available; features: {' '.join(cpu.features) or 'none'}"
             f" ({_missing(cpu.features)})",
             f"  memory:      {machine.memory.total / GIB:.1f} GiB total, {machine.memory.available / GIB:.1f} GiB "
             f"available" + (" (unified with the GPU)" if machine.unified_memory else "")]
    for gpu in machine.gpus:
        memory = f", {gpu.memory_total / GIB:.1f} GiB ({gpu.memory_free / GIB:.1f} free)" if gpu.memory_total else ""
        name = gpu.name if gpu.name.startswith(gpu.vendor) else f"{gpu.vendor} {gpu.name}"
        extra = (f", driver {gpu.driver}" if gpu.driver else "") + (
            f", compute capability {gpu.compute_capability}" if gpu.compute_capability else "") + (
            f", {gpu.cores} cores" if gpu.cores else "") + (f", {gpu.metal}" if gpu.metal else "")
        lines.append(f"  gpu:         {name}{memory}{extra}")
    if not machine.gpus:
        lines.append("  gpu:         none visible to a driver")
    if machine.board:
        jetpack = f", Jetson Linux {machine.board.l4t} (JetPack {machine.board.jetpack or 'unknown'})" \
            if machine.board.l4t else ""
        lines.append(f"  board:       {machine.board.model}{jetpack}")
    lines.append("  llama.cpp:   devices " + (", ".join(
        f"{device.name} [{device.type}] {device.description}" for device in report.backend_devices) or "none"))
    lines.append("  build:       " + " | ".join(f"{backend}: " + " ".join(f"{key}={value}" for key, value in values.items())
                                                for backend, values in report.build_features.items()))
    if report.bandwidth_bytes_per_s:
        lines.append(f"  bandwidth:   {report.bandwidth_bytes_per_s / 1e9:.1f} GB/s read (numpy, {cpu.cores} threads)")
    lines.append(f"  repacking:   {'on' if report.repacking.enabled else 'off'} — {report.repacking.reason}"
                 + (f"; repacked types: {', '.join(sorted(report.repack_types))}" if report.repack_types else ""))
    for note in machine.notes:
        lines.append(f"  note:        {note}")
    rec = report.recommendation
    lines += ["", f"recommendation: profile {rec.profile}, {rec.model}, "
              + (f"ctx {rec.ctx_size:,}, " if rec.ctx_size else "") + f"GPU layers {rec.n_gpu_layers}"]
    lines += [f"  - {reason}" for reason in rec.reasons]
    lines.append(f"  run: {rec.command}")
    return "\n".join(lines)


def _missing(features: tuple[str, ...]) -> str:
    wanted = ("AVX2", "AVX512", "AMX") if "NEON" not in features else ("NEON", "DOTPROD", "MATMUL_INT8", "SVE")
    absent = [name for name in wanted if name not in features]
    return "no " + ", no ".join(absent) if absent else "all of " + ", ".join(wanted)
