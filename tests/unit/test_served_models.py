"""Which names the served model answers to (issue 15), from recorded GGUF metadata."""

from __future__ import annotations

import logging

import pytest

from edge.errors import ModelNotFoundError
from edge.server.models import ServedModels, hosted_model_id

# general.* and shape keys as llama.cpp's converter writes them for the published GGUFs
E4B = {"general.architecture": "gemma4", "general.name": "Gemma 4 E4B It", "general.basename": "gemma-4",
       "general.size_label": "E4B", "general.finetune": "it", "gemma4.block_count": "42",
       "gemma4.embedding_length": "2560", "gemma4.context_length": "131072"}
E2B = {"general.architecture": "gemma4", "general.name": "Gemma 4 E2B It", "general.basename": "gemma-4",
       "general.size_label": "E2B", "gemma4.block_count": "35", "gemma4.embedding_length": "1536"}
# a fine-tune renamed by its author, size label computed from the parameter count: the shape still says E4B
E4B_FINETUNE = {"general.architecture": "gemma4", "general.name": "Lighthouse Keeper", "general.basename": "keeper",
                "general.size_label": "7.5B", "gemma4.block_count": "42", "gemma4.embedding_length": "2560"}
GEMMA4_26B = {"general.architecture": "gemma4", "general.size_label": "26B-A4B", "gemma4.block_count": "30",
              "gemma4.embedding_length": "2816"}
# the project's tiny random test model: named like E4B, shaped like nothing real
TINY_NAMED_E4B = {"general.architecture": "gemma4", "general.size_label": "E4B", "gemma4.block_count": "6",
                  "gemma4.embedding_length": "64"}
GEMMA3_DEMO = {"general.architecture": "gemma3", "general.name": "Gemma 3 270m", "general.basename": "gemma-3",
               "general.size_label": "270M", "gemma3.block_count": "18", "gemma3.embedding_length": "640"}
GEMMA3N_E4B = {"general.architecture": "gemma3n", "general.size_label": "E4B", "gemma3n.block_count": "35",
               "gemma3n.embedding_length": "2048"}


@pytest.mark.parametrize("metadata, expected", [
    (E4B, "gemma-4-e4b"), (E2B, "gemma-4-e2b"), (E4B_FINETUNE, "gemma-4-e4b"), (GEMMA4_26B, None),
    (TINY_NAMED_E4B, None), (GEMMA3_DEMO, None), (GEMMA3N_E4B, None), ({}, None),
    ({"general.architecture": "gemma4", "gemma4.block_count": "forty-two"}, None),
])
def test_hosted_id_from_the_shape(metadata, expected):
    assert hosted_model_id(metadata) == expected


def test_ids_are_stem_aliases_and_hosted_id():
    models = ServedModels.build("gemma-4-E4B-it-Q4_K_M", ["local", "gpt-4o-mini"], E4B)
    assert models.ids == ("local", "gpt-4o-mini", "gemma-4-E4B-it-Q4_K_M", "gemma-4-e4b")
    assert models.primary == "local"
    assert models.resolve(None) == "local"
    for model_id in models.ids:
        assert models.resolve(model_id) == model_id
    plain = ServedModels.build("gemma-3-270m-q4_k_m", [], GEMMA3_DEMO)
    assert plain.ids == ("gemma-3-270m-q4_k_m",) and plain.resolve(None) == "gemma-3-270m-q4_k_m"


def test_an_alias_equal_to_the_stem_is_listed_once():
    assert ServedModels.build("m", ["m", "n", "n"], {}).ids == ("m", "n")


def test_unknown_model_is_404_naming_every_served_id():
    models = ServedModels.build("gemma-4-E2B-it-Q8_0", ["mine"], E2B)
    with pytest.raises(ModelNotFoundError) as caught:
        models.resolve("gpt-9")
    error = caught.value
    assert error.status == 404 and error.param == "model" and error.code == "model_not_found"
    for model_id in ("mine", "gemma-4-E2B-it-Q8_0", "gemma-4-e2b"):
        assert f"'{model_id}'" in error.message


def test_any_model_maps_every_name_and_says_so_once(caplog):
    models = ServedModels.build("stem", [], {}, any_model=True)
    with caplog.at_level(logging.INFO, logger="edge.server"):
        assert models.resolve("gpt-4o") == "stem"
        assert models.resolve("claude-sonnet") == "stem"
        assert models.resolve("stem") == "stem"
    announcements = [record for record in caplog.records if "--any-model" in record.getMessage()]
    assert len(announcements) == 1 and "gpt-4o" in announcements[0].getMessage()
