"""llama.cpp's gemma4 tokenizer (from our GGUF) against the Hugging Face tokenizer."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer

from edge.convert.test_model import SPECIAL_TOKENS
from edge.runtime.llama import tokenize

LIVE_STRINGS = [
    "<bos><|turn>user\nHi<turn|>\n<|turn>model\n<|channel>thought\n<channel|>Hello!",
    "    four spaces, then\ttab\t\tand trailing   ",
    "🦙🚀 emoji; ZWJ 👩‍💻; flags 🇫🇷",
    "for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; }\n\n\n",
    "<|tool_call>call:f{x:<|\"|>y<|\"|>,n:3.5,ok:true}<tool_call|>",
    "mixed ÄÖÜ ß ñ 你好 мир \\u0000 \x7f",
]


def test_matches_golden_transformers_ids(tiny_model, golden_tokenizer):
    assert len(golden_tokenizer) >= 10
    for case in golden_tokenizer:
        assert tokenize(tiny_model, case["text"], special=True) == case["ids"], case["text"]


@pytest.mark.parametrize("text", LIVE_STRINGS)
def test_matches_hugging_face_tokenizers(tiny_model, tiny_models, text):
    reference = Tokenizer.from_file(str(tiny_models.checkpoint / "tokenizer.json"))
    assert tokenize(tiny_model, text, special=True) == reference.encode(text, add_special_tokens=False).ids


def test_every_special_token_is_one_token(tiny_model):
    for text in SPECIAL_TOKENS:
        assert len(tokenize(tiny_model, text, special=True)) == 1, text


def test_unknown_characters_fall_back_to_bytes(tiny_model, tiny_models):
    reference = Tokenizer.from_file(str(tiny_models.checkpoint / "tokenizer.json"))
    text = "\U0001F9EC"  # not in the vocabulary: four UTF-8 bytes
    ids = tokenize(tiny_model, text, special=True)
    assert len(ids) == 4
    assert ids == reference.encode(text, add_special_tokens=False).ids
