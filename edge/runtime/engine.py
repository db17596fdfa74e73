"""The generation core: one path from an internal request to a stream of typed events.

``prepare`` renders and tokenizes (thread-safe, so it runs before the first byte is sent and any
context-length error is a clean 400); ``generate`` evaluates the prompt, reusing the KV cache of the
longest prefix shared with the previous request, then samples token by token. One request owns
the context at a time; the server queues the rest.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
from llama_cpp import _internals

from edge.errors import ContextLengthExceededError, EngineError, InvalidRequestError
from edge.formats import chat_format_for
from edge.formats.base import ChatFormat, Piece
from edge.runtime import llama
from edge.core.events import Event, Finish, TextDelta, TokenLogprob, TopLogprob, Usage
from edge.core.constraints import Constraint
from edge.core.request import MAX_OUTPUT_TOKENS, GenerationRequest, ImagePart
from edge.runtime.sampling import (
    GrammarCompileError, TokenSampler, build_sampler, check_grammar, is_control_token, is_end_of_generation,
    resolve_seed,
)
from edge.runtime.sources import ModelFiles
from edge.runtime.text import StopMatcher, Utf8Stream
from edge.runtime.utf8_guard import Utf8Guard
from edge.runtime.vision import ChunkList, VisionError, VisionOptions, VisionProjector, options_for_fitted_images

log = logging.getLogger("edge.runtime")


class ContextTooLargeError(ValueError):
    """The operator asked for a context window beyond what the model was trained for."""


@dataclass(frozen=True)
class EngineConfig:
    ctx_size: int = 8192
    batch_size: int = 512
    threads: int = 2
    kv_type: str = "f16"
    prefix_cache: bool = True
    load: llama.LoadOptions = llama.LoadOptions()


@dataclass(frozen=True)
class ModelInfo:
    id: str
    path: Path
    mmproj: Path | None
    origin: str
    architecture: str
    chat_format: str
    n_ctx: int
    n_ctx_train: int
    n_params: int
    size_bytes: int
    description: str
    created: int
    metadata: dict[str, str] = field(repr=False, default_factory=dict)
    weight_buffers: dict[str, float] = field(default_factory=dict)  # llama.cpp buffer type -> MiB


@dataclass(frozen=True)
class ImageSpan:
    """An image inside a prompt: ``n_tokens`` soft tokens from position ``start``, encoded when evaluated."""

    start: int
    n_tokens: int
    chunks: ChunkList
    index: int  # of the image chunk inside ``chunks``


@dataclass(frozen=True)
class PreparedPrompt:
    request: GenerationRequest
    tokens: tuple[int, ...]  # images appear as negative stand-in ids, equal only for equal pixels
    max_tokens: int
    seed: int
    constraint: Constraint | None = None
    banned_tokens: tuple[int, ...] = ()
    images: tuple[ImageSpan, ...] = ()

    def close(self) -> None:
        for span in self.images:
            span.chunks.close()


class Engine:
    def __init__(self, model: _internals.LlamaModel, context: _internals.LlamaContext,
                 chat_format: ChatFormat, info: ModelInfo, config: EngineConfig,
                 vision: VisionProjector | None = None):
        self.model = model
        self.vision = vision
        self.context = context
        self.chat_format = chat_format
        self.info = info
        self.config = config
        self._n_vocab = model.n_vocab()
        self._batch = _internals.LlamaBatch(n_tokens=config.batch_size, embd=0, n_seq_max=1, verbose=False)
        self._cached: list[int] = []  # tokens whose keys/values are in the cache, position = index
        self._control_tokens: dict[str, int] = {}
        self._marker_split = re.compile("(" + "|".join(map(re.escape, chat_format.text_markers)) + ")"
                                        if chat_format.text_markers else "(?!)")
        self.utf8_guard = Utf8Guard(model)
        self._lock = threading.Lock()
        self._vision_lock = threading.Lock()  # mtmd's context is not documented as thread-safe

    @classmethod
    def load(cls, files: ModelFiles, config: EngineConfig, model_id: str | None = None) -> "Engine":
        with llama.captured_llama_log() as load_log:
            model = llama.load_model(files.model, config.load)
        weight_buffers = llama.weight_buffers_from_log(load_log)
        metadata = model.metadata()
        architecture = metadata.get("general.architecture", "unknown")
        chat_format = chat_format_for(architecture, metadata.get("tokenizer.chat_template"))
        if config.ctx_size > model.n_ctx_train():
            raise ContextTooLargeError(
                f"--ctx-size {config.ctx_size} exceeds the model's trained context of {model.n_ctx_train()} tokens")
        context = llama.new_context(model, llama.ContextOptions(
            n_ctx=config.ctx_size, n_batch=config.batch_size, n_threads=config.threads, kv_type=config.kv_type))
        vision = None
        if files.mmproj is not None:
            vision = VisionProjector(files.mmproj, model, options_for_fitted_images(VisionOptions(n_threads=config.threads)))
        info = ModelInfo(
            id=model_id or files.model.stem, path=files.model, mmproj=files.mmproj, origin=files.origin,
            architecture=architecture, chat_format=chat_format.name, n_ctx=context.n_ctx(),
            n_ctx_train=model.n_ctx_train(), n_params=model.n_params(), size_bytes=model.size(),
            description=model.desc(), created=int(files.model.stat().st_mtime), metadata=metadata,
            weight_buffers=weight_buffers)
        return cls(model, context, chat_format, info, config, vision)

    def close(self) -> None:
        with self._lock:
            self._batch.close()
            if self.vision is not None:
                self.vision.close()
            self.context.close()
            self.model.close()

    # -- preparing ---------------------------------------------------------------------------

    def tokenize_prompt(self, request: GenerationRequest) -> tuple[list[int], list[ImageSpan]]:
        """Token ids, with each image's soft tokens as stand-ins and the spans that say where they are."""
        segments = self.chat_format.render(request.messages, tools=request.tools,
                                           enable_thinking=request.enable_thinking)
        images = iter([part.image for message in request.messages for part in message.parts
                       if isinstance(part, ImagePart)])
        tokens: list[int] = []
        spans: list[ImageSpan] = []
        placeholder = self.chat_format.image_placeholder
        for segment in segments:
            pieces = segment.text.split(placeholder) if segment.control and placeholder else [segment.text]
            for number, piece in enumerate(pieces):
                if number:
                    self._append_image(self._next_image(images), tokens, spans)
                tokens.extend(self._tokenize_segment(piece, segment.control))
        if next(images, None) is not None:
            raise EngineError("the chat template placed fewer images than the request holds")
        return tokens, spans

    @staticmethod
    def _next_image(images):
        image = next(images, None)
        if image is None:
            raise EngineError("the chat template placed more images than the request holds")
        return image

    def _tokenize_segment(self, text: str, control: bool) -> list[int]:
        """Client text never yields a control token, not even the ones llama.cpp matches in plain text.

        Gemma 4 GGUFs mark ``<|tool_call>``, ``<|"|>`` and the other markers the chat parser must see as
        USER_DEFINED, and llama.cpp's tokenizer matches user-defined tokens even with special parsing
        off. A marker inside client text is therefore tokenized in two parts (``<|tool_call`` + ``>``):
        the same characters, as ordinary tokens."""
        if control:
            return llama.tokenize(self.model, text, special=True)
        tokens: list[int] = []
        for piece in self._marker_split.split(text):
            if piece in self.chat_format.text_markers:
                tokens.extend(llama.tokenize(self.model, piece[:-1], special=False))
                tokens.extend(llama.tokenize(self.model, piece[-1:], special=False))
            elif piece:
                tokens.extend(llama.tokenize(self.model, piece, special=False))
        return tokens

    def _append_image(self, image, tokens: list[int], spans: list[ImageSpan]) -> None:
        """mtmd frames the image with its own begin/end tokens; those stay ordinary tokens here."""
        with self._vision_lock:  # prepare runs beside a generation that may be encoding with mtmd
            chunks = self.vision.tokenize(self.vision.marker, [image.pixels])
        digest = int.from_bytes(hashlib.blake2b(image.pixels.tobytes(), digest_size=6).digest(), "big")
        for index, chunk in enumerate(chunks.describe()):
            if chunk.kind == "text":
                tokens.extend(chunk.tokens)
                continue
            spans.append(ImageSpan(len(tokens), chunk.n_tokens, chunks, index))
            tokens.extend(-1 - ((digest + offset) % 2**40) for offset in range(chunk.n_tokens))

    def prepare(self, request: GenerationRequest) -> PreparedPrompt:
        """Render, tokenize, compile the grammar and check the context window.

        Everything a request can get wrong surfaces here, before anything is generated."""
        tokens, images = self.tokenize_prompt(request)
        try:
            max_tokens = self._output_budget(len(tokens), request.max_tokens)
            constraint = self.chat_format.constraint(request, self.control_token)
            if constraint is not None:
                self._check_grammar(constraint, request)
            banned = tuple(self.control_token(text) for text in self.chat_format.banned_tokens(request))
        except BaseException:
            for span in images:
                span.chunks.close()
            raise
        return PreparedPrompt(request, tuple(tokens), max_tokens, resolve_seed(request.sampling.seed),
                              constraint, banned, tuple(images))

    def _check_grammar(self, constraint: Constraint, request: GenerationRequest) -> None:
        try:
            check_grammar(self.model, constraint)
        except GrammarCompileError:
            param = "response_format" if request.response_format.kind != "text" else "tools"
            log.error("generated grammar rejected by llama.cpp:\n%s", constraint.gbnf)
            raise InvalidRequestError("this schema produced a grammar llama.cpp cannot parse", param=param) from None

    def control_token(self, text: str) -> int:
        """The id of a control token written as text (``<|tool_call>``); it must be a single token."""
        if text not in self._control_tokens:
            tokens = llama.tokenize(self.model, text, special=True)
            if len(tokens) != 1:
                raise EngineError(f"the model's vocabulary has no single token {text!r}")
            self._control_tokens[text] = tokens[0]
        return self._control_tokens[text]

    def _output_budget(self, prompt_tokens: int, requested: int | None) -> int:
        n_ctx = self.info.n_ctx
        if requested is None:
            if prompt_tokens >= n_ctx:
                raise ContextLengthExceededError(
                    f"This model's maximum context length is {n_ctx} tokens. However, your messages "
                    f"resulted in {prompt_tokens} tokens. Please reduce the length of the messages.",
                    param="messages")
            return min(MAX_OUTPUT_TOKENS, n_ctx - prompt_tokens)
        if prompt_tokens + requested > n_ctx:
            raise ContextLengthExceededError(
                f"This model's maximum context length is {n_ctx} tokens. However, you requested "
                f"{prompt_tokens + requested} tokens ({prompt_tokens} in the messages, {requested} in "
                "the completion). Please reduce the length of the messages or completion.",
                param="messages")
        return requested

    # -- generating --------------------------------------------------------------------------

    def generate(self, prepared: PreparedPrompt, cancelled: threading.Event | None = None) -> Iterator[Event]:
        """Yield text deltas, then exactly one Finish. Callers in other threads wait their turn."""
        with self._lock:
            try:
                yield from _Generation(self, prepared, cancelled or threading.Event()).run()
            except (RuntimeError, VisionError) as exc:
                self._forget_cache()
                raise EngineError(f"llama.cpp failed during generation: {exc}") from exc
            finally:
                prepared.close()

    def evaluate(self, tokens: list[int], start: int) -> None:
        llama.decode_tokens(self.context, self._batch, tokens, start, self.config.batch_size)
        self._cached[start:] = tokens

    def evaluate_prompt(self, prepared: PreparedPrompt, start: int) -> None:
        """Text runs go through llama_decode, images through mtmd (encoder, then their soft tokens)."""
        position = start
        for span in prepared.images:
            if span.start < start:
                continue
            self.evaluate(list(prepared.tokens[position:span.start]), position)
            with self._vision_lock:
                end = self.vision.evaluate_chunk(self.context, span.chunks, span.index, span.start,
                                                 self.config.batch_size)
            if end != span.start + span.n_tokens:
                raise VisionError(f"an image took {end - span.start} positions, expected {span.n_tokens}")
            self._cached[span.start:] = prepared.tokens[span.start:end]
            position = end
        self.evaluate(list(prepared.tokens[position:]), position)

    def reuse_prefix(self, tokens: tuple[int, ...], allowed: bool, images: tuple[ImageSpan, ...] = ()) -> int:
        """Keep the cached keys/values of the longest common prefix; returns how many tokens to skip.

        Seeded requests start from an empty cache: batch shapes then match a cold run exactly,
        so the same seed gives bit-identical logits and the same text."""
        if not allowed:
            self._forget_cache()
            return 0
        common = 0
        for cached, wanted in zip(self._cached, tokens):
            if cached != wanted:
                break
            common += 1
        common = min(common, len(tokens) - 1)  # the last prompt token is re-evaluated for its logits
        for span in images:  # an image is evaluated whole or not at all
            if span.start < common < span.start + span.n_tokens:
                common = span.start
        if common < len(self._cached) and not self.context.kv_cache_seq_rm(0, common, -1):
            self._forget_cache()
            return 0
        del self._cached[common:]
        return common

    @property
    def cached_length(self) -> int:
        return len(self._cached)

    def _forget_cache(self) -> None:
        self.context.kv_cache_clear()
        self._cached.clear()

    def token_logprob(self, token: int, top_n: int) -> TokenLogprob:
        logits = llama.logits_row(self.context, self._n_vocab).astype(np.float64)
        peak = logits.max()
        log_normalizer = peak + np.log(np.exp(logits - peak).sum())
        top: tuple[TopLogprob, ...] = ()
        if top_n:
            best = np.argpartition(logits, -top_n)[-top_n:]
            best = best[np.argsort(-logits[best])]
            top = tuple(self._top_entry(int(i), float(logits[i] - log_normalizer)) for i in best)
        piece = llama.token_piece(self.model, token, special=True)
        return TokenLogprob(_display(piece), tuple(piece), float(logits[token] - log_normalizer), top)

    def _top_entry(self, token: int, logprob: float) -> TopLogprob:
        piece = llama.token_piece(self.model, token, special=True)
        return TopLogprob(_display(piece), tuple(piece), logprob)


def _display(piece: bytes) -> str:
    return piece.decode("utf-8", errors="replace")


class _Generation:
    """The state of one request's decoding loop."""

    def __init__(self, engine: Engine, prepared: PreparedPrompt, cancelled: threading.Event):
        self.engine = engine
        self.prepared = prepared
        self.request = prepared.request
        self.cancelled = cancelled
        self.parser = engine.chat_format.new_parser(self.request.tools)
        self.utf8 = Utf8Stream()
        self.stops = StopMatcher(self.request.stop)
        self.pending_logprobs: list[TokenLogprob] = []
        self.completion_tokens = 0
        self.reasoning_tokens = 0
        self.utf8_state = engine.utf8_guard.new_state()

    def run(self) -> Iterator[Event]:
        started = time.perf_counter()
        prompt = self.prepared.tokens
        engine = self.engine
        reused = engine.reuse_prefix(prompt, engine.config.prefix_cache and self.request.sampling.seed is None,
                                     self.prepared.images)
        engine.evaluate_prompt(self.prepared, reused)
        prompt_done = time.perf_counter()
        reason, stop_sequence = yield from self._sample_loop()
        if stop_sequence is None:
            yield from self._flush()
        if reason == "stop" and self.parser.tool_calls:
            reason = "tool_calls"
        finished = time.perf_counter()
        usage = Usage(len(prompt), self.completion_tokens, cached_prompt_tokens=reused,
                      reasoning_tokens=self.reasoning_tokens)
        yield Finish(reason, usage, stop_sequence, _timings(started, prompt_done, finished,
                                                               len(prompt) - reused, self.completion_tokens))

    def _sample_loop(self) -> Iterator[Event]:
        engine = self.engine
        chain = build_sampler(engine.model, self.request.sampling, self.prepared.seed, engine.info.n_ctx,
                              self.prepared.banned_tokens, self.utf8_state.apply)
        sampler = TokenSampler(engine.model, chain, self.prepared.constraint)
        try:
            for step in range(self.prepared.max_tokens):
                if self.cancelled.is_set():
                    return "cancelled", None
                token = self._next_token(sampler)
                self.utf8_state.accept(token)
                self.completion_tokens += 1
                if is_end_of_generation(engine.model, token):
                    return "stop", None
                stop_sequence = yield from self._consume(token)
                if stop_sequence is not None:
                    return "stop", stop_sequence
                if step + 1 < self.prepared.max_tokens:
                    engine.evaluate([token], engine.cached_length)
            return "length", None
        finally:
            sampler.close()

    def _next_token(self, sampler: TokenSampler) -> int:
        """Sample, unless the thinking budget is spent: then the thought channel is closed for the model."""
        budget = self.request.thinking_budget
        if budget is not None and self.parser.can_close_reasoning and self.reasoning_tokens >= budget:
            token = self.engine.control_token(self.engine.chat_format.reasoning_close)
            sampler.accept(token)
            return token
        return sampler.sample(self.engine.context)

    def _consume(self, token: int) -> Iterator[Event]:
        """Feed one token to the parser; returns a matched stop sequence, if any."""
        piece = self._piece(token)
        was_content = self.parser.in_content
        if self.request.logprobs:
            self.pending_logprobs.append(self.engine.token_logprob(token, self.request.top_logprobs))
        if self.parser.in_reasoning:
            self.reasoning_tokens += 1
        stop_sequence = yield from self._emit(self.parser.feed(piece))
        if not (was_content and self.parser.in_content and not piece.control) and self.pending_logprobs:
            self.pending_logprobs.pop()  # framing and reasoning tokens are not part of the content's logprobs
        return stop_sequence

    def _piece(self, token: int) -> Piece:
        engine = self.engine
        if is_control_token(engine.model, token):
            return Piece(llama.token_piece(engine.model, token, special=True).decode("utf-8", "replace"), True)
        return Piece(self.utf8.feed(llama.token_piece(engine.model, token, special=False)), False)

    def _emit(self, parsed_events) -> Iterator[Event]:
        """Content goes through the stop matcher; reasoning and tool calls pass as they are."""
        for parsed in parsed_events:
            if not isinstance(parsed, TextDelta):
                yield parsed
                continue
            scan = self.stops.feed(parsed.text)
            if scan.emit:
                yield TextDelta(scan.emit, self._take_logprobs())
            if scan.stopped:
                return scan.sequence
        return None

    def _flush(self) -> Iterator[Event]:
        tail = self.utf8.flush()
        parsed = (self.parser.feed(Piece(tail, False)) if tail else []) + self.parser.finish()
        stop_sequence = yield from self._emit(parsed)
        if stop_sequence is None:
            remaining = self.stops.flush()
            if remaining or self.pending_logprobs:
                yield TextDelta(remaining, self._take_logprobs())

    def _take_logprobs(self) -> tuple[TokenLogprob, ...]:
        taken = tuple(self.pending_logprobs)
        self.pending_logprobs.clear()
        return taken


def _timings(started: float, prompt_done: float, finished: float, evaluated: int, generated: int) -> dict[str, float]:
    prompt_seconds = prompt_done - started
    decode_seconds = finished - prompt_done
    return {
        "prompt_ms": prompt_seconds * 1000,
        "prompt_tokens_evaluated": float(evaluated),
        "decode_ms": decode_seconds * 1000,
        "decode_tokens_per_second": generated / decode_seconds if decode_seconds > 0 and generated else 0.0,
    }

