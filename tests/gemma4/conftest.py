"""Session fixtures: the tiny and wide Gemma 4 test models, converted and quantized once per run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge.convert.fixtures import build_test_models
from edge.convert.quantize import QUANT_TYPES
from edge.runtime.llama import ContextOptions, load_model, new_context, route_llama_logs

GOLDEN = Path(__file__).parent / "golden"
QUANT_TYPES = tuple(QUANT_TYPES)


@pytest.fixture(scope="session", autouse=True)
def _quiet_llama():
    route_llama_logs()  # llama.cpp's chatter goes to Python logging instead of stderr


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    return build_test_models(tmp_path_factory.mktemp("gemma4-tiny"), "tiny")


@pytest.fixture(scope="session")
def wide_models(tmp_path_factory):
    return build_test_models(tmp_path_factory.mktemp("gemma4-wide"), "wide", quant_types=QUANT_TYPES)


@pytest.fixture(scope="session")
def tiny_model(tiny_models):
    return load_model(tiny_models.text_gguf)


@pytest.fixture(scope="session")
def tiny_context(tiny_model):
    # F32 KV cache: the F16 default adds ~2x the error (measured on the test model)
    return new_context(tiny_model, ContextOptions(n_ctx=512, kv_type="f32"))


@pytest.fixture(scope="session")
def golden_text():
    return np.load(GOLDEN / "text_logits.npz")


@pytest.fixture(scope="session")
def golden_vision():
    return np.load(GOLDEN / "vision.npz")


@pytest.fixture(scope="session")
def golden_tokenizer():
    return json.loads((GOLDEN / "tokenizer.json").read_text(encoding="utf-8"))
