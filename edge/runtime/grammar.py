"""What the schema layer needs to know about a loaded vocabulary (the only llama.cpp part of grammars).

``edge.schema`` drops a bound no output could reach and refuses a minimum none could (a
``maxLength`` beyond what 4,096 tokens can spell constrains nothing). What "can spell" means depends
on the vocabulary's longest token piece, which only the loaded model knows.
"""

from __future__ import annotations

import ctypes

import llama_cpp
from llama_cpp import _internals

from edge.schema import Limits, limits_for_vocabulary


def longest_piece_chars(model: _internals.LlamaModel) -> int:
    """Characters in the longest text any single token of ``model`` decodes to (special tokens too)."""
    buffer = ctypes.create_string_buffer(512)
    longest = 1
    for token in range(model.n_vocab()):
        size = llama_cpp.llama_token_to_piece(model.vocab, token, buffer, len(buffer), 0, True)
        if size < 0:  # a piece longer than the buffer: count it from a buffer of its size
            wide = ctypes.create_string_buffer(-size)
            size = llama_cpp.llama_token_to_piece(model.vocab, token, wide, len(wide), 0, True)
            text = wide.raw[:size]
        else:
            text = buffer.raw[:size]
        longest = max(longest, len(text.decode("utf-8", errors="replace")), 1)
    return longest


def grammar_limits(model: _internals.LlamaModel) -> Limits:
    """The schema limits for ``model``: the longest output is MAX_OUTPUT_TOKENS of its longest piece."""
    return limits_for_vocabulary(longest_piece_chars(model))
