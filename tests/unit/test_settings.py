import argparse
from pathlib import Path

import pytest

from edge.runtime.hardware import ExtraBuffers
from edge.settings import ENVIRONMENT, Settings, SettingsError, settings_from


def test_defaults_without_flags_or_environment():
    settings = settings_from(argparse.Namespace(), environ={})
    assert settings.host == "127.0.0.1" and settings.port == 8080
    assert settings.ctx_size == 8192
    assert settings.extra_bufts is ExtraBuffers.AUTO
    assert settings.model is None


def test_environment_is_read_and_flags_win():
    environ = {"EDGE_PORT": "9000", "EDGE_CTX_SIZE": "4096", "EDGE_EXTRA_BUFTS": "off",
               "EDGE_PREFIX_CACHE": "false", "EDGE_CACHE_DIR": "/tmp/x"}
    settings = settings_from(argparse.Namespace(port=9100), environ=environ)
    assert settings.port == 9100
    assert settings.ctx_size == 4096
    assert settings.extra_bufts is ExtraBuffers.OFF
    assert settings.prefix_cache is False
    assert settings.cache_dir == Path("/tmp/x")


@pytest.mark.parametrize("environ, message", [
    ({"EDGE_PORT": "eighty"}, "EDGE_PORT"),
    ({"EDGE_EXTRA_BUFTS": "maybe"}, "EDGE_EXTRA_BUFTS"),
    ({"EDGE_PREFIX_CACHE": "perhaps"}, "EDGE_PREFIX_CACHE"),
    ({"EDGE_KV_TYPE": "q4_0"}, "kv_type"),
    ({"EDGE_CTX_SIZE": "10"}, "ctx_size"),
    ({"EDGE_CACHE_RAM": "-1"}, "cache_ram"),
    ({"EDGE_CACHE_RAM": "lots"}, "EDGE_CACHE_RAM"),
])
def test_bad_settings_are_named(environ, message):
    with pytest.raises(SettingsError, match=message):
        settings_from(None, environ=environ)


def test_every_environment_variable_maps_to_a_field():
    fields = set(Settings.__dataclass_fields__)
    assert {field for field, _ in ENVIRONMENT.values()} <= fields
    assert all(name.startswith("EDGE_") for name in ENVIRONMENT)
