"""Every quantized type of the wide model loads and generates; KL divergence vs F32 is ordered; the
recipe keeps the PLE table and token embedding at Q8_0."""

from __future__ import annotations

import numpy as np
import pytest

from edge.convert.errors import QuantizationError
from edge.convert.quantize import quantize_gguf, tensor_types_by_group
from edge.runtime.llama import ContextOptions, load_model, new_context, prompt_logits, tokenize
from edge.convert.quantize import QUANT_TYPES

PROMPT = ("<bos><|turn>user\nWrite a short poem about the sea, the wind and the stars at night. "
          "def main(argv: list[str]) -> int: return 0<turn|>\n<|turn>model\n")


def _logits(path, text=PROMPT):
    model = load_model(path)
    context = new_context(model, ContextOptions(n_ctx=256, kv_type="f32"))
    return prompt_logits(model, context, tokenize(model, text, special=True))


def _log_softmax(logits):
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def mean_kld(reference, candidate):
    p_log, q_log = _log_softmax(reference.astype(np.float64)), _log_softmax(candidate.astype(np.float64))
    return float((np.exp(p_log) * (p_log - q_log)).sum(-1).mean())


@pytest.fixture(scope="session")
def kld_by_type(wide_models):
    reference = _logits(wide_models.text_gguf)
    return {qtype: mean_kld(reference, _logits(path)) for qtype, path in wide_models.quantized.items()}


@pytest.mark.parametrize("qtype", QUANT_TYPES)
def test_quantized_model_loads_and_generates(wide_models, qtype):
    model = load_model(wide_models.quantized[qtype])
    context = new_context(model, ContextOptions(n_ctx=128))
    tokens = tokenize(model, PROMPT, special=True)
    for _ in range(4):  # multi-token batches first: the AMX hazard shows up exactly there
        tokens.append(int(prompt_logits(model, context, tokens)[-1].argmax()))
    assert len(tokens) == len(tokenize(model, PROMPT, special=True)) + 4


def test_kld_is_ordered_by_precision(kld_by_type):
    print("mean KLD vs F32:", {k: round(v, 6) for k, v in kld_by_type.items()})
    assert 0 < kld_by_type["Q8_0"] < kld_by_type["Q6_K"] < kld_by_type["Q4_K_M"]
    assert kld_by_type["Q8_0"] < 2e-2
    assert kld_by_type["Q4_K_M"] < 1.0


@pytest.mark.parametrize("qtype", ["Q4_K_M", "Q4_0", "IQ4_XS"])
def test_recipe_keeps_embeddings_at_8_bits(wide_models, qtype):
    groups = tensor_types_by_group(wide_models.quantized[qtype])
    assert groups["per_layer_token_embd"] == {"Q8_0": 1}
    assert groups["token_embd"] == {"Q8_0": 1}
    main_type = {"Q4_K_M": "Q4_K", "Q4_0": "Q4_0", "IQ4_XS": "IQ4_XS"}[qtype]
    assert main_type in groups["ffn_gate/up"]  # K-quants really apply on the wide model


def test_sizes_shrink_in_order(wide_models):
    sizes = {qtype: path.stat().st_size for qtype, path in wide_models.quantized.items()}
    f32 = wide_models.text_gguf.stat().st_size
    assert f32 > sizes["Q8_0"] > sizes["Q6_K"] > sizes["Q5_K_M"] > sizes["Q4_K_M"]


def test_mmproj_is_refused(wide_models, tmp_path):
    with pytest.raises(QuantizationError, match="projector"):
        quantize_gguf(wide_models.mmproj_gguf, tmp_path / "x.gguf", "Q4_K_M")
    assert not list(tmp_path.iterdir())


def test_unknown_type_and_missing_input(tmp_path, wide_models):
    with pytest.raises(QuantizationError, match="unsupported --type"):
        quantize_gguf(wide_models.text_gguf, tmp_path / "x.gguf", "Q1_Z")
    with pytest.raises(QuantizationError, match="not found"):
        quantize_gguf(tmp_path / "missing.gguf", tmp_path / "x.gguf", "Q8_0")
