"""Converter behaviour: metadata llama.cpp needs, bf16 input, clear errors and no partial outputs."""

from __future__ import annotations

import json
import shutil

import gguf
import numpy as np
import pytest

from edge.convert.cli import add_convert_command, add_quantize_command
from edge.convert.convert import convert_checkpoint
from edge.convert.errors import ConversionError
from edge.convert.safetensors_io import float32_to_bf16_bits
from edge.convert.test_model import make_test_model, random_weights, VARIANTS, build_vocabulary


def _field(path, key):
    field = gguf.GGUFReader(path).get_field(key)
    return None if field is None else field.contents()


def test_text_metadata(tiny_models):
    path = tiny_models.text_gguf
    assert _field(path, "general.architecture") == "gemma4"
    assert _field(path, "tokenizer.ggml.model") == "gemma4"
    assert "<|turn>" in _field(path, "tokenizer.chat_template")
    assert _field(path, "gemma4.attention.shared_kv_layers") == 2
    assert _field(path, "gemma4.attention.sliding_window_pattern") == [True, True, True, False, True, False]
    assert _field(path, "gemma4.final_logit_softcapping") == pytest.approx(30.0)


def test_mmproj_metadata_sets_use_gelu(tiny_models):
    path = tiny_models.mmproj_gguf
    assert _field(path, "clip.projector_type") == "gemma4v"
    assert _field(path, "clip.use_gelu") is True
    assert _field(path, "clip.vision.image_mean") == [0.0, 0.0, 0.0]


def test_bf16_checkpoint_converts_exactly(tmp_path):
    folder = make_test_model(tmp_path / "bf16", "tiny", dtype="BF16")
    result = convert_checkpoint(folder, tmp_path / "out", "f32", progress=False)
    tensor = next(t for t in gguf.GGUFReader(result.text_gguf).tensors if t.name == "blk.0.ffn_up.weight")
    original = random_weights(VARIANTS["tiny"], len(build_vocabulary().pieces))[
        "model.language_model.layers.0.mlp.up_proj.weight"]
    widened = (float32_to_bf16_bits(original).astype(np.uint32) << 16).view(np.float32)
    np.testing.assert_array_equal(np.asarray(tensor.data).reshape(original.shape), widened)


@pytest.fixture()
def checkpoint_copy(tiny_models, tmp_path):
    return shutil.copytree(tiny_models.checkpoint, tmp_path / "ckpt")


def _assert_fails_cleanly(source, out, match):
    with pytest.raises(ConversionError, match=match):
        convert_checkpoint(source, out, "f16", progress=False)
    assert not out.exists() or not any(out.iterdir()), list(out.iterdir())


def test_missing_config(checkpoint_copy, tmp_path):
    (checkpoint_copy / "config.json").unlink()
    _assert_fails_cleanly(checkpoint_copy, tmp_path / "out", "missing config.json")


def test_unsupported_architecture(checkpoint_copy, tmp_path):
    config = json.loads((checkpoint_copy / "config.json").read_text())
    config["architectures"] = ["LlamaForCausalLM"]
    (checkpoint_copy / "config.json").write_text(json.dumps(config))
    _assert_fails_cleanly(checkpoint_copy, tmp_path / "out", "unsupported architecture")


def test_truncated_safetensors(checkpoint_copy, tmp_path):
    weights = checkpoint_copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    _assert_fails_cleanly(checkpoint_copy, tmp_path / "out", "runs past the end")


def test_garbage_safetensors(checkpoint_copy, tmp_path):
    (checkpoint_copy / "model.safetensors").write_bytes(b"\xff" * 64)
    _assert_fails_cleanly(checkpoint_copy, tmp_path / "out", "corrupt safetensors header")


def test_unsupported_dtype(checkpoint_copy, tmp_path):
    weights = checkpoint_copy / "model.safetensors"
    raw = weights.read_bytes()
    header_len = int.from_bytes(raw[:8], "little")
    header = raw[8:8 + header_len].replace(b'"dtype":"F32"', b'"dtype":"I32"', 1)
    weights.write_bytes(raw[:8] + header + raw[8 + header_len:])
    _assert_fails_cleanly(checkpoint_copy, tmp_path / "out", "dtype I32")


def test_offline_repo_not_in_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    _assert_fails_cleanly("google/gemma-4-E4B-it", tmp_path / "out", "not in the local cache")


def test_cli_commands_register_handlers():
    import argparse

    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers()
    add_convert_command(subparsers)
    add_quantize_command(subparsers)
    args = parser.parse_args(["convert", "src", "--out", "o", "--outtype", "q8_0"])
    assert (args.source, args.outtype, args.handler.__name__) == ("src", "q8_0", "run_convert")
    args = parser.parse_args(["quantize", "a.gguf", "--type", "Q6_K", "--out", "b.gguf"])
    assert (args.type, args.handler.__name__) == ("Q6_K", "run_quantize")
    assert args.handler(argparse.Namespace(source="missing.gguf", out="x.gguf", type="Q6_K",
                                           imatrix=None, threads=1)) == 1
