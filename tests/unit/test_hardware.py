"""The AMX policy, tested on injected registrations so it holds whatever CPU runs the tests."""

import pytest

from edge.runtime.hardware import ExtraBuffers, cpu_extra_buffer_types, decide_extra_buffers


@pytest.mark.parametrize("registered, enabled", [
    (("AMX", "CPU_REPACK"), False),
    (("AMX",), False),
    (("CPU_REPACK",), True),
    (("CPU_KLEIDIAI", "CPU_REPACK"), True),
    ((), True),
])
def test_auto_turns_repacking_off_only_where_amx_is_registered(registered, enabled):
    decision = decide_extra_buffers(ExtraBuffers.AUTO, registered)
    assert decision.enabled is enabled
    if not enabled:
        assert "AMX" in decision.reason


@pytest.mark.parametrize("registered", [("AMX", "CPU_REPACK"), ("CPU_REPACK",), ()])
def test_explicit_choice_wins_over_detection(registered):
    assert decide_extra_buffers(ExtraBuffers.ON, registered).enabled is True
    assert decide_extra_buffers(ExtraBuffers.OFF, registered).enabled is False


def test_probe_reads_ggml_registrations():
    names = cpu_extra_buffer_types()
    assert isinstance(names, tuple)
    assert all(isinstance(name, str) and name for name in names)
    assert len(set(names)) == len(names)
