"""The AMX policy really reaches llama.cpp: we read back which weight buffers a load used.

The crash needs an AMX build on an AMX CPU; whatever CPU runs this, registering AMX is simulated at
the one place the policy reads it, and the load must then use no extra buffer type at all.
"""

from __future__ import annotations

import platform

from edge.runtime import hardware, llama
from edge.runtime.hardware import ExtraBuffers

PLAIN_BUFFERS = {"CPU", "CPU_Mapped"}


def load_and_report(path, choice):
    with llama.captured_llama_log() as lines:
        model = llama.load_model(path, llama.LoadOptions(extra_buffers=choice))
    return model, llama.weight_buffers_from_log(lines)


def test_registered_amx_turns_every_extra_buffer_off(monkeypatch, demo_model_path):
    monkeypatch.setattr(hardware, "cpu_extra_buffer_types", lambda: ("AMX", "CPU_REPACK"))
    model, buffers = load_and_report(demo_model_path, ExtraBuffers.AUTO)
    assert buffers and set(buffers) <= PLAIN_BUFFERS, buffers
    # a multi-token batch on the quantized model: the case that crashes in llama.cpp's AMX kernels
    context = llama.new_context(model, llama.ContextOptions(n_ctx=512, n_batch=64))
    tokens = llama.tokenize(model, "The keeper climbed the stairs to light the lamp.", special=False, add_bos=True)
    logits = llama.prompt_logits(model, context, tokens, n_batch=64)
    assert logits.shape == (len(tokens), model.n_vocab())
    context.close()
    model.close()


def test_operator_can_force_repacking_off(demo_model_path):
    model, buffers = load_and_report(demo_model_path, ExtraBuffers.OFF)
    assert set(buffers) <= PLAIN_BUFFERS, buffers
    model.close()


def test_repacking_stays_on_where_it_is_safe(monkeypatch, demo_model_path):
    really_registered = hardware.cpu_extra_buffer_types()
    monkeypatch.setattr(hardware, "cpu_extra_buffer_types", lambda: ("CPU_REPACK",))
    assert hardware.extra_buffers_decision(ExtraBuffers.AUTO).enabled
    if platform.machine() == "x86_64" and really_registered == ("CPU_REPACK",):
        model, buffers = load_and_report(demo_model_path, ExtraBuffers.ON)
        assert "CPU_REPACK" in buffers, buffers  # Q4_K weights repacked for AVX2: the fast path is kept
        model.close()
