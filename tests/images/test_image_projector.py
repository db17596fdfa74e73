"""End to end with the tiny Gemma 4: a loaded image goes through llama.cpp's projector at its budget."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edge.convert.fixtures import build_test_models
from edge.convert.test_model import sample_image
from edge.runtime.images import ImagePolicy, load_image
from edge.runtime.llama import ContextOptions, load_model, new_context, route_llama_logs
from edge.runtime.vision import VisionProjector, options_for_fitted_images

from .conftest import PARAM, data_url, encode

# The documented counts for a 640 x 480 picture (see test_image_budget.test_fit_size).
TOKENS_BY_DETAIL = {"low": 63, "auto": 266, "high": 1064}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    route_llama_logs()
    models = build_test_models(tmp_path_factory.mktemp("images-tiny"), "tiny")
    model = load_model(models.text_gguf)
    with VisionProjector(models.mmproj_gguf, model, options_for_fitted_images()) as projector:
        yield model, projector


@pytest.fixture(scope="module")
def picture_url() -> str:
    return data_url(encode(Image.fromarray(sample_image(640, 480)), "PNG"))


def _prompt(projector: VisionProjector) -> str:
    return f"<bos><|turn>user\n{projector.marker}What is this?<turn|>\n<|turn>model\n"


@pytest.mark.parametrize("detail", list(TOKENS_BY_DETAIL))
def test_each_detail_level_costs_its_documented_tokens(tiny, picture_url, detail):
    _, projector = tiny
    loaded = load_image(picture_url, ImagePolicy(), PARAM, detail)
    with projector.tokenize(_prompt(projector), [loaded.pixels]) as chunks:
        chunk_list = chunks.describe()
        image_index = [chunk.kind for chunk in chunk_list].index("image")
        embeddings = projector.encode_image(chunks, image_index)
    assert chunk_list[image_index].n_tokens == loaded.n_tokens == TOKENS_BY_DETAIL[detail]
    assert embeddings.shape[0] == TOKENS_BY_DETAIL[detail] and np.isfinite(embeddings).all()


def test_a_loaded_image_evaluates_into_a_context(tiny, picture_url):
    model, projector = tiny
    loaded = load_image(picture_url, ImagePolicy(), PARAM, "low")
    context = new_context(model, ContextOptions(n_ctx=256))
    with projector.tokenize(_prompt(projector), [loaded.pixels]) as chunks:
        chunk_list = chunks.describe()
        n_past = projector.evaluate(context, chunks, n_past=0)
    assert [chunk.kind for chunk in chunk_list] == ["text", "image", "text"]
    assert chunk_list[1].n_tokens > 0
    assert n_past == sum(chunk.n_tokens for chunk in chunk_list)
