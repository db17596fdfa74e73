"""Device profiles: TOML files in this package naming the settings that suit one kind of machine.

``edge serve --profile NAME`` (or ``EDGE_PROFILE``) layers a profile's ``[settings]`` under the flags and
environment variables and over the defaults. Its ``[device]`` table describes the machine the values were
chosen for, so ``edge plan --profile NAME`` can give the verdict for that machine instead of this one.
docs/devices.md justifies every value from the memory plan and public figures.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

GIB = 1024**3
# settings a profile may set: the ones that shape memory, speed and the image budget on a device
PROFILE_SETTINGS = ("threads", "ctx_size", "batch_size", "kv_type", "n_gpu_layers", "mmap", "mlock",
                    "parallel", "swa_full", "cache_ram", "image_max_count", "image_auto_tokens", "image_high_tokens",
                    "extra_bufts")


class ProfileError(ValueError):
    pass


@dataclass(frozen=True)
class DeviceSpec:
    memory_gib: float  # physical memory of the device
    reserved_gib: float  # what the operating system and desktop keep for themselves
    unified_memory: bool  # the GPU shares system memory (Apple Silicon, Jetson)
    accelerator: str  # the llama.cpp backend the profile expects: "cpu", "metal", "cuda", "vulkan"
    cpu_features: tuple[str, ...]  # decides which weight types the CPU backend repacks
    bandwidth_gb_s: float  # memory bandwidth (the decode ceiling), from the vendor's figures

    @property
    def budget_bytes(self) -> int:
        return int((self.memory_gib - self.reserved_gib) * GIB)


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    model: str  # the catalogue entry the profile is sized for, "gemma-4-e4b:Q4_K_M"
    device: DeviceSpec
    settings: Mapping[str, Any]


def profile_names() -> list[str]:
    folder = resources.files("edge.device") / "profiles"
    return sorted(Path(entry.name).stem for entry in folder.iterdir() if entry.name.endswith(".toml"))


def load_profile(name: str) -> Profile:
    """A packaged profile by name, or a TOML file by path (``--profile ./my-board.toml``)."""
    path = Path(name)
    if name.endswith(".toml") and path.is_file():
        return parse_profile(path.stem, path.read_text())
    entry = resources.files("edge.device") / "profiles" / f"{name}.toml"
    if not entry.is_file():
        raise ProfileError(f"unknown profile {name!r} (known: {', '.join(profile_names())})")
    return parse_profile(name, entry.read_text())


def parse_profile(name: str, text: str) -> Profile:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"profile {name}: {exc}") from exc
    unknown = set(data) - {"description", "model", "device", "settings"}
    if unknown:
        raise ProfileError(f"profile {name}: unknown table(s) {', '.join(sorted(unknown))}")
    return Profile(name=name, description=str(data.get("description", "")), model=str(data.get("model", "")),
                   device=_device(name, data.get("device", {})), settings=_settings(name, data.get("settings", {})))


def _device(name: str, table: dict[str, Any]) -> DeviceSpec:
    try:
        spec = DeviceSpec(memory_gib=float(table["memory_gib"]), reserved_gib=float(table["reserved_gib"]),
                          unified_memory=bool(table["unified_memory"]), accelerator=str(table["accelerator"]),
                          cpu_features=tuple(table["cpu_features"]), bandwidth_gb_s=float(table["bandwidth_gb_s"]))
    except KeyError as missing:
        raise ProfileError(f"profile {name}: [device] lacks {missing.args[0]}") from None
    if spec.accelerator not in ("cpu", "metal", "cuda", "vulkan"):
        raise ProfileError(f"profile {name}: accelerator must be cpu, metal, cuda or vulkan")
    return spec


def _settings(name: str, table: dict[str, Any]) -> dict[str, Any]:
    from edge.runtime.hardware import ExtraBuffers
    from edge.settings import Settings

    defaults = {field.name: field.default for field in fields(Settings)}
    values = {}
    for key, value in table.items():
        if key not in PROFILE_SETTINGS:
            raise ProfileError(f"profile {name}: {key!r} is not a setting a profile may set "
                               f"({', '.join(PROFILE_SETTINGS)})")
        default = defaults[key]
        if key == "extra_bufts":
            value = ExtraBuffers(value)
        elif type(value) is not type(default):
            raise ProfileError(f"profile {name}: {key} must be {type(default).__name__}, got {value!r}")
        values[key] = value
    return values
