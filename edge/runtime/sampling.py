"""One llama.cpp sampler chain per request, built from the request's sampling parameters.

The chain is new for every request and carries its own seed, so a seeded request samples the same
tokens whatever ran before it (the high-level ``Llama`` class shares RNG state across calls).
Penalties see only generated tokens, as in OpenAI's definition of presence/frequency penalties.
"""

from __future__ import annotations

import secrets

import llama_cpp
from llama_cpp import _internals

from edge.runtime.grammar import Constraint
from edge.runtime.request import MAX_SEED, SamplingParams


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
                  penalty_window: int, constraint: Constraint | None = None,
                  banned_tokens: tuple[int, ...] = (), first_stage=None) -> _internals.LlamaSampler:
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
    if constraint is not None:
        # before truncation, so top-k/top-p choose among the tokens the grammar allows
        llama_cpp.llama_sampler_chain_add(sampler.sampler, grammar_sampler(model, constraint))
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
