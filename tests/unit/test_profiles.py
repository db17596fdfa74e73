"""Device profiles: packaged TOML, layered under flags and environment and over the defaults, and sized so
that the model each one names fits the device it describes."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys

import pytest

from edge.device.detect import repack_types_for
from edge.device.plan import Budget, PlanConfig, verdict
from edge.device.profiles import PROFILE_SETTINGS, ProfileError, load_profile, parse_profile, profile_names
from edge.device.shape import KNOWN_ARCHITECTURES
from edge.settings import Settings, SettingsError, settings_from

REQUIRED = {"laptop-cpu", "apple-silicon-16gb", "jetson-orin-nano-8gb", "jetson-agx-orin-32gb", "raspberry-pi-5-8gb"}


def test_the_required_profiles_are_packaged():
    assert REQUIRED <= set(profile_names())


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_each_profile_sets_every_device_setting_with_valid_values(name):
    profile = load_profile(name)
    for key in ("threads", "ctx_size", "batch_size", "kv_type", "n_gpu_layers", "mmap", "mlock", "parallel",
                "image_max_count", "image_high_tokens"):
        assert key in profile.settings, f"{name} lacks {key}"
    settings = settings_from(argparse.Namespace(profile=name), environ={})
    assert settings.profile == name
    for key, value in profile.settings.items():
        assert getattr(settings, key) == value
    assert profile.device.memory_gib > profile.device.reserved_gib > 0
    assert profile.description and profile.model


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_each_profiles_model_fits_its_device_by_the_plan(name):
    from edge.device.catalogue import lookup

    profile = load_profile(name)
    named = lookup(profile.model)
    shape = KNOWN_ARCHITECTURES[named.entry.architecture](named.quant)
    settings = Settings(**dict(profile.settings))
    config = PlanConfig.from_settings(settings, repack_types_for(profile.device.cpu_features, True))
    budget = Budget(name, host=profile.device.budget_bytes, unified=profile.device.unified_memory)
    result = verdict(shape, config, budget)
    assert result.fits, f"{name}: {result.summary}"
    assert result.largest_ctx >= settings.ctx_size


def test_flags_beat_environment_beat_profile_beat_defaults():
    environ = {"EDGE_PROFILE": "raspberry-pi-5-8gb", "EDGE_BATCH_SIZE": "64"}
    settings = settings_from(argparse.Namespace(ctx_size=2048), environ=environ)
    assert settings.ctx_size == 2048  # flag over the profile's 4096
    assert settings.batch_size == 64  # environment over the profile's 128
    assert settings.kv_type == "q8_0" and settings.threads == 4  # the profile over the defaults
    assert settings.port == 8080  # untouched: the default
    flag_profile = settings_from(argparse.Namespace(profile="laptop-cpu"), environ=environ)
    assert flag_profile.profile == "laptop-cpu" and flag_profile.kv_type == "f16"


def test_an_unknown_profile_is_a_settings_error_naming_the_known_ones():
    with pytest.raises(SettingsError, match="unknown profile 'toaster'.*laptop-cpu"):
        settings_from(argparse.Namespace(profile="toaster"), environ={})


@pytest.mark.parametrize("text, message", [
    ('[device]\nmemory_gib=8\nreserved_gib=1\nunified_memory=false\naccelerator="cpu"\ncpu_features=[]\n'
     'bandwidth_gb_s=10\n[settings]\nport = 80\n', "'port' is not a setting a profile may set"),
    ('[device]\nmemory_gib=8\nreserved_gib=1\nunified_memory=false\naccelerator="cpu"\ncpu_features=[]\n'
     'bandwidth_gb_s=10\n[settings]\nctx_size = "big"\n', "ctx_size must be int"),
    ('[device]\nmemory_gib=8\n', "lacks reserved_gib"),
    ('[device]\nmemory_gib=8\nreserved_gib=1\nunified_memory=false\naccelerator="tpu"\ncpu_features=[]\n'
     'bandwidth_gb_s=10\n', "accelerator must be"),
    ("[sound]\nvolume = 11\n", "unknown table(s) sound"),
    ("not toml = = =", "profile bad: "),
])
def test_bad_profiles_are_refused_with_the_reason(text, message):
    with pytest.raises(ProfileError, match=re.escape(message)):
        parse_profile("bad", text)


def test_a_profile_file_path_is_accepted(tmp_path):
    custom = tmp_path / "my-board.toml"
    custom.write_text('[device]\nmemory_gib=4\nreserved_gib=0.5\nunified_memory=false\naccelerator="cpu"\n'
                      'cpu_features=["NEON","DOTPROD"]\nbandwidth_gb_s=8.5\n[settings]\nctx_size=2048\nthreads=4\n')
    settings = settings_from(argparse.Namespace(profile=str(custom)), environ={})
    assert (settings.ctx_size, settings.threads) == (2048, 4)


def test_profile_settings_are_settings_fields():
    assert set(PROFILE_SETTINGS) <= set(Settings.__dataclass_fields__)


def test_plan_for_a_profile_uses_its_device_and_model():
    result = subprocess.run([sys.executable, "-m", "edge.cli", "plan", "--profile", "jetson-orin-nano-8gb", "--json"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["model"] == "gemma-4-e4b-qat:Q4_0" and plan["source"] == "known architecture (no file read)"
    assert plan["config"]["kv_type"] == "q8_0" and plan["config"]["batch_size"] == 256
    assert plan["gpu_layers"] == 43
    assert plan["verdict"]["budget"]["unified"] is True and plan["verdict"]["fits"] is True
