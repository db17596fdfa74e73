"""Model names: the catalogue, and `--model NAME` resolving through the same hub cache as a repo id."""

from __future__ import annotations

import pytest

from edge.device.catalogue import CATALOGUE, CatalogueError, is_catalogue_name, lookup
from edge.device.pull import names_for, repo_spec
from edge.runtime.sources import ModelSourceError
from tests.unit.test_sources import resolve_offline, write_hub_cache


def test_the_catalogue_names_e4b_e2b_and_googles_qat_builds():
    assert lookup("gemma-4-e4b").spec == "gemma-4-e4b:Q4_K_M"
    assert lookup("gemma-4-e4b").entry.repo == "ggml-org/gemma-4-E4B-it-GGUF"
    assert lookup("gemma-4-e2b:q8_0").spec == "gemma-4-e2b:Q8_0"  # the tag is case-insensitive
    assert lookup("gemma-4-e4b-qat").entry.repo == "google/gemma-4-E4B-it-qat-q4_0-gguf"
    assert lookup("gemma-4-e4b-qat").quant == "Q4_0"
    assert {entry.architecture for entry in CATALOGUE.values()} == {"gemma-4-e4b", None}


@pytest.mark.parametrize("spec, message", [
    ("gemma-5", "unknown model name 'gemma-5'"),
    ("gemma-4-e4b:Q3_K_S", "gemma-4-e4b has no Q3_K_S build (published: Q4_K_M, Q8_0, F16)"),
    ("Gemma-4-E4B", "unknown model name"),  # names are lower case; repo ids keep their case
])
def test_unknown_names_and_tags_list_what_there_is(spec, message):
    with pytest.raises(CatalogueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        lookup(spec)


def test_names_are_told_apart_from_paths_and_repo_ids():
    assert is_catalogue_name("gemma-4-e4b") and is_catalogue_name("gemma-4-e4b:Q8_0")
    assert not is_catalogue_name("ggml-org/gemma-4-E4B-it-GGUF")
    assert not is_catalogue_name("./gemma-4-e4b") and not is_catalogue_name(None)
    assert repo_spec("gemma-4-e4b") == "ggml-org/gemma-4-E4B-it-GGUF:Q4_K_M"
    assert repo_spec("someone/some-GGUF:Q8_0") == "someone/some-GGUF:Q8_0"
    with pytest.raises(ModelSourceError, match="unknown model name 'llama'"):
        repo_spec("llama")


def test_cached_files_map_back_to_the_names_they_serve():
    files = ["gemma-4-E4B-it-Q4_K_M.gguf", "gemma-4-E4B-it-Q8_0.gguf", "mmproj-gemma-4-E4B-it-bf16.gguf"]
    assert names_for("ggml-org/gemma-4-E4B-it-GGUF", files) == ["gemma-4-e4b:Q4_K_M", "gemma-4-e4b:Q8_0"]
    assert names_for("someone/else", files) == []


def test_a_name_resolves_offline_from_the_hub_cache_like_its_repo(tmp_path):
    cache = tmp_path / "hub"
    write_hub_cache(cache, "ggml-org/gemma-4-E4B-it-GGUF",
                    ["gemma-4-E4B-it-Q4_K_M.gguf", "gemma-4-E4B-it-Q8_0.gguf", "mmproj-gemma-4-E4B-it-bf16.gguf"])
    assert resolve_offline(cache, "gemma-4-e4b") == \
        "MODEL gemma-4-E4B-it-Q4_K_M.gguf MMPROJ mmproj-gemma-4-E4B-it-bf16.gguf"
    assert resolve_offline(cache, "gemma-4-e4b:Q8_0") == \
        "MODEL gemma-4-E4B-it-Q8_0.gguf MMPROJ mmproj-gemma-4-E4B-it-bf16.gguf"
    assert resolve_offline(cache, "gemma-4-e4b:F16") == (
        "ERROR ggml-org/gemma-4-E4B-it-GGUF with a F16 GGUF is not in the local Hugging Face cache and offline "
        "mode is on (HF_HUB_OFFLINE=1): download it once with network access (edge pull), or pass a local path")
