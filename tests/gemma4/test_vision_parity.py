"""The mmproj of the tiny model through llama.cpp's mtmd against transformers' image features (golden)."""

from __future__ import annotations

import hashlib
import json

import numpy as np

from edge.convert.test_model import sample_image
from edge.runtime.llama import ContextOptions, new_context
from edge.runtime.vision import VisionProjector
from pathlib import Path

GOLDEN = Path(__file__).parent / "golden"

# Measured: max |Δ| 1.0e-3 (embeddings span about ±3) with clip.use_gelu; without it ~4e-2.
MAX_ABS_EMBEDDING_DIFF = 5e-3


def _image_chunk_embeddings(tiny_model, tiny_models):
    with VisionProjector(tiny_models.mmproj_gguf, tiny_model) as projector:
        prompt = f"<bos><|turn>user\n{projector.marker}What is this?<turn|>\n"
        with projector.tokenize(prompt, [sample_image()]) as chunks:
            kinds = [chunk.kind for chunk in chunks.describe()]
            return projector.encode_image(chunks, kinds.index("image"))


def test_sample_image_is_the_one_the_golden_file_saw():
    meta = json.loads((GOLDEN / "meta.json").read_text())
    assert hashlib.sha256(sample_image().tobytes()).hexdigest() == meta["image_sha256"]


def test_vision_embeddings_match_transformers(tiny_model, tiny_models, golden_vision):
    ours = _image_chunk_embeddings(tiny_model, tiny_models)
    reference = golden_vision["embeddings"]
    assert ours.shape == reference.shape == (72, 64)
    assert np.abs(ours - reference).max() <= MAX_ABS_EMBEDDING_DIFF
    assert reference.std() > 0.1


def sample_image_prompt_evaluates_into_a_context(tiny_model, tiny_models):
    context = new_context(tiny_model, ContextOptions(n_ctx=512, kv_type="f32"))
    with VisionProjector(tiny_models.mmproj_gguf, tiny_model) as projector:
        prompt = f"<bos><|turn>user\n{projector.marker}Describe.<turn|>\n<|turn>model\n"
        with projector.tokenize(prompt, [sample_image()]) as chunks:
            chunks_seen = chunks.describe()
            n_past = projector.evaluate(context, chunks, n_past=0)
    assert [chunk.kind for chunk in chunks_seen] == ["text", "image", "text"]
    # <|image> closes the first text chunk and <image|> opens the last: the turn format's image frame
    assert chunks_seen[0].tokens[-1] == tiny_model.tokenize(b"<|image>", False, True)[0]
    assert n_past == sum(chunk.n_tokens for chunk in chunks_seen)
    assert chunks_seen[1].n_tokens == 72
