"""What the memory plan needs to know about a model: its layers, vocabulary and weight bytes.

A shape is read from a GGUF's metadata and tensor table (``shape_from_gguf``: ggml's own GGUF parser, no
tensor data is read), or built from a known architecture when the file is not
here (``known_shape("gemma-4-e4b", "Q4_K_M")``). The fields mirror what llama.cpp itself derives while
loading (src/llama-model.cpp, src/models/gemma4.cpp in the vendored llama.cpp): which layers use the
sliding window, which layers have their own KV cache, the K/V widths per layer, and which tensors llama.cpp
keeps on the CPU whatever ``--n-gpu-layers`` says (the input embeddings).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from edge.device.gguf_meta import GGUFError, read_gguf

# llama.cpp's default sliding-window patterns for architectures whose GGUF carries no per-layer array:
# every n-th layer is global (llama_hparams::set_swa_pattern, called from each model's loader)
_DEFAULT_SWA_PATTERN = {"gemma2": 2, "gemma3": 6}
# matrix weights llama.cpp multiplies by (MUL_MAT) and may therefore repack on the CPU
_EMBEDDING_TENSORS = {"token_embd.weight", "per_layer_token_embd.weight"}
_OUTPUT_TENSORS = {"output.weight", "output_norm.weight"}


class ShapeError(ValueError):
    """The GGUF lacks a key the plan needs, or names an architecture it cannot model."""


@dataclass(frozen=True)
class Layer:
    sliding: bool  # attends to the last ``n_swa`` positions only
    has_kv: bool  # False on KV-shared layers: they read an earlier layer's cache and own none
    k_width: int  # K values per cell: n_head_kv x head size (llama.cpp's n_embd_k_gqa)
    v_width: int
    n_head: int
    head_dim: int
    n_ff: int


@dataclass(frozen=True)
class Weights:
    input: int  # token embedding + per-layer embedding table: llama.cpp always keeps these on the CPU
    per_layer_table: int  # the part of ``input`` that is the PLE table (Gemma 4 E2B/E4B)
    layers: tuple[int, ...]  # bytes of blk.N.* (layer 0 also carries the few global tensors)
    output: int  # output head + final norm (a tied head adds only the norm here)
    tied_output: int  # token-embedding bytes a GPU-resident output layer duplicates (0 if untied)
    repackable: Mapping[str, int] = field(default_factory=dict)  # matrix weights by ggml type name

    @property
    def total(self) -> int:
        return self.input + sum(self.layers) + self.output


@dataclass(frozen=True)
class Projector:
    weights: int
    hidden: int
    ff: int
    n_head: int
    patch_size: int
    merge: int  # patches merged into one soft token along each side (gemma4v: 3, so 9 patches per token)


@dataclass(frozen=True)
class ModelShape:
    name: str
    architecture: str
    source: str  # "GGUF PATH" or "known architecture (no file read)"
    n_embd: int
    n_vocab: int
    n_ctx_train: int
    n_swa: int
    n_embd_per_layer: int
    layers: tuple[Layer, ...]
    weights: Weights
    projector: Projector | None = None

    @property
    def n_layer(self) -> int:
        return len(self.layers)


# ------------------------------------------------------------------------------------------------ GGUF

def shape_from_gguf(path: str | Path, mmproj: str | Path | None = None) -> ModelShape:
    path = Path(path)
    try:
        gguf = read_gguf(path)
    except GGUFError as exc:
        raise ShapeError(str(exc)) from exc
    meta = _Metadata(gguf.values, path)
    tensors = [(tensor.name, tensor.n_bytes, tensor.type_name, tensor.n_dims) for tensor in gguf.tensors]
    arch = meta.text("general.architecture")
    layers = _layers(meta, arch)
    n_vocab = gguf.array_lengths.get("tokenizer.ggml.tokens") or _embedding_rows(tensors)
    return ModelShape(
        name=path.name, architecture=arch, source=f"GGUF {path}",
        n_embd=meta.integer(f"{arch}.embedding_length"), n_vocab=n_vocab,
        n_ctx_train=meta.integer(f"{arch}.context_length"),
        n_swa=meta.integer(f"{arch}.attention.sliding_window", 0),
        n_embd_per_layer=meta.integer(f"{arch}.embedding_length_per_layer_input", 0),
        layers=layers, weights=_weights(tensors, len(layers)),
        projector=projector_from_gguf(mmproj) if mmproj else None)


def projector_from_gguf(path: str | Path) -> Projector:
    try:
        gguf = read_gguf(path)
    except GGUFError as exc:
        raise ShapeError(str(exc)) from exc
    meta = _Metadata(gguf.values, Path(path))
    return Projector(weights=sum(tensor.n_bytes for tensor in gguf.tensors),
                     hidden=meta.integer("clip.vision.embedding_length", 0),
                     ff=meta.integer("clip.vision.feed_forward_length", 0),
                     n_head=meta.integer("clip.vision.attention.head_count", 1),
                     patch_size=meta.integer("clip.vision.patch_size", 16),
                     merge=meta.integer("clip.vision.projector.scale_factor", 1))


class _Metadata:
    def __init__(self, raw: dict[str, Any], path: Path):
        self.raw = raw
        self.path = path

    def text(self, key: str) -> str:
        if key not in self.raw:
            raise ShapeError(f"{self.path}: GGUF metadata has no {key}")
        return str(self.raw[key])

    def integer(self, key: str, default: int | None = None) -> int:
        value = self.raw.get(key, default)
        if value is None:
            raise ShapeError(f"{self.path}: GGUF metadata has no {key}")
        return int(value)

    def per_layer(self, key: str, n_layer: int, default: Any = None) -> list:
        """A value llama.cpp accepts either once or once per layer (``get_key_or_arr``)."""
        value = self.raw.get(key, default)
        if value is None:
            raise ShapeError(f"{self.path}: GGUF metadata has no {key}")
        if isinstance(value, list):
            if len(value) != n_layer:
                raise ShapeError(f"{self.path}: {key} has {len(value)} entries for {n_layer} layers")
            return value
        return [value] * n_layer


def _layers(meta: _Metadata, arch: str) -> tuple[Layer, ...]:
    n_layer = meta.integer(f"{arch}.block_count")
    n_embd = meta.integer(f"{arch}.embedding_length")
    heads = meta.per_layer(f"{arch}.attention.head_count", n_layer)
    kv_heads = meta.per_layer(f"{arch}.attention.head_count_kv", n_layer, heads)
    n_ff = meta.per_layer(f"{arch}.feed_forward_length", n_layer)
    key_full = meta.integer(f"{arch}.attention.key_length", n_embd // int(heads[0]))
    value_full = meta.integer(f"{arch}.attention.value_length", key_full)
    key_swa = meta.integer(f"{arch}.attention.key_length_swa", key_full)
    value_swa = meta.integer(f"{arch}.attention.value_length_swa", value_full)
    sliding = _sliding_pattern(meta, arch, n_layer)
    first_shared = n_layer - meta.integer(f"{arch}.attention.shared_kv_layers", 0)
    layers = []
    for il in range(n_layer):
        key, value = (key_swa, value_swa) if sliding[il] else (key_full, value_full)
        layers.append(Layer(sliding=sliding[il], has_kv=il < first_shared, k_width=key * int(kv_heads[il]),
                            v_width=value * int(kv_heads[il]), n_head=int(heads[il]), head_dim=key,
                            n_ff=int(n_ff[il])))
    return tuple(layers)


def _sliding_pattern(meta: _Metadata, arch: str, n_layer: int) -> list[bool]:
    if not meta.integer(f"{arch}.attention.sliding_window", 0):
        return [False] * n_layer
    pattern = meta.raw.get(f"{arch}.attention.sliding_window_pattern")
    if isinstance(pattern, list):
        return [bool(flag) for flag in meta.per_layer(f"{arch}.attention.sliding_window_pattern", n_layer)]
    every = int(pattern) if pattern is not None else _DEFAULT_SWA_PATTERN.get(arch, 0)
    # llama_hparams::set_swa_pattern: layer il is sliding unless it is the last of each group of ``every``
    return [every == 0 or il % every < every - 1 for il in range(n_layer)]


def _embedding_rows(tensors: list[tuple[str, int, str, int]]) -> int:
    raise ShapeError("GGUF has no tokenizer.ggml.tokens: the vocabulary size is unknown")


def _weights(tensors: list[tuple[str, int, str, int]], n_layer: int) -> Weights:
    layers = [0] * n_layer
    input_bytes = per_layer_table = output = 0
    repackable: dict[str, int] = {}
    names = {name for name, *_ in tensors}
    for name, n_bytes, type_name, n_dims in tensors:
        if name in _EMBEDDING_TENSORS:
            input_bytes += n_bytes
            per_layer_table += n_bytes if name.startswith("per_layer") else 0
            continue
        if name in _OUTPUT_TENSORS:
            output += n_bytes
        else:
            layers[_layer_index(name, n_layer)] += n_bytes
        if n_dims >= 2 and name.endswith(".weight"):
            repackable[type_name] = repackable.get(type_name, 0) + n_bytes
    tied = 0 if "output.weight" in names else next(
        (n_bytes for name, n_bytes, *_ in tensors if name == "token_embd.weight"), 0)
    return Weights(input_bytes, per_layer_table, tuple(layers), output, tied, repackable)


def _layer_index(name: str, n_layer: int) -> int:
    """``blk.N.*`` belongs to layer N; the few model-wide tensors (rope_freqs, per_layer_model_proj) to
    layer 0, which is where llama.cpp places repeating tensors that carry no block index."""
    if name.startswith("blk."):
        index = int(name.split(".", 2)[1])
        if index < n_layer:
            return index
    return 0


# ------------------------------------------------------------------------------------ known architectures

@dataclass(frozen=True)
class QuantRecipe:
    """Bits per weight of a published quantization, by tensor class, to size a file we do not have."""

    embedding_bits: float  # token_embd and per_layer_token_embd
    layer_bits: float  # the transformer blocks (an average where a recipe mixes types)
    main_type: str  # ggml type name of most layer matrices (for the CPU repacking estimate)
    main_share: float = 1.0  # fraction of the block parameters stored as ``main_type``


# Gemma 4 E4B (google/gemma-4-E4B-it config.json, also in gemma.cpp's ConfigGemma4_E4B and NVIDIA's
# Megatron-Bridge recipe): 42 layers, hidden 2560, FFN 10240 on every layer, 8 query heads and 2 KV heads,
# head size 256 on sliding layers (window 512) and 512 on global ones, five sliding layers then one global
# ("TTTTTF"), the last 18 layers reading the KV of earlier ones, a 256-wide per-layer embedding per layer
# over the 262,144-token vocabulary, 128 K trained context, a tied output head.
GEMMA4_E4B = {
    "n_layer": 42, "n_embd": 2560, "n_ff": 10240, "n_head": 8, "n_head_kv": 2, "head_swa": 256,
    "head_full": 512, "n_swa": 512, "global_every": 6, "n_kv_shared": 18, "n_embd_per_layer": 256,
    "n_vocab": 262_144, "n_ctx_train": 131_072,
    # vision tower of the published mmproj (clip.vision.*: 16 blocks, 768 wide, FFN 3072, 12 heads,
    # 16-pixel patches merged 3x3) and the mmproj file size at BF16 with the audio tower (~0.99 GB)
    "projector": Projector(weights=987_000_000, hidden=768, ff=3072, n_head=12, patch_size=16, merge=3),
}

# Q4_K_M: llama.cpp's recipe gives the embedding tables Q6_K and most block matrices Q4_K (some Q6_K);
# the block average is what brings the file to its published ~5.0 GiB, which puts ~19 % of the block
# parameters at Q6_K (4.5 x 0.81 + 6.5625 x 0.19 = 4.90). Q8_0 is 8.5 bits throughout.
# Google's QAT Q4_0 build is Q4_0 everywhere (7.52 B parameters x 4.5 bits = 4.2 GB, the published size).
GEMMA4_E4B_QUANTS = {
    "Q4_K_M": QuantRecipe(embedding_bits=6.5625, layer_bits=4.90, main_type="Q4_K", main_share=0.806),
    "Q8_0": QuantRecipe(embedding_bits=8.5, layer_bits=8.5, main_type="Q8_0"),
    "Q4_0": QuantRecipe(embedding_bits=4.5, layer_bits=4.5, main_type="Q4_0"),
}


def gemma4_e4b_shape(quant: str = "Q4_K_M", with_projector: bool = True, name: str | None = None) -> ModelShape:
    """E4B from its architecture alone: exact KV and compute terms, weight bytes from the quant recipe."""
    if quant.upper() not in GEMMA4_E4B_QUANTS:
        raise ShapeError(f"no size recipe for gemma-4-e4b at {quant} (known: {', '.join(GEMMA4_E4B_QUANTS)})")
    recipe = GEMMA4_E4B_QUANTS[quant.upper()]
    arch = GEMMA4_E4B
    first_shared = arch["n_layer"] - arch["n_kv_shared"]
    layers = tuple(_e4b_layer(il, il < first_shared) for il in range(arch["n_layer"]))
    return ModelShape(
        name=name or f"gemma-4-e4b:{quant.upper()}", architecture="gemma4", source="known architecture (no file read)",
        n_embd=arch["n_embd"], n_vocab=arch["n_vocab"], n_ctx_train=arch["n_ctx_train"], n_swa=arch["n_swa"],
        n_embd_per_layer=arch["n_embd_per_layer"], layers=layers, weights=_e4b_weights(layers, recipe),
        projector=arch["projector"] if with_projector else None)


def gemma4_e4b_parameters() -> int:
    """E4B's parameter count from its architecture: 7,517,503,488 (published: "8 B with embeddings")."""
    arch = GEMMA4_E4B
    first_shared = arch["n_layer"] - arch["n_kv_shared"]
    layers = sum(_layer_parameters(_e4b_layer(il, il < first_shared), arch["n_embd"], arch["n_embd_per_layer"])
                 for il in range(arch["n_layer"]))
    embeddings = (arch["n_embd"] + arch["n_embd_per_layer"] * arch["n_layer"]) * arch["n_vocab"]
    return layers + embeddings + arch["n_embd"] * arch["n_embd_per_layer"] * arch["n_layer"]


def _e4b_layer(il: int, has_kv: bool) -> Layer:
    arch = GEMMA4_E4B
    sliding = il % arch["global_every"] != arch["global_every"] - 1
    head = arch["head_swa"] if sliding else arch["head_full"]
    return Layer(sliding=sliding, has_kv=has_kv, k_width=head * arch["n_head_kv"],
                 v_width=head * arch["n_head_kv"], n_head=arch["n_head"], head_dim=head, n_ff=arch["n_ff"])


def _e4b_weights(layers: tuple[Layer, ...], recipe: QuantRecipe) -> Weights:
    arch = GEMMA4_E4B
    n_embd, n_vocab, ple = arch["n_embd"], arch["n_vocab"], arch["n_embd_per_layer"]
    token_embd = n_embd * n_vocab
    ple_table = ple * arch["n_layer"] * n_vocab
    bits = recipe.embedding_bits / 8
    layer_parameters = [_layer_parameters(layer, n_embd, ple) for layer in layers]
    layer_bytes = [int(parameters * recipe.layer_bits / 8) for parameters in layer_parameters]
    layer_bytes[0] += n_embd * ple * arch["n_layer"] * 2  # per_layer_model_proj, never quantized (16-bit)
    main_bytes = int(sum(layer_parameters) * recipe.main_share * _TYPE_BITS[recipe.main_type] / 8)
    input_bytes = int((token_embd + ple_table) * bits)
    return Weights(input=input_bytes, per_layer_table=int(ple_table * bits), layers=tuple(layer_bytes),
                   output=n_embd * 4, tied_output=int(token_embd * bits), repackable={recipe.main_type: main_bytes})


# bits per weight of the ggml block types the recipes name (block bytes x 8 / block size)
_TYPE_BITS = {"Q4_0": 4.5, "Q4_K": 4.5, "Q6_K": 6.5625, "Q8_0": 8.5}


def _layer_parameters(layer: Layer, n_embd: int, n_embd_per_layer: int) -> int:
    attention = 2 * n_embd * layer.n_head * layer.head_dim + n_embd * (layer.k_width + layer.v_width)
    ffn = 3 * n_embd * layer.n_ff
    per_layer_input = 2 * n_embd * n_embd_per_layer
    return attention + ffn + per_layer_input


KNOWN_ARCHITECTURES = {"gemma-4-e4b": gemma4_e4b_shape}
