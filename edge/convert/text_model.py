"""The text half of a Gemma 4 checkpoint -> a ``gemma4`` GGUF: hyperparameters, tokenizer, tensors.

Facts from llama.cpp's gemma4 loader (src/models/gemma4.cpp): sliding and full layers have their own head
size and RoPE base; full layers use "proportional" RoPE, expressed as a ``rope_freqs`` tensor whose
unrotated dimensions get a huge frequency factor; KV-shared layers have no K/V projections; the output
head is tied to the token embedding; RMSNorm weights are used as stored (no +1 as in Gemma 3).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import gguf
import numpy as np

from edge.convert.checkpoint import Checkpoint
from edge.convert.errors import ConversionError
from edge.convert.gguf_out import PlannedTensor, choose_type

_PREFIXES = ("model.language_model.", "model.")
_GLOBAL_NAMES = {
    "embed_tokens.weight": "token_embd.weight",
    "norm.weight": "output_norm.weight",
    "embed_tokens_per_layer.weight": "per_layer_token_embd.weight",
    "per_layer_model_projection.weight": "per_layer_model_proj.weight",
    "per_layer_projection_norm.weight": "per_layer_proj_norm.weight",
}
_LAYER_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.q_norm.weight": "attn_q_norm.weight",
    "self_attn.k_norm.weight": "attn_k_norm.weight",
    "post_attention_layernorm.weight": "post_attention_norm.weight",
    "pre_feedforward_layernorm.weight": "ffn_norm.weight",
    "post_feedforward_layernorm.weight": "post_ffw_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
    "per_layer_input_gate.weight": "inp_gate.weight",
    "per_layer_projection.weight": "proj.weight",
    "post_per_layer_input_norm.weight": "post_norm.weight",
    "layer_scalar": "layer_output_scale.weight",
}
_LAYER = re.compile(r"layers\.(\d+)\.(.+)")
# tensors of other modalities or that llama.cpp derives itself
_NOT_TEXT = ("vision_tower", "embed_vision", "audio_tower", "embed_audio", "lm_head")


@dataclass(frozen=True)
class TextParams:
    n_layer: int
    n_embd: int
    n_ff: int
    n_head: int
    n_head_kv: int
    head_dim_swa: int
    head_dim_full: int
    n_vocab: int
    per_layer_dim: int
    kv_shared: int
    sliding_window: int
    swa_layers: list[bool]
    rope_theta_full: float
    rope_theta_swa: float
    partial_rotary_full: float
    rms_eps: float
    softcap: float | None
    context_length: int


def text_params(config: dict) -> TextParams:
    """Read the text config, accepting both ``global_head_dim`` and transformers' ``per_layer_config``."""
    text = config.get("text_config") or {}
    try:
        layer_types = text["layer_types"]
        rope = text["rope_parameters"]
        head_dim_full = text.get("global_head_dim") or _full_layer_override(text, layer_types, "head_dim")
        if head_dim_full is None:
            raise KeyError("global_head_dim")
        if text.get("enable_moe_block") or text.get("use_double_wide_mlp") or text.get("attention_k_eq_v"):
            raise ConversionError("config.json: MoE / double-wide MLP / k_eq_v Gemma 4 variants are not "
                                  "supported by this converter (E2B and E4B are)")
        return TextParams(
            n_layer=text["num_hidden_layers"], n_embd=text["hidden_size"], n_ff=text["intermediate_size"],
            n_head=text["num_attention_heads"], n_head_kv=text["num_key_value_heads"],
            head_dim_swa=text["head_dim"], head_dim_full=int(head_dim_full), n_vocab=text["vocab_size"],
            per_layer_dim=text.get("hidden_size_per_layer_input") or 0,
            kv_shared=text.get("num_kv_shared_layers", 0), sliding_window=text["sliding_window"],
            swa_layers=[kind == "sliding_attention" for kind in layer_types],
            rope_theta_full=rope["full_attention"]["rope_theta"],
            rope_theta_swa=rope["sliding_attention"]["rope_theta"],
            partial_rotary_full=rope["full_attention"].get("partial_rotary_factor", 1.0),
            rms_eps=text.get("rms_norm_eps", 1e-6), softcap=text.get("final_logit_softcapping"),
            context_length=text.get("max_position_embeddings", 131072),
        )
    except (KeyError, TypeError) as exc:
        raise ConversionError(f"config.json: text_config lacks {exc} (not a Gemma 4 config?)") from exc


def _full_layer_override(text: dict, layer_types: list[str], key: str):
    for index, override in (text.get("per_layer_config") or {}).items():
        if layer_types[int(index)] == "full_attention" and key in override:
            return override[key]
    return None


def write_text_metadata(writer: gguf.GGUFWriter, params: TextParams, name: str, outtype: str) -> None:
    from edge.convert.gguf_out import FILE_TYPES

    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(name)
    writer.add_file_type(FILE_TYPES[outtype])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_context_length(params.context_length)
    writer.add_embedding_length(params.n_embd)
    writer.add_feed_forward_length(params.n_ff)
    writer.add_block_count(params.n_layer)
    writer.add_head_count(params.n_head)
    writer.add_head_count_kv(params.n_head_kv)
    writer.add_layer_norm_rms_eps(params.rms_eps)
    writer.add_key_length(params.head_dim_full)
    writer.add_value_length(params.head_dim_full)
    writer.add_key_length_swa(params.head_dim_swa)
    writer.add_value_length_swa(params.head_dim_swa)
    writer.add_rope_freq_base(params.rope_theta_full)
    writer.add_rope_freq_base_swa(params.rope_theta_swa)
    writer.add_rope_dimension_count(params.head_dim_full)  # partial rotation is in rope_freqs
    writer.add_rope_dimension_count_swa(params.head_dim_swa)
    writer.add_sliding_window(params.sliding_window)
    writer.add_sliding_window_pattern(params.swa_layers)
    writer.add_shared_kv_layers(params.kv_shared)
    writer.add_embedding_length_per_layer_input(params.per_layer_dim)
    if params.softcap:
        writer.add_final_logit_softcapping(params.softcap)


def gguf_text_name(hf_name: str) -> str | None:
    """The GGUF name of a Hugging Face text tensor, or None for tensors that are not the text model's."""
    if any(part in hf_name for part in _NOT_TEXT):
        return None
    stripped = next((hf_name[len(p):] for p in _PREFIXES if hf_name.startswith(p)), hf_name)
    if stripped in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[stripped]
    match = _LAYER.fullmatch(stripped)
    if match and match.group(2) in _LAYER_NAMES:
        return f"blk.{match.group(1)}.{_LAYER_NAMES[match.group(2)]}"
    raise ConversionError(f"unexpected text tensor {hf_name!r}: this converter does not know where it goes")


def plan_text_tensors(checkpoint: Checkpoint, params: TextParams, outtype: str, n_vocab: int) -> list[PlannedTensor]:
    plan = [_rope_freqs(params)]
    for hf_name in sorted(checkpoint.tensors):
        gguf_name = gguf_text_name(hf_name)
        if gguf_name is None:
            continue
        shape = checkpoint.shape(hf_name)
        if gguf_name in ("token_embd.weight", "per_layer_token_embd.weight"):
            shape = (n_vocab,) + shape[1:]  # drop padding rows beyond the tokenizer
        plan.append(PlannedTensor(gguf_name, shape, choose_type(outtype, shape),
                                  _loader(checkpoint, hf_name, shape)))
    _check_required(plan, params)
    return plan


def _loader(checkpoint: Checkpoint, hf_name: str, shape: tuple[int, ...]):
    def load() -> np.ndarray:
        data = checkpoint.load(hf_name)
        return data[: shape[0]] if data.ndim >= 1 and data.shape[0] != shape[0] else data
    return load


def _rope_freqs(params: TextParams) -> PlannedTensor:
    """Proportional RoPE of full layers: rotate the first ``partial * head_dim / 2`` frequency pairs,
    leave the rest unrotated by giving them a frequency factor so large their angle is ~0."""
    half = params.head_dim_full // 2
    rotated = int(params.head_dim_full * params.partial_rotary_full / 2)
    values = np.array([1.0] * rotated + [1e30] * (half - rotated), dtype=np.float32)
    return PlannedTensor("rope_freqs.weight", (half,), gguf.GGMLQuantizationType.F32, lambda: values)


def _check_required(plan: list[PlannedTensor], params: TextParams) -> None:
    names = {tensor.name for tensor in plan}
    required = ["token_embd.weight", "output_norm.weight"]
    for layer in range(params.n_layer):
        required += [f"blk.{layer}.attn_q.weight", f"blk.{layer}.attn_output.weight",
                     f"blk.{layer}.ffn_down.weight"]
        if layer < params.n_layer - params.kv_shared:
            required.append(f"blk.{layer}.attn_k.weight")
    missing = [name for name in required if name not in names]
    if missing:
        raise ConversionError(f"checkpoint lacks tensors for {', '.join(missing[:5])}"
                              f"{' …' if len(missing) > 5 else ''}")
