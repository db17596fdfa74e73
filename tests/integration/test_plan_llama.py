"""The plan's KV, output and compute terms against the buffers llama.cpp itself reports allocating.

Contexts are created the way the engine's KV layout is specified — one unified cache of
``ctx_size x parallel`` cells, ``n_seq_max = parallel``, ``swa_full`` on or off, K and V at ``--kv-type`` —
on the demo model (Gemma 3: 18 layers, every 6th global) and the tiny Gemma 4 (sliding and global layers
with different head sizes, two KV-shared layers), and llama.cpp's log lines are compared with the plan.
"""

from __future__ import annotations

import re

import llama_cpp
import pytest
from llama_cpp import _internals

from edge.device.plan import MIB, PlanConfig, layer_phase_bytes, plan_memory
from edge.device.shape import shape_from_gguf
from edge.runtime.llama import KV_CACHE_TYPES, LoadOptions, captured_llama_log, load_model


def llama_buffers(model, ctx_size: int, parallel: int, batch: int, kv_type: str, swa_full: bool) -> dict:
    params = llama_cpp.llama_context_default_params()
    params.n_ctx = ctx_size * parallel
    params.n_seq_max = parallel
    params.kv_unified = True
    params.n_batch = params.n_ubatch = batch
    params.n_threads = params.n_threads_batch = 1
    params.type_k = params.type_v = KV_CACHE_TYPES[kv_type]
    params.swa_full = swa_full
    with captured_llama_log() as lines:
        context = _internals.LlamaContext(model=model, params=params, verbose=False)
        context.close()
    text = "\n".join(lines)
    return {
        "kv": sum(float(size) for size in re.findall(r"KV buffer size =\s+([\d.]+) MiB", text)),
        "output": float(re.search(r"output buffer size =\s+([\d.]+) MiB", text).group(1)),
        "compute": float(re.search(r"compute buffer size =\s+([\d.]+) MiB", text).group(1)),
        "cells": [int(cells) for cells in re.findall(r"KV cache, size = (\d+) cells", text)],
    }


@pytest.fixture(scope="module")
def models(demo_model_path, gemma4_models):
    loaded = {}
    for name, path in (("demo", demo_model_path), ("tiny", gemma4_models.text_gguf)):
        loaded[name] = (load_model(path, LoadOptions()), shape_from_gguf(path))
    yield loaded
    for model, _ in loaded.values():
        model.close()


CASES = [
    ("demo", 2048, 1, 512, "f16", True),
    ("demo", 4096, 4, 512, "f16", True),
    ("demo", 8192, 2, 256, "q8_0", False),
    ("demo", 1000, 1, 512, "f32", False),
    ("tiny", 4096, 1, 512, "f16", True),
    ("tiny", 2048, 4, 128, "f16", False),
    ("tiny", 32768, 1, 512, "q8_0", True),
]


@pytest.mark.parametrize("name, ctx_size, parallel, batch, kv_type, swa_full", CASES)
def test_kv_and_output_buffers_are_exactly_what_llama_cpp_allocates(models, name, ctx_size, parallel, batch,
                                                                     kv_type, swa_full):
    model, shape = models[name]
    actual = llama_buffers(model, ctx_size, parallel, batch, kv_type, swa_full)
    config = PlanConfig(ctx_size=ctx_size, parallel=parallel, batch_size=batch, kv_type=kv_type, swa_full=swa_full)
    plan = plan_memory(shape, config)
    terms = {term.name: term for term in plan.terms}
    # llama.cpp prints MiB with two decimals
    assert terms["KV cache"].host / MIB == pytest.approx(actual["kv"], abs=0.011)
    assert terms["output (logits) buffer"].host / MIB == pytest.approx(actual["output"], abs=0.011)
    assert actual["cells"] == [plan.kv_cells, plan.swa_cells]  # the non-SWA cache is created first


@pytest.mark.parametrize("name, ctx_size, parallel, batch, kv_type, swa_full", CASES)
def test_reserved_compute_buffer_is_predicted_within_five_percent(models, name, ctx_size, parallel, batch,
                                                                  kv_type, swa_full):
    model, shape = models[name]
    actual = llama_buffers(model, ctx_size, parallel, batch, kv_type, swa_full)
    config = PlanConfig(ctx_size=ctx_size, parallel=parallel, batch_size=batch, kv_type=kv_type, swa_full=swa_full)
    logits = shape.n_vocab * config.n_ubatch * 4 + shape.n_embd * config.n_ubatch * 4 * 2
    reserved = max(layer_phase_bytes(shape, config, *_cells(shape, config)), logits)
    assert reserved / MIB == pytest.approx(actual["compute"], rel=0.05)


def _cells(shape, config):
    from edge.device.plan import kv_cells

    return kv_cells(shape, config)
