"""A grammar probe over the tiny Gemma 4 test model's vocabulary (built in seconds, no weights read)."""

from __future__ import annotations

import pytest

from grammar_probe import GrammarProbe

GEMMA_MARKERS = ('<|"|>', "<|tool_call>", "<tool_call|>", "<|channel>", "<channel|>")


@pytest.fixture(scope="session")
def probe(tmp_path_factory) -> GrammarProbe:
    from edge.convert.fixtures import build_test_models

    models = build_test_models(tmp_path_factory.mktemp("schema-vocabulary"), "tiny")
    return GrammarProbe(models.text_gguf, GEMMA_MARKERS)
