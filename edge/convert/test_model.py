"""A deterministic, randomly initialised Gemma 4 multimodal checkpoint for tests, made with numpy only.

It has the parts of E4B that conversion and inference can get wrong: sliding and full attention layers
with different head sizes, proportional RoPE on the full layers, per-layer input embeddings (PLE),
KV-shared layers, final logit softcapping, a tied output head and a vision tower with its projector.
The layer pattern is S,S,S,F,S,F with the last two layers KV-shared: llama.cpp needs the last non-shared
layer to be full attention and the one before it sliding (S,S,F,S,S,F crashes at load).

Variants: ``tiny`` (hidden 64, a few MB) for parity tests, ``wide`` (hidden 256, every matrix row a
multiple of 256) so that K-quants really apply. The tokenizer is a small SentencePiece-style BPE
(spaces become ``▁``, byte fallback) with every Gemma 4 special token, learnt from a fixed corpus.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.formats.gemma4_template import GEMMA4_CHAT_TEMPLATE
from edge.convert.safetensors_io import save_tensors

SEED = 20260417

# Gemma 4's special tokens in the order of their ids here (the real ids differ; only the text matters)
SPECIAL_TOKENS = [
    "<pad>", "<eos>", "<bos>", "<unk>", "<mask>",
    "<|turn>", "<turn|>", "<|channel>", "<channel|>", "<|tool_call>", "<tool_call|>", "<|tool>", "<tool|>",
    "<|tool_response>", "<tool_response|>", '<|"|>', "<|think|>",
    "<|image>", "<image|>", "<|image|>", "<|audio>", "<audio|>", "<|audio|>", "<|video|>",
]
SPACE = "\u2581"  # SentencePiece's visible space

# Text the BPE merges are learnt from: English, code, the turn format's own words, a little of other scripts.
_CORPUS = """
The quick brown fox jumps over the lazy dog. A model runs on the device in front of you: a laptop, a
board, a phone. It answers questions, calls tools and looks at images. What is the weather in Paris today?
It is sunny and warm. Please write a short poem about the sea, the wind and the stars at night.
def main(argv: list[str]) -> int:
    for index, value in enumerate(argv):
        if value == "--help":
            print("usage: edge serve --model PATH")
            return 0
    return 1
class Server:
    def __init__(self, host: str = "127.0.0.1", port: int = 8080) -> None:
        self.host = host
        self.port = port
{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}
system user model thought call response declaration description parameters properties required type
string number integer boolean array object true false null value
Ceci est une phrase en français. Das ist ein Satz auf Deutsch. Esto es una frase en español.
これは日本語の文です。 这是中文句子。 Это предложение на русском языке.
0123456789 10 100 1000 2024 2025 2026 3.14 42 +-*/=<>()[]{}:;,.!?'"#@$%^&_|\\~`
"""
# Characters that get their own vocabulary entry (no merges needed) so that common text stays short.
_EXTRA_CHAR_RANGES = [(0x20, 0x7F), (0xA0, 0x180), (0x370, 0x400), (0x400, 0x460), (0x3040, 0x30A0),
                      (0x4E00, 0x4E00 + 1200)]


@dataclass(frozen=True)
class TestModelSpec:
    """Sizes of one variant. Row sizes of ``wide`` are multiples of 256 so K-quants apply."""

    name: str
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    global_head_dim: int
    per_layer_dim: int
    vision_hidden: int
    vision_intermediate: int
    vision_layers: int = 2
    vision_heads: int = 2
    layer_types: tuple[str, ...] = ("sliding_attention",) * 3 + ("full_attention", "sliding_attention",
                                                                  "full_attention")
    kv_shared_layers: int = 2
    sliding_window: int = 32
    softcap: float = 30.0
    n_merges: int = 600
    patch_size: int = 16
    pooling_kernel: int = 3
    position_embedding_size: int = 256


VARIANTS = {
    "tiny": TestModelSpec("tiny", hidden=64, intermediate=128, heads=2, kv_heads=1, head_dim=32,
                          global_head_dim=64, per_layer_dim=16, vision_hidden=32, vision_intermediate=64),
    "wide": TestModelSpec("wide", hidden=256, intermediate=512, heads=2, kv_heads=1, head_dim=128,
                          global_head_dim=256, per_layer_dim=64, vision_hidden=64, vision_intermediate=128),
}


# ---------------------------------------------------------------------------------------------- tokenizer

@dataclass(frozen=True)
class Vocabulary:
    pieces: list[str]          # id -> piece
    merges: list[tuple[str, str]]

    def id_of(self, piece: str) -> int:
        return self.pieces.index(piece)


def build_vocabulary(n_merges: int = 600) -> Vocabulary:
    """Specials, the 256 byte-fallback pieces, single characters, then merges learnt from the corpus."""
    pieces = list(SPECIAL_TOKENS) + [f"<0x{byte:02X}>" for byte in range(256)]
    chars = {chr(c) for start, end in _EXTRA_CHAR_RANGES for c in range(start, end)}
    chars |= set(_CORPUS.replace(" ", SPACE)) | {SPACE, "\n", "\t"}
    chars.discard(" ")
    pieces += sorted(chars - set(pieces))
    merges = _learn_merges(_CORPUS, n_merges)
    known = set(pieces)
    for left, right in merges:
        if left + right not in known:
            pieces.append(left + right)
            known.add(left + right)
    return Vocabulary(pieces, merges)


def _learn_merges(corpus: str, n_merges: int) -> list[tuple[str, str]]:
    """Plain BPE over ▁-prefixed words (newlines never merge with other characters, as llama.cpp
    splits Gemma 4 text at newlines before merging). Ties break on the pair itself: deterministic."""
    words = Counter()
    for line in corpus.split("\n"):
        for word in line.replace(" ", f" {SPACE}").split(" "):
            if word:
                words[tuple(word)] += 1
    merges = []
    for _ in range(n_merges):
        pairs = Counter()
        for word, count in words.items():
            for pair in zip(word, word[1:]):
                pairs[pair] += count
        if not pairs:
            break
        best = max(pairs.items(), key=lambda item: (item[1], item[0]))[0]
        merges.append(best)
        words = Counter({_merge_word(word, best): count for word, count in words.items()})
    return merges


def _merge_word(word: tuple[str, ...], pair: tuple[str, str]) -> tuple[str, ...]:
    merged, index = [], 0
    while index < len(word):
        if index + 1 < len(word) and (word[index], word[index + 1]) == pair:
            merged.append(word[index] + word[index + 1])
            index += 2
        else:
            merged.append(word[index])
            index += 1
    return tuple(merged)


def tokenizer_json(vocab: Vocabulary) -> dict:
    """A Hugging Face ``tokenizers`` file in the shape of Gemma 4's: BPE, byte fallback, ▁ for spaces."""
    bos = vocab.id_of("<bos>")
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": vocab.id_of(text), "content": text, "single_word": False, "lstrip": False,
             "rstrip": False, "normalized": False, "special": True}
            for text in SPECIAL_TOKENS
        ],
        "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": SPACE},
        "pre_tokenizer": {"type": "Split", "pattern": {"String": "\n"}, "behavior": "Isolated",
                          "invert": False},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<bos>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<bos>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<bos>": {"id": "<bos>", "ids": [bos], "tokens": ["<bos>"]}},
        },
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": SPACE}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"}]},
        "model": {
            "type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
            "vocab": {piece: index for index, piece in enumerate(vocab.pieces)},
            "merges": [[left, right] for left, right in vocab.merges],
        },
    }


def tokenizer_config(chat_template: str | None = None) -> dict:
    """``chat_template``: the Jinja template the GGUF will carry (the project's own unless given)."""
    return {
        "tokenizer_class": "GemmaTokenizer",
        "bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>",
        "mask_token": "<mask>", "add_bos_token": True, "add_eos_token": False,
        "model_max_length": 131072, "padding_side": "left",
        "chat_template": GEMMA4_CHAT_TEMPLATE if chat_template is None else chat_template,
    }


# ------------------------------------------------------------------------------------------------- config

def model_config(spec: TestModelSpec, vocab: Vocabulary) -> dict:
    """config.json for Gemma4ForConditionalGeneration (as transformers >= 5 writes it)."""
    n_layers = len(spec.layer_types)
    full_layers = [i for i, kind in enumerate(spec.layer_types) if kind == "full_attention"]
    text = {
        "model_type": "gemma4_text", "vocab_size": len(vocab.pieces), "hidden_size": spec.hidden,
        "intermediate_size": spec.intermediate, "num_hidden_layers": n_layers,
        "num_attention_heads": spec.heads, "num_key_value_heads": spec.kv_heads, "head_dim": spec.head_dim,
        "global_head_dim": spec.global_head_dim, "hidden_activation": "gelu_pytorch_tanh",
        "max_position_embeddings": 131072, "rms_norm_eps": 1e-6, "sliding_window": spec.sliding_window,
        "layer_types": list(spec.layer_types), "final_logit_softcapping": spec.softcap,
        "vocab_size_per_layer_input": len(vocab.pieces), "hidden_size_per_layer_input": spec.per_layer_dim,
        "num_kv_shared_layers": spec.kv_shared_layers, "attention_bias": False, "attention_k_eq_v": False,
        "enable_moe_block": False, "use_double_wide_mlp": False, "tie_word_embeddings": True,
        "pad_token_id": vocab.id_of("<pad>"), "eos_token_id": vocab.id_of("<eos>"),
        "bos_token_id": vocab.id_of("<bos>"),
        "per_layer_config": {str(i): {"head_dim": spec.global_head_dim} for i in full_layers},
        "rope_parameters": {
            "full_attention": {"rope_type": "proportional", "partial_rotary_factor": 0.25,
                               "rope_theta": 1000000.0},
            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
        },
    }
    vision = {
        "model_type": "gemma4_vision", "hidden_size": spec.vision_hidden,
        "intermediate_size": spec.vision_intermediate, "num_hidden_layers": spec.vision_layers,
        "num_attention_heads": spec.vision_heads, "num_key_value_heads": spec.vision_heads,
        "head_dim": spec.vision_hidden // spec.vision_heads, "hidden_activation": "gelu_pytorch_tanh",
        "rms_norm_eps": 1e-6, "patch_size": spec.patch_size, "pooling_kernel_size": spec.pooling_kernel,
        "position_embedding_size": spec.position_embedding_size, "use_clipped_linears": False,
        "standardize": True, "rope_parameters": {"rope_type": "axial", "rope_theta": 100.0},
    }
    return {
        "architectures": ["Gemma4ForConditionalGeneration"], "model_type": "gemma4",
        "text_config": text, "vision_config": vision, "audio_config": None,
        "boi_token_id": vocab.id_of("<|image>"), "eoi_token_id": vocab.id_of("<image|>"),
        "image_token_id": vocab.id_of("<|image|>"), "video_token_id": vocab.id_of("<|video|>"),
        "boa_token_id": vocab.id_of("<|audio>"), "eoa_token_index": vocab.id_of("<audio|>"),
        "audio_token_id": vocab.id_of("<|audio|>"), "tie_word_embeddings": True,
        "torch_dtype": "float32", "transformers_version": "5.24.0",
    }


def processor_config(spec: TestModelSpec) -> dict:
    """Gemma 4 rescales pixels to [0, 1] and normalises in the model (2x - 1): mean 0, std 1 here."""
    return {
        "image_processor_type": "Gemma4ImageProcessor", "do_rescale": True, "rescale_factor": 1 / 255,
        "do_normalize": False, "image_mean": [0.0, 0.0, 0.0], "image_std": [1.0, 1.0, 1.0],
        "patch_size": spec.patch_size, "pooling_kernel_size": spec.pooling_kernel, "max_soft_tokens": 280,
    }


# ------------------------------------------------------------------------------------------------ weights

def random_weights(spec: TestModelSpec, n_vocab: int, seed: int = SEED) -> dict[str, np.ndarray]:
    """Seeded float32 weights under the Hugging Face names. Linear layers have std 1/sqrt(fan_in) so
    activations stay O(1); norm weights sit near 1 (Gemma 4's RMSNorm multiplies by the weight as is)."""
    rng = np.random.default_rng(seed)
    tensors: dict[str, np.ndarray] = {}
    tensors.update(_text_weights(spec, n_vocab, rng))
    tensors.update(_vision_weights(spec, rng))
    return tensors


def _linear(rng: np.random.Generator, out_dim: int, in_dim: int) -> np.ndarray:
    return (rng.standard_normal((out_dim, in_dim)) / math.sqrt(in_dim)).astype(np.float32)


def _norm(rng: np.random.Generator, dim: int, scale: float = 1.0) -> np.ndarray:
    return (scale * (1.0 + 0.1 * rng.standard_normal(dim))).astype(np.float32)


# Gemma 4 attends without 1/sqrt(head_dim) (q and k are RMS-normed instead). With random weights that
# makes the softmax so peaked that float rounding flips attention; small q/k norm weights keep the test
# model's attention smooth, so parity measures the implementation, not chaos.
_QK_NORM_SCALE = 0.25


def _text_weights(spec: TestModelSpec, n_vocab: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    prefix = "model.language_model"
    n_layers = len(spec.layer_types)
    first_shared = n_layers - spec.kv_shared_layers
    ple_total = spec.per_layer_dim * n_layers
    tensors = {
        f"{prefix}.embed_tokens.weight": (0.3 * rng.standard_normal((n_vocab, spec.hidden))).astype(np.float32),
        f"{prefix}.embed_tokens_per_layer.weight":
            (0.5 * rng.standard_normal((n_vocab, ple_total))).astype(np.float32),
        f"{prefix}.per_layer_model_projection.weight": _linear(rng, ple_total, spec.hidden),
        f"{prefix}.per_layer_projection_norm.weight": _norm(rng, spec.per_layer_dim),
        f"{prefix}.norm.weight": _norm(rng, spec.hidden),
    }
    for layer, kind in enumerate(spec.layer_types):
        head_dim = spec.global_head_dim if kind == "full_attention" else spec.head_dim
        base = f"{prefix}.layers.{layer}"
        tensors[f"{base}.self_attn.q_proj.weight"] = _linear(rng, spec.heads * head_dim, spec.hidden)
        tensors[f"{base}.self_attn.q_norm.weight"] = _norm(rng, head_dim, _QK_NORM_SCALE)
        if layer < first_shared:  # KV-shared layers read an earlier layer's cache: no K/V of their own
            tensors[f"{base}.self_attn.k_proj.weight"] = _linear(rng, spec.kv_heads * head_dim, spec.hidden)
            tensors[f"{base}.self_attn.v_proj.weight"] = _linear(rng, spec.kv_heads * head_dim, spec.hidden)
            tensors[f"{base}.self_attn.k_norm.weight"] = _norm(rng, head_dim, _QK_NORM_SCALE)
        tensors[f"{base}.self_attn.o_proj.weight"] = _linear(rng, spec.hidden, spec.heads * head_dim)
        tensors[f"{base}.mlp.gate_proj.weight"] = _linear(rng, spec.intermediate, spec.hidden)
        tensors[f"{base}.mlp.up_proj.weight"] = _linear(rng, spec.intermediate, spec.hidden)
        tensors[f"{base}.mlp.down_proj.weight"] = _linear(rng, spec.hidden, spec.intermediate)
        for norm in ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                     "post_feedforward_layernorm", "post_per_layer_input_norm"):
            tensors[f"{base}.{norm}.weight"] = _norm(rng, spec.hidden)
        tensors[f"{base}.per_layer_input_gate.weight"] = _linear(rng, spec.per_layer_dim, spec.hidden)
        tensors[f"{base}.per_layer_projection.weight"] = _linear(rng, spec.hidden, spec.per_layer_dim)
        tensors[f"{base}.layer_scalar"] = np.array([0.5 + 0.5 * rng.random()], dtype=np.float32)
    return tensors


def _vision_weights(spec: TestModelSpec, rng: np.random.Generator) -> dict[str, np.ndarray]:
    prefix = "model.vision_tower"
    hidden, head_dim = spec.vision_hidden, spec.vision_hidden // spec.vision_heads
    tensors = {
        f"{prefix}.patch_embedder.input_proj.weight": _linear(rng, hidden, 3 * spec.patch_size ** 2),
        f"{prefix}.patch_embedder.position_embedding_table":
            (0.5 * rng.standard_normal((2, spec.position_embedding_size, hidden))).astype(np.float32),
        f"{prefix}.std_bias": (0.1 * rng.standard_normal(hidden)).astype(np.float32),
        f"{prefix}.std_scale": _norm(rng, hidden),
        "model.embed_vision.embedding_projection.weight": _linear(rng, spec.hidden, hidden),
    }
    for layer in range(spec.vision_layers):
        base = f"{prefix}.encoder.layers.{layer}"
        for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
            tensors[f"{base}.self_attn.{proj}.linear.weight"] = _linear(rng, hidden, hidden)
        tensors[f"{base}.self_attn.q_norm.weight"] = _norm(rng, head_dim, _QK_NORM_SCALE)
        tensors[f"{base}.self_attn.k_norm.weight"] = _norm(rng, head_dim, _QK_NORM_SCALE)
        tensors[f"{base}.mlp.gate_proj.linear.weight"] = _linear(rng, spec.vision_intermediate, hidden)
        tensors[f"{base}.mlp.up_proj.linear.weight"] = _linear(rng, spec.vision_intermediate, hidden)
        tensors[f"{base}.mlp.down_proj.linear.weight"] = _linear(rng, hidden, spec.vision_intermediate)
        for norm in ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                     "post_feedforward_layernorm"):
            tensors[f"{base}.{norm}.weight"] = _norm(rng, hidden)
    return tensors


# ----------------------------------------------------------------------------------------------- writing

def make_test_model(out_dir: str | Path, variant: str = "tiny", dtype: str = "F32",
                    chat_template: str | None = None) -> Path:
    """Write the checkpoint (config, weights, tokenizer, processor config) into ``out_dir``.

    ``chat_template`` replaces the project's own template (tests pass Google's, which published Gemma 4
    GGUFs carry); weights and vocabulary do not depend on it."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
    spec = VARIANTS[variant]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vocab = build_vocabulary(spec.n_merges)
    _write_json(out / "config.json", model_config(spec, vocab))
    _write_json(out / "tokenizer.json", tokenizer_json(vocab))
    _write_json(out / "tokenizer_config.json", tokenizer_config(chat_template))
    _write_json(out / "special_tokens_map.json", {"bos_token": "<bos>", "eos_token": "<eos>",
                                                  "pad_token": "<pad>", "unk_token": "<unk>"})
    _write_json(out / "processor_config.json", {"image_processor": processor_config(spec),
                                                "processor_class": "Gemma4Processor"})
    _write_json(out / "preprocessor_config.json", processor_config(spec))
    _write_json(out / "generation_config.json", {"bos_token_id": vocab.id_of("<bos>"),
                                                 "eos_token_id": [vocab.id_of("<eos>"), vocab.id_of("<turn|>")],
                                                 "pad_token_id": vocab.id_of("<pad>")})
    save_tensors(random_weights(spec, len(vocab.pieces)), out / "model.safetensors", dtype=dtype)
    return out


def _write_json(path: Path, payload: dict) -> None:
    path.write_text(json.dumps(payload, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def sample_image(width: int = 432, height: int = 384, seed: int = SEED) -> np.ndarray:
    """A deterministic RGB uint8 picture (smooth gradients plus noise). 432x384 is a multiple of
    patch (16) x pooling (3) on both sides and gives 72 soft tokens, inside llama.cpp's 70..1120 budget,
    so llama.cpp keeps its size and both sides see the same pixels."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    picture = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height)], axis=-1)
    picture += rng.normal(0, 20, picture.shape)
    return np.clip(picture, 0, 255).astype(np.uint8)
