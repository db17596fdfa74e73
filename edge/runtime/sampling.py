"""One llama.cpp sampler chain per request, built from the request's sampling parameters.

The chain is new for every request and carries its own seed, so a seeded request samples the same
tokens whatever ran before it (the high-level ``Llama`` class shares RNG state across calls).
Penalties see only generated tokens, as in OpenAI's definition of presence/frequency penalties.
"""

from __future__ import annotations

import ctypes
import secrets

import numpy as np

import llama_cpp
from llama_cpp import _internals

from edge.core.constraints import Constraint
from edge.core.request import MAX_SEED, SamplingParams


def resolve_seed(seed: int | None) -> int:
    return seed if seed is not None else secrets.randbelow(MAX_SEED + 1)


class GrammarCompileError(ValueError):
    """llama.cpp rejected a generated grammar (a bug of ours, or a schema construct we mistranslated)."""


def grammar_sampler(model: _internals.LlamaModel, constraint: Constraint) -> llama_cpp.llama_sampler_p:
    """A llama.cpp grammar sampler; lazy (idle until a trigger token) when the constraint has triggers."""
    grammar = constraint.gbnf.encode("utf-8")
    if constraint.trigger_tokens:
        triggers = (llama_cpp.llama_token * len(constraint.trigger_tokens))(*constraint.trigger_tokens)
        pointer = llama_cpp.llama_sampler_init_grammar_lazy_patterns(
            model.vocab, grammar, b"root", None, 0, triggers, len(constraint.trigger_tokens))
    else:
        pointer = llama_cpp.llama_sampler_init_grammar(model.vocab, grammar, b"root")
    if not pointer:
        raise GrammarCompileError("llama.cpp could not parse the generated grammar")
    return pointer


def check_grammar(model: _internals.LlamaModel, constraint: Constraint) -> None:
    llama_cpp.llama_sampler_free(grammar_sampler(model, constraint))


def build_sampler(model: _internals.LlamaModel, params: SamplingParams, seed: int,
                  penalty_window: int, banned_tokens: tuple[int, ...] = (), first_stage=None) -> _internals.LlamaSampler:
    """``first_stage`` (a Python callable over the candidates) runs before anything reorders them."""
    sampler = _internals.LlamaSampler()
    if first_stage is not None:
        sampler.add_custom(first_stage)
    bias = {**params.logit_bias, **{token: float("-inf") for token in banned_tokens}}
    if bias:
        sampler.add_logit_bias(model.n_vocab(), bias)
    if _has_penalties(params):
        sampler.add_penalties(model.n_vocab(), penalty_window, params.repetition_penalty,
                              params.frequency_penalty, params.presence_penalty)
    if params.temperature == 0:
        sampler.add_greedy()
        return sampler
    if params.top_k > 0:
        sampler.add_top_k(params.top_k)
    if params.top_p < 1.0:
        sampler.add_top_p(params.top_p, 1)
    if params.min_p > 0.0:
        sampler.add_min_p(params.min_p, 1)
    sampler.add_temp(params.temperature)
    sampler.add_dist(seed)
    return sampler


def _has_penalties(params: SamplingParams) -> bool:
    return (params.repetition_penalty != 1.0 or params.frequency_penalty != 0.0
            or params.presence_penalty != 0.0)


def is_end_of_generation(model: _internals.LlamaModel, token: int) -> bool:
    return bool(llama_cpp.llama_vocab_is_eog(model.vocab, token))


def is_control_token(model: _internals.LlamaModel, token: int) -> bool:
    attributes = llama_cpp.llama_vocab_get_attr(model.vocab, token)
    return bool(attributes & llama_cpp.LLAMA_TOKEN_ATTR_CONTROL)


_CANDIDATE = np.dtype([("id", "<i4"), ("logit", "<f4"), ("p", "<f4")])


class TokenSampler:
    """Picks each token with the request's chain, checking a grammar on the chosen token first.

    Applying a grammar to every candidate costs a pass over the whole vocabulary (262,144 entries for
    Gemma) per token; most tokens a model picks are allowed anyway. As llama.cpp's own sampler does, the
    chain picks without the grammar, the grammar checks that one token, and only a rejected pick is redone
    with the grammar applied to all candidates. The result is the same distribution, at a fraction of
    the cost (measured: 5x faster JSON decoding on the demo model)."""

    def __init__(self, model: _internals.LlamaModel, chain: _internals.LlamaSampler, constraint: Constraint | None):
        self.chain = chain
        self.grammar = grammar_sampler(model, constraint) if constraint is not None else None
        n_vocab = model.n_vocab()
        self._ids = np.arange(n_vocab, dtype=np.int32)
        self._candidates = (llama_cpp.llama_token_data * n_vocab)()
        self._view = np.frombuffer(self._candidates, dtype=_CANDIDATE)
        self._array = llama_cpp.llama_token_data_array(self._candidates, n_vocab, -1, False)
        self._one = (llama_cpp.llama_token_data * 1)()
        self._one_array = llama_cpp.llama_token_data_array(self._one, 1, -1, False)
        self._n_vocab = n_vocab

    def sample(self, context: _internals.LlamaContext) -> int:
        if self.grammar is None:
            return self.chain.sample(context, -1)  # llama.cpp's own loop: pick and accept
        token = self._pick(context, with_grammar=False)
        if not self._grammar_allows(token):
            token = self._pick(context, with_grammar=True)
        self.accept(token)
        return token

    def accept(self, token: int) -> None:
        """Record a token in every stage's state (penalties, grammar), whoever chose it."""
        llama_cpp.llama_sampler_accept(self.chain.sampler, token)
        if self.grammar is not None:
            llama_cpp.llama_sampler_accept(self.grammar, token)

    def close(self) -> None:
        if self.grammar is not None:
            llama_cpp.llama_sampler_free(self.grammar)
            self.grammar = None
        self.chain.close()

    def _pick(self, context: _internals.LlamaContext, with_grammar: bool) -> int:
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(context.ctx, -1), shape=(self._n_vocab,))
        self._view["id"] = self._ids
        self._view["logit"] = logits
        self._view["p"] = 0.0
        self._array.size, self._array.selected, self._array.sorted = self._n_vocab, -1, False
        if with_grammar:
            llama_cpp.llama_sampler_apply(self.grammar, ctypes.byref(self._array))
        llama_cpp.llama_sampler_apply(self.chain.sampler, ctypes.byref(self._array))
        if self._array.selected < 0:
            raise RuntimeError("the sampler chain selected no token")
        return int(self._candidates[self._array.selected].id)

    def _grammar_allows(self, token: int) -> bool:
        self._one[0].id, self._one[0].logit, self._one[0].p = token, 1.0, 0.0
        self._one_array.size, self._one_array.selected, self._one_array.sorted = 1, -1, False
        llama_cpp.llama_sampler_apply(self.grammar, ctypes.byref(self._one_array))
        return self._one[0].logit != float("-inf")
