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

    def _allowed(self, sampler, token: int) -> bool:
        self._one[0].id, self._one[0].logit, self._one[0].p = token, 0.0, 0.0
        self._array.size, self._array.selected, self._array.sorted = 1, -1, False
        llama_cpp.llama_sampler_apply(sampler, ctypes.byref(self._array))
        return self._one[0].logit != float("-inf")
