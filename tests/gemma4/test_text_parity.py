"""The project's F32 GGUF of the tiny model, run by llama.cpp, against transformers' logits (golden)."""

from __future__ import annotations

import numpy as np
import pytest

from edge.runtime.llama import prompt_logits

# Measured: max |Δ| 1.8e-2 over 4 prompts (logits span about ±10) with an F32 KV cache; the rest is
# ggml's CPU GELU, which goes through a half-precision table. Top-1 equal at every position.
MAX_ABS_LOGIT_DIFF = 4e-2
N_PROMPTS = 4


@pytest.mark.parametrize("prompt", range(N_PROMPTS))
def test_logits_match_transformers(tiny_model, tiny_context, golden_text, prompt):
    ids = golden_text[f"ids_{prompt}"].tolist()
    logits = prompt_logits(tiny_model, tiny_context, ids)
    reference = golden_text[f"logits_{prompt}"]
    ours = logits[golden_text[f"rows_{prompt}"]]
    assert ours.shape == reference.shape
    assert np.abs(ours - reference).max() <= MAX_ABS_LOGIT_DIFF
    # the reference is not degenerate: its logits really vary, so agreement means something
    assert reference.std() > 0.5


@pytest.mark.parametrize("prompt", range(N_PROMPTS))
def test_greedy_top1_matches_at_every_position(tiny_model, tiny_context, golden_text, prompt):
    ids = golden_text[f"ids_{prompt}"].tolist()
    logits = prompt_logits(tiny_model, tiny_context, ids)
    np.testing.assert_array_equal(logits.argmax(-1), golden_text[f"top1_{prompt}"])


def test_prompts_cover_the_sliding_window(tiny_model, golden_text):
    """At least one prompt is longer than the window (32), so sliding layers really drop tokens."""
    longest = max(len(golden_text[f"ids_{i}"]) for i in range(N_PROMPTS))
    assert longest > 3 * 32


def test_f32_model_generates_greedily(tiny_model, tiny_context, golden_text):
    ids = golden_text["ids_0"].tolist()
    generated = []
    for _ in range(8):
        logits = prompt_logits(tiny_model, tiny_context, ids + generated)
        generated.append(int(logits[-1].argmax()))
    assert len(generated) == 8
    assert all(0 <= token < tiny_model.n_vocab() for token in generated)
