"""`edge doctor` on machines we do not have: recorded inputs under tests/fixtures/devices (see its README)."""

from __future__ import annotations

import ctypes
import json
from pathlib import Path

import pytest

from edge.device.detect import (BackendDevice, RecordedSources, detect_machine, ggml_library, jetpack_for,
                                parse_cpuinfo, parse_meminfo, parse_nv_tegra_release, parse_nvidia_smi,
                                parse_system_info, parse_system_profiler_displays, parse_vm_stat,
                                read_backend_devices, repack_types_for)
from edge.device.doctor import build_report, choose_profile, format_report, machine_budget
from edge.runtime.hardware import ExtraBuffers, decide_extra_buffers

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "devices"
GIB = 1024**3


def recorded(name: str):
    folder = FIXTURES / name
    devices = [BackendDevice(**device) for device in json.loads((folder / "backend_devices.json").read_text())]
    registered_file = folder / "extra_buffer_types.json"
    registered = tuple(json.loads(registered_file.read_text())) if registered_file.exists() else ("CPU_REPACK",)
    return (RecordedSources(folder), devices, (folder / "system_info.txt").read_text(),
            decide_extra_buffers(ExtraBuffers.AUTO, registered))


def report_for(name: str):
    sources, devices, system_info, repacking = recorded(name)
    return build_report(sources, devices, system_info, repacking, bandwidth=False)


# ------------------------------------------------------------------------------------ whole machines

MACHINES = {
    # name: (os prefix, cpu model, features present, features absent, cores, total GiB, gpu, board, profile)
    "jetson-orin-nano-super": ("Linux 5.15.148-tegra (Ubuntu 22.04.5 LTS)", "Cortex-A78AE", {"NEON", "DOTPROD"},
                               {"MATMUL_INT8", "AVX2"}, 6, 7.44, "Orin (nvgpu)",
                               ("NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super", "36.4.3", "6.2"),
                               "jetson-orin-nano-8gb"),
    "jetson-agx-orin-32gb": ("Linux 5.10.120-tegra (Ubuntu 20.04.6 LTS)", "Cortex-A78AE", {"NEON", "DOTPROD"},
                             {"SVE"}, 8, 30.48, None, ("Jetson AGX Orin Developer Kit", "35.4.1", "5.1.2"),
                             "jetson-agx-orin-32gb"),
    "raspberry-pi-5-8gb": ("Linux 6.6.51+rpt-rpi-2712 (Debian GNU/Linux 12 (bookworm))", "Cortex-A76",
                           {"NEON", "DOTPROD"}, {"MATMUL_INT8"}, 4, 7.86, None,
                           ("Raspberry Pi 5 Model B Rev 1.0", "", ""), "raspberry-pi-5-8gb"),
    "linux-rtx4090": ("Linux 6.8.0-45-generic (Ubuntu 24.04.1 LTS)", "AMD Ryzen 9 7950X 16-Core Processor",
                      {"AVX2", "AVX512", "AVX512_BF16", "FMA", "F16C"}, {"AMX", "NEON"}, 32, 62.5,
                      "NVIDIA GeForce RTX 4090", None, "laptop-cpu"),
    "xeon-sapphire-rapids-amx": ("Linux 6.1.0-25-cloud-amd64 (Debian GNU/Linux 12 (bookworm))",
                                 "Intel(R) Xeon(R) Platinum 8480+", {"AMX", "AMX_INT8", "AVX512", "AVX2"}, {"NEON"},
                                 8, 31.35, None, None, "laptop-cpu"),
    "macbook-pro-m2-pro-16gb": ("macOS 14.6.1", "Apple M2 Pro", {"NEON", "DOTPROD", "MATMUL_INT8", "BF16"},
                                {"AVX2"}, 10, 16.0, "Apple M2 Pro", None, "apple-silicon-16gb"),
}


@pytest.mark.parametrize("name", sorted(MACHINES))
def test_each_recorded_machine_is_detected(name):
    os_name, cpu_model, present, absent, cores, total_gib, gpu, board, profile = MACHINES[name]
    machine = detect_machine(RecordedSources(FIXTURES / name))
    assert machine.os == os_name
    assert machine.cpu.model == cpu_model and machine.cpu.cores == cores
    assert present <= set(machine.cpu.features) and not absent & set(machine.cpu.features)
    assert machine.memory.total / GIB == pytest.approx(total_gib, abs=0.01)
    assert 0 < machine.memory.available <= machine.memory.total
    assert [item.name for item in machine.gpus] == ([gpu] if gpu else [])
    if board is None:
        assert machine.board is None
    else:
        assert (machine.board.model, machine.board.l4t, machine.board.jetpack) == board
    assert choose_profile(machine)[0] == profile


@pytest.mark.parametrize("name, model, ctx, gpu_layers, command_tail", [
    ("jetson-orin-nano-super", "gemma-4-e4b-qat:Q4_0", 4096, 99, "--profile jetson-orin-nano-8gb"),
    ("jetson-agx-orin-32gb", "gemma-4-e4b:Q4_K_M", 32768, 99, "--profile jetson-agx-orin-32gb"),
    ("raspberry-pi-5-8gb", "gemma-4-e4b-qat:Q4_0", 4096, 0, "--profile raspberry-pi-5-8gb"),
    ("linux-rtx4090", "gemma-4-e4b:Q4_K_M", 8192, 99, "--profile laptop-cpu --n-gpu-layers 99"),
    ("xeon-sapphire-rapids-amx", "gemma-4-e4b:Q4_K_M", 8192, 0, "--profile laptop-cpu"),
    ("macbook-pro-m2-pro-16gb", "gemma-4-e4b:Q4_K_M", 32768, 99, "--profile apple-silicon-16gb"),
])
def test_each_recorded_machine_gets_a_recommendation_its_memory_holds(name, model, ctx, gpu_layers, command_tail):
    recommendation = report_for(name).recommendation
    assert (recommendation.model, recommendation.ctx_size, recommendation.n_gpu_layers) == (model, ctx, gpu_layers)
    assert recommendation.command == f"edge pull {model} && edge serve --model {model} {command_tail}"
    assert any(" plans " in reason for reason in recommendation.reasons)


def recommend_for_a_pi_with(available_gib: float):
    """The recorded Raspberry Pi 5, as if only ``available_gib`` of its memory were free."""
    from edge.device.doctor import recommend

    sources, devices, system_info, repacking = recorded("raspberry-pi-5-8gb")
    report = build_report(sources, devices, system_info, repacking, bandwidth=False)
    machine = report.machine.__class__(**{**report.machine.__dict__, "memory": report.machine.memory.__class__(
        8 * GIB, int(available_gib * GIB))})
    return recommend(machine, tuple(devices), report.repack_types)


def test_a_machine_too_small_for_the_profile_gets_a_smaller_context_or_model():
    squeezed = recommend_for_a_pi_with(3.72)
    assert squeezed.model == "gemma-4-e4b-qat:Q4_0" and 256 <= squeezed.ctx_size < 4096
    assert f"--ctx-size {squeezed.ctx_size}" in squeezed.command
    starved = recommend_for_a_pi_with(1)
    assert starved.model == "gemma-4-e2b" and starved.ctx_size is None


def test_the_conversation_cache_is_given_up_before_the_context():
    # 4.3 GiB free: the profile's plan is 4.8 GiB with the default 1 GiB --cache-ram, 3.8 without it
    recommendation = recommend_for_a_pi_with(4.3)
    assert recommendation.model == "gemma-4-e4b-qat:Q4_0" and recommendation.ctx_size == 4096
    assert "--cache-ram 0" in recommendation.command and "--ctx-size" not in recommendation.command


def test_amx_turns_repacking_off_and_the_report_says_why():
    report = report_for("xeon-sapphire-rapids-amx")
    assert report.repacking.enabled is False and "AMX" in report.repacking.reason
    assert report.repack_types == frozenset()
    text = format_report(report)
    assert "repacking:   off — auto: llama.cpp registered AMX" in text


def test_a_build_without_the_gpu_backend_says_how_to_reinstall():
    sources, devices, system_info, repacking = recorded("jetson-orin-nano-super")
    cpu_only = [device for device in devices if device.type == "CPU"]
    report = build_report(sources, cpu_only, system_info, repacking, bandwidth=False)
    assert report.recommendation.n_gpu_layers == 0
    assert any("scripts/install.sh --backend jetson" in reason for reason in report.recommendation.reasons)
    assert "--n-gpu-layers 0" in report.recommendation.command


def test_the_report_is_json_and_text_with_every_section():
    report = report_for("jetson-orin-nano-super")
    data = json.loads(json.dumps(report.to_dict()))
    assert data["machine"]["board"]["jetpack"] == "6.2"
    assert data["machine"]["unified_memory"] is True
    assert data["llama_cpp"]["build_features"]["CUDA"]["ARCHS"] == "870"
    assert data["llama_cpp"]["gpu_offload"] is True
    assert data["recommendation"]["profile"] == "jetson-orin-nano-8gb"
    text = format_report(report)
    for label in ("os:", "cpu:", "memory:", "gpu:", "board:", "llama.cpp:", "build:", "repacking:",
                  "recommendation:", "run: edge pull"):
        assert label in text
    assert "Jetson Linux 36.4.3 (JetPack 6.2)" in text


def test_budgets_follow_the_memory_architecture():
    sources, devices, *_ = recorded("linux-rtx4090")
    discrete = machine_budget(detect_machine(sources), devices)
    assert discrete.unified is False and discrete.device == 24870912000
    sources, devices, *_ = recorded("macbook-pro-m2-pro-16gb")
    apple = machine_budget(detect_machine(sources), devices)
    # macOS's vm_stat "available" (6.2 GiB) undercounts; Metal's working set is what the GPU may wire
    assert apple.unified is True and apple.device is None and apple.host == 11453251584
    sources, devices, *_ = recorded("raspberry-pi-5-8gb")
    pi = machine_budget(detect_machine(sources), devices)
    assert (pi.unified, pi.device, pi.host) == (False, None, detect_machine(sources).memory.available)


# ---------------------------------------------------------------------------------------- parsers

def test_nvidia_smi_rows_and_jetson_not_available_fields():
    gpus = parse_nvidia_smi("NVIDIA GeForce RTX 4090, 24564, 23719, 550.107.02, 8.9\n"
                            "NVIDIA RTX A2000 12GB, 12282, 12100, 550.107.02, 8.6\n")
    assert [(gpu.name, gpu.memory_total // 2**20, gpu.compute_capability) for gpu in gpus] == [
        ("NVIDIA GeForce RTX 4090", 24564, "8.9"), ("NVIDIA RTX A2000 12GB", 12282, "8.6")]
    (orin,) = parse_nvidia_smi("Orin (nvgpu), [N/A], [N/A], 540.4.0, 8.7")
    assert orin.memory_total is None and orin.memory_free is None and orin.driver == "540.4.0"
    assert parse_nvidia_smi("") == []


@pytest.mark.parametrize("release, l4t, jetpack", [
    ("# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, DATE: x", "36.4.3", "6.2"),
    ("# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic, EABI: aarch64, DATE: x", "36.4.0", "6.1"),
    ("# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64, DATE: x", "35.4.1", "5.1.2"),
    ("# R32 (release), REVISION: 7.4, GCID: 33514132, BOARD: t210ref, EABI: aarch64, DATE: x", "32.7.4", "4.6.4"),
    ("# R99 (release), REVISION: 1.0, GCID: 1, BOARD: x, EABI: aarch64, DATE: x", "99.1.0", ""),
])
def test_jetson_linux_release_maps_to_its_jetpack(release, l4t, jetpack):
    assert parse_nv_tegra_release(release) == l4t
    assert jetpack_for(l4t) == jetpack


def test_cpuinfo_without_model_name_names_the_arm_core():
    cpu = parse_cpuinfo("processor\t: 0\nFeatures\t: fp asimd asimddp i8mm sve\nCPU part\t: 0xd40\n", "aarch64", 64)
    assert (cpu.model, cpu.architecture) == ("Neoverse-V1", "arm64")
    assert {"NEON", "DOTPROD", "MATMUL_INT8", "SVE"} <= set(cpu.features)


def test_meminfo_without_memavailable_falls_back_to_free_plus_cache():
    memory = parse_meminfo("MemTotal: 1000 kB\nMemFree: 100 kB\nCached: 300 kB\n")
    assert (memory.total, memory.available) == (1000 * 1024, 400 * 1024)


def test_vm_stat_counts_free_inactive_speculative_and_purgeable_pages():
    text = (FIXTURES / "macbook-pro-m2-pro-16gb" / "commands" / "vm_stat.txt").read_text()
    memory = parse_vm_stat(text, 16 * GIB)
    assert memory.available == (55712 + 315544 + 12010 + 21095) * 16384


def test_system_profiler_reports_apple_gpu_cores_and_metal_family():
    text = (FIXTURES / "macbook-pro-m2-pro-16gb" / "commands" / "system_profiler.txt").read_text()
    (gpu,) = parse_system_profiler_displays(text)
    assert (gpu.vendor, gpu.name, gpu.cores, gpu.metal) == ("Apple", "Apple M2 Pro", 19, "metal3")
    assert parse_system_profiler_displays("not json") == []


def test_system_info_splits_backends_and_their_features():
    info = parse_system_info("CUDA : ARCHS = 870 | USE_GRAPHS = 1 | CPU : NEON = 1 | DOTPROD = 1 | REPACK = 1 |")
    assert info == {"CUDA": {"ARCHS": "870", "USE_GRAPHS": "1"}, "CPU": {"NEON": "1", "DOTPROD": "1", "REPACK": "1"}}


@pytest.mark.parametrize("features, on, expected", [
    (("AVX2", "FMA"), True, {"Q4_0", "Q4_K", "IQ4_NL", "MXFP4"}),
    (("AVX2", "AVX512"), True, {"Q4_0", "Q4_K", "IQ4_NL", "MXFP4", "Q2_K"}),
    (("NEON", "DOTPROD"), True, {"Q4_0", "Q4_K", "Q5_K", "Q6_K", "IQ4_NL", "MXFP4", "Q8_0"}),
    (("NEON",), True, set()),
    (("AVX2", "AMX"), False, set()),
])
def test_repacked_types_follow_ggml_cpu_repack(features, on, expected):
    assert repack_types_for(features, on) == frozenset(expected)


# ------------------------------------------------------------------------------- llama.cpp's devices

class RecordedGgml:
    """The ggml_backend_dev_* calls answered from a recorded device list (what a CUDA build returned)."""

    def __init__(self, devices: list[dict]):
        self.devices = devices
        self.loaded = False

    def ggml_backend_load_all(self):
        self.loaded = True

    def ggml_backend_dev_count(self):
        return len(self.devices)

    def ggml_backend_dev_get(self, index):
        return index

    def ggml_backend_dev_name(self, device):
        return self.devices[device]["name"].encode()

    def ggml_backend_dev_description(self, device):
        return self.devices[device]["description"].encode()

    def ggml_backend_dev_type(self, device):
        return {"CPU": 0, "GPU": 1, "IGPU": 2, "ACCEL": 3}[self.devices[device]["type"]]

    def ggml_backend_dev_memory(self, device, free, total):
        free._obj.value = self.devices[device]["memory_free"]
        total._obj.value = self.devices[device]["memory_total"]


@pytest.mark.parametrize("name", ["linux-rtx4090", "jetson-orin-nano-super", "macbook-pro-m2-pro-16gb"])
def test_backend_devices_are_read_through_the_ggml_calls(name):
    recorded_devices = json.loads((FIXTURES / name / "backend_devices.json").read_text())
    lib = RecordedGgml(recorded_devices)
    devices = read_backend_devices(lib)
    assert lib.loaded
    assert [device.__dict__ for device in devices] == recorded_devices


def test_this_machines_build_registers_at_least_its_cpu():
    devices = read_backend_devices(ggml_library())
    cpus = [device for device in devices if device.type == "CPU"]
    assert len(cpus) == 1 and cpus[0].name == "CPU"
    assert all(isinstance(device.memory_total, int) for device in devices)
    assert ctypes.sizeof(ctypes.c_size_t) == 8


def test_doctor_runs_on_this_machine(capsys):
    from edge.cli import main

    assert main(["doctor", "--json", "--no-bandwidth"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["recommendation"]["profile"] in {"laptop-cpu", "raspberry-pi-5-8gb", "apple-silicon-16gb",
                                                 "jetson-orin-nano-8gb", "jetson-agx-orin-32gb"}
    assert data["llama_cpp"]["backend_devices"]
    assert data["memory_bandwidth_bytes_per_s"] is None
