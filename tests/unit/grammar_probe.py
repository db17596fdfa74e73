"""Runs GBNF through llama.cpp's own grammar engine on given text, with a vocabulary and no model weights.

The text is tokenized with the vocabulary (control markers listed in ``specials`` as their single
tokens, the rest as plain text) and fed token by token to a real grammar sampler: a token the grammar
rejects, or an end of generation it does not allow, means the text is not in the grammar's language.
"""

from __future__ import annotations

import ctypes
import re
from pathlib import Path

import llama_cpp
import numpy as np

_CANDIDATE = np.dtype([("id", "<i4"), ("logit", "<f4"), ("p", "<f4")])


def _valid_utf8_prefix(data: bytes) -> bool:
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError as error:
        return error.reason == "unexpected end of data" and error.start >= len(data) - 3


class GrammarProbe:
    def __init__(self, gguf: Path, specials: tuple[str, ...] = ()):
        params = llama_cpp.llama_model_default_params()
        params.vocab_only = True
        self.model = llama_cpp.llama_model_load_from_file(str(gguf).encode(), params)
        assert self.model, gguf
        self.vocab = llama_cpp.llama_model_get_vocab(self.model)
        self.end = llama_cpp.llama_vocab_eos(self.vocab)
        self.specials = specials
        self._split = re.compile("(" + "|".join(map(re.escape, specials)) + ")") if specials else None
        self._one = (llama_cpp.llama_token_data * 1)()
        self._array = llama_cpp.llama_token_data_array(self._one, 1, -1, False)

    def token(self, text: str) -> int:
        tokens = self.tokenize(text, special=True)
        assert len(tokens) == 1, (text, tokens)
        return tokens[0]

    def tokenize(self, text: str, special: bool = False) -> list[int]:
        data = text.encode("utf-8")
        buffer = (llama_cpp.llama_token * (len(data) + 8))()
        count = llama_cpp.llama_tokenize(self.vocab, data, len(data), buffer, len(buffer), False, special)
        assert count >= 0
        return list(buffer[:count])

    def tokens(self, text: str) -> list[int]:
        pieces = self._split.split(text) if self._split else [text]
        result = []
        for piece in pieces:
            if piece in self.specials:
                result.append(self.token(piece))
            elif piece:
                result.extend(self.tokenize(piece))
        return result

    def compiles(self, gbnf: str) -> bool:
        sampler = llama_cpp.llama_sampler_init_grammar(self.vocab, gbnf.encode("utf-8"), b"root")
        if not sampler:
            return False
        llama_cpp.llama_sampler_free(sampler)
        return True

    def accepts(self, gbnf: str, text: str, triggers: tuple[int, ...] = ()) -> bool:
        if triggers:
            array = (llama_cpp.llama_token * len(triggers))(*triggers)
            sampler = llama_cpp.llama_sampler_init_grammar_lazy_patterns(
                self.vocab, gbnf.encode("utf-8"), b"root", None, 0, array, len(triggers))
        else:
            sampler = llama_cpp.llama_sampler_init_grammar(self.vocab, gbnf.encode("utf-8"), b"root")
        assert sampler, "llama.cpp rejected the grammar"
        try:
            for token in self.tokens(text) + [self.end]:
                if not self._allowed(sampler, token):
                    return False
                if token != self.end:
                    llama_cpp.llama_sampler_accept(sampler, token)
            return True
        finally:
            llama_cpp.llama_sampler_free(sampler)

    def sample(self, gbnf: str, rng, max_tokens: int = 200, stop: float = 0.6) -> str | None:
        """A random walk through the grammar: each step one token, drawn uniformly from those the grammar
        allows (and that keep the text valid UTF-8, as the engine's guard does); where it may end, it
        ends with probability ``stop``. None when it did not end within ``max_tokens``."""
        pieces = self._pieces()
        size = len(pieces)
        candidates = (llama_cpp.llama_token_data * size)()
        view = np.frombuffer(candidates, dtype=_CANDIDATE)
        ids = np.arange(size, dtype=np.int32)
        array = llama_cpp.llama_token_data_array(candidates, size, -1, False)
        sampler = llama_cpp.llama_sampler_init_grammar(self.vocab, gbnf.encode("utf-8"), b"root")
        assert sampler, "llama.cpp rejected the grammar"
        text = b""
        try:
            for _ in range(max_tokens):
                view["id"], view["logit"], view["p"] = ids, 0.0, 0.0
                array.size, array.selected, array.sorted = size, -1, False
                llama_cpp.llama_sampler_apply(sampler, ctypes.byref(array))
                allowed = view["id"][view["logit"] != -np.inf]
                ending = [int(token) for token in allowed if llama_cpp.llama_vocab_is_eog(self.vocab, int(token))]
                onward = [int(token) for token in allowed if int(token) not in ending
                          and _valid_utf8_prefix(text + pieces[int(token)])]
                if ending and (not onward or rng.random() < stop):
                    return text.decode("utf-8")
                if not onward:
                    return None
                token = rng.choice(onward)
                llama_cpp.llama_sampler_accept(sampler, token)
                text += pieces[token]
            return None
        finally:
            llama_cpp.llama_sampler_free(sampler)

    def _pieces(self) -> list[bytes]:
        if not hasattr(self, "_all_pieces"):
            self._all_pieces = [self.piece(token) for token in range(llama_cpp.llama_vocab_n_tokens(self.vocab))]
        return self._all_pieces

    def piece(self, token: int) -> bytes:
        buffer = ctypes.create_string_buffer(256)
        size = llama_cpp.llama_token_to_piece(self.vocab, token, buffer, len(buffer), 0, True)
        return buffer.raw[:size]

    def _allowed(self, sampler, token: int) -> bool:
        self._one[0].id, self._one[0].logit, self._one[0].p = token, 0.0, 0.0
        self._array.size, self._array.selected, self._array.sorted = 1, -1, False
        llama_cpp.llama_sampler_apply(sampler, ctypes.byref(self._array))
        return self._one[0].logit != float("-inf")
