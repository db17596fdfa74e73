"""The vision tower of a Gemma 4 checkpoint -> an mmproj GGUF (projector type ``gemma4v``).

Facts from llama.cpp's tools/mtmd (clip.cpp, models/gemma4v.cpp): the patch embedding is a conv kernel
(n_embd, 3, p, p) whereas Hugging Face stores a linear layer over (p, p, 3) patches; the 2-D position
table and the standardisation vectors stay F32; ``clip.use_gelu`` must be true or llama.cpp runs the
vision feed-forward with ``gelu_quick`` instead of the reference's tanh GELU (llama.cpp's converter omits
the key: vision embeddings then differ by ~4e-2 instead of ~6e-3 on the test model). Audio tensors are
not converted (the runtime serves text and images).
"""

from __future__ import annotations

import re

import gguf
import numpy as np

from edge.convert.checkpoint import Checkpoint
from edge.convert.errors import ConversionError
from edge.convert.gguf_out import FILE_TYPES, PlannedTensor, choose_type

_BLOCK = re.compile(r"model\.vision_tower\.encoder\.layers\.(\d+)\.(.+)")
_BLOCK_NAMES = {
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_out", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
_BLOCK_NORMS = {
    "self_attn.q_norm.weight": "attn_q_norm.weight", "self_attn.k_norm.weight": "attn_k_norm.weight",
    "input_layernorm.weight": "ln1.weight", "pre_feedforward_layernorm.weight": "ln2.weight",
    "post_attention_layernorm.weight": "attn_post_norm.weight",
    "post_feedforward_layernorm.weight": "ffn_post_norm.weight", "layer_scalar": "out_scale.weight",
}
# Gemma4ClippableLinear: optional clamp bounds stored beside each linear weight
_CLAMPS = ("input_max", "input_min", "output_max", "output_min")
_GLOBAL_NAMES = {
    "model.vision_tower.patch_embedder.input_proj.weight": "v.patch_embd.weight",
    "model.vision_tower.patch_embedder.position_embedding_table": "v.position_embd.weight",
    "model.vision_tower.std_bias": "v.std_bias",
    "model.vision_tower.std_scale": "v.std_scale",
    "model.embed_vision.embedding_projection.weight": "mm.input_projection.weight",
}
_F32_ALWAYS = ("v.position_embd.weight",)


def has_vision(checkpoint: Checkpoint) -> bool:
    return bool(checkpoint.config.get("vision_config")) and any(
        name.startswith("model.vision_tower.") for name in checkpoint.tensors)


def mmproj_outtype(outtype: str) -> str:
    """The projector stays at 16 bits or more: F32 for F32 conversions, F16 otherwise."""
    return "f32" if outtype == "f32" else "f16"


def write_mmproj_metadata(writer: gguf.GGUFWriter, checkpoint: Checkpoint, name: str, outtype: str) -> None:
    vision = checkpoint.config["vision_config"]
    text_hidden = checkpoint.config["text_config"]["hidden_size"]
    processor = _processor_config(checkpoint)
    writer.add_type(gguf.GGUFType.MMPROJ)
    writer.add_name(f"{name} mmproj")
    writer.add_file_type(FILE_TYPES[outtype])
    writer.add_clip_has_vision_encoder(True)
    writer.add_clip_projector_type(gguf.VisionProjectorType.GEMMA4V)
    writer.add_vision_projection_dim(text_hidden)
    writer.add_vision_image_size(224)  # unused by gemma4v (dynamic resolution), required by the loader
    writer.add_vision_patch_size(vision.get("patch_size", 16))
    writer.add_vision_embedding_length(vision["hidden_size"])
    writer.add_vision_feed_forward_length(vision["intermediate_size"])
    writer.add_vision_block_count(vision["num_hidden_layers"])
    writer.add_vision_head_count(vision["num_attention_heads"])
    writer.add_vision_attention_layernorm_eps(vision.get("rms_norm_eps", 1e-6))
    writer.add_vision_projector_scale_factor(vision.get("pooling_kernel_size", 3))
    writer.add_vision_image_mean(processor["image_mean"])
    writer.add_vision_image_std(processor["image_std"])
    writer.add_vision_use_gelu(vision.get("hidden_activation", "gelu_pytorch_tanh").startswith("gelu"))


def _processor_config(checkpoint: Checkpoint) -> dict:
    """image_mean/std live in preprocessor_config.json or processor_config.json's image_processor."""
    for source in ("preprocessor_config.json", "processor_config.json"):
        config = checkpoint.json_file(source) or {}
        config = config.get("image_processor", config)
        if "image_mean" in config and "image_std" in config:
            return config
    raise ConversionError(f"{checkpoint.folder}: no image_mean/image_std in preprocessor_config.json or "
                          "processor_config.json (needed for the vision projector)")


def gguf_vision_name(hf_name: str) -> str | None:
    if hf_name in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[hf_name]
    match = _BLOCK.fullmatch(hf_name)
    if not match:
        if hf_name.startswith(("model.vision_tower.", "model.embed_vision.")):
            raise ConversionError(f"unexpected vision tensor {hf_name!r}")
        return None
    block, rest = match.groups()
    if rest in _BLOCK_NORMS:
        return f"v.blk.{block}.{_BLOCK_NORMS[rest]}"
    for hf_part, gguf_part in _BLOCK_NAMES.items():
        if rest.startswith(hf_part + "."):
            suffix = rest[len(hf_part) + 1:]
            if suffix in ("linear.weight", "weight"):
                return f"v.blk.{block}.{gguf_part}.weight"
            if suffix in _CLAMPS:
                return f"v.blk.{block}.{gguf_part}.{suffix}"
    raise ConversionError(f"unexpected vision tensor {hf_name!r}")


def plan_mmproj_tensors(checkpoint: Checkpoint, outtype: str) -> list[PlannedTensor]:
    plan = []
    for hf_name in sorted(checkpoint.tensors):
        gguf_name = gguf_vision_name(hf_name)
        if gguf_name is None:
            continue
        shape, load = _shape_and_loader(checkpoint, hf_name, gguf_name)
        qtype = choose_type(outtype, shape, force_f32=gguf_name in _F32_ALWAYS)
        plan.append(PlannedTensor(gguf_name, shape, qtype, load))
    names = {tensor.name for tensor in plan}
    for required in ("v.patch_embd.weight", "v.position_embd.weight", "mm.input_projection.weight"):
        if required not in names:
            raise ConversionError(f"checkpoint lacks the vision tensor that becomes {required}")
    return plan


def _shape_and_loader(checkpoint: Checkpoint, hf_name: str, gguf_name: str):
    shape = checkpoint.shape(hf_name)
    if gguf_name == "v.patch_embd.weight":
        n_embd, patch_values = shape
        patch = int(round((patch_values // 3) ** 0.5))
        # linear over (row, col, channel) patches -> conv kernel (out, channel, row, col)
        return (n_embd, 3, patch, patch), lambda: np.ascontiguousarray(
            checkpoint.load(hf_name).reshape(n_embd, patch, patch, 3).transpose(0, 3, 1, 2))
    if len(shape) == 0:
        return (1,), lambda: checkpoint.load(hf_name).reshape(1)
    return shape, lambda: checkpoint.load(hf_name)
