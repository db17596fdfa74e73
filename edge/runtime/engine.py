"""The generation core: one path from an internal request to a stream of typed events.

``prepare`` renders, tokenizes and compiles the request's grammar (thread-safe, so it runs before the
first byte is sent and any mistake is a clean 400); ``submit`` hands the prepared prompt to the
scheduler (scheduler.py), which decodes every running request together in one batch per step and keeps
each finished conversation's keys/values for the next turn. ``generate`` is the blocking form of
``submit`` for in-process callers (``edge chat``, tests, benchmarks).
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import queue
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from llama_cpp import _internals

from edge.errors import ContextLengthExceededError, EngineError, InvalidRequestError
from edge.formats import chat_format_for
from edge.formats.base import ChatFormat
from edge.runtime import kv_files, llama
from edge.runtime.prompt_store import PromptStore
from edge.core.events import Event
from edge.core.constraints import Constraint
from edge.core.request import MAX_OUTPUT_TOKENS, GenerationRequest, ImagePart
from edge.runtime.sampling import Grammar, GrammarCompileError, resolve_seed
from edge.runtime.scheduler import Scheduler
from edge.runtime.sequence import END, Job
from edge.runtime.sources import ModelFiles
from edge.runtime.utf8_guard import Utf8Guard
from edge.runtime.vision import ChunkList, VisionOptions, VisionProjector, options_for_fitted_images

log = logging.getLogger("edge.runtime")


class ContextTooLargeError(ValueError):
    """The operator asked for a context window beyond what the model was trained for."""


@dataclass(frozen=True)
class EngineConfig:
    ctx_size: int = 8192  # the window of one request
    batch_size: int = 512
    threads: int = 2
    kv_type: str = "f16"
    prefix_cache: bool = True
    parallel: int = 1  # sequences decoded together, each with its own stream of ctx_size KV cells
    swa_full: bool = True
    persist_cache: Path | None = None  # folder: the cached conversations are saved there at close, restored at load
    cache_ram_mib: int = 0  # host memory for conversations that lost their slot (0: none kept)
    load: llama.LoadOptions = llama.LoadOptions()

    @property
    def kv_cells(self) -> int:
        return self.ctx_size * self.parallel


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
    kv_cache_mib: float = 0.0  # what llama.cpp allocated for the keys/values of every slot

    @property
    def repacked(self) -> bool:
        """Weights in a repacked layout (CPU_REPACK, AMX): their kernels depend on the batch's shape."""
        return any("REPACK" in name or "AMX" in name for name in self.weight_buffers)


@dataclass(frozen=True)
class ImageSpan:
    """An image inside a prompt: ``n_tokens`` soft tokens from position ``start``, encoded when evaluated."""

    start: int
    n_tokens: int
    chunks: ChunkList
    index: int  # of the image chunk inside ``chunks``


@dataclass
class PreparedPrompt:
    request: GenerationRequest
    tokens: tuple[int, ...]  # images appear as negative stand-in ids, equal only for equal pixels
    max_tokens: int
    seed: int
    constraint: Constraint | None = None
    banned_tokens: tuple[int, ...] = ()
    images: tuple[ImageSpan, ...] = ()
    grammar: Grammar | None = None  # compiled once in prepare; the first choice decodes with it

    def take_grammar(self) -> Grammar | None:
        grammar, self.grammar = self.grammar, None
        return grammar

    def close(self) -> None:
        for span in self.images:
            span.chunks.close()
        if self.grammar is not None:
            self.grammar.close()
            self.grammar = None


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
        self.n_vocab = model.n_vocab()
        self._control_tokens: dict[str, int] = {}
        self._marker_split = re.compile("(" + "|".join(map(re.escape, chat_format.text_markers)) + ")"
                                        if chat_format.text_markers else "(?!)")
        self.utf8_guard = Utf8Guard(model)
        self.vision_lock = threading.Lock()  # mtmd's context is not documented as thread-safe
        store = PromptStore(config.cache_ram_mib * 1024 * 1024) if config.cache_ram_mib else None
        self.scheduler = Scheduler(self, config.parallel, config.batch_size, info.repacked, config.prefix_cache,
                                   0 if config.swa_full else llama.sliding_window(model), store)
        self._restore_caches()

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
        with llama.captured_llama_log() as context_log:
            context = llama.new_context(model, llama.ContextOptions(
                n_ctx=config.kv_cells, n_batch=config.batch_size, n_threads=config.threads,
                kv_type=config.kv_type, n_seq_max=config.parallel, swa_full=config.swa_full))
        vision = None
        if files.mmproj is not None:
            vision = VisionProjector(files.mmproj, model, options_for_fitted_images(VisionOptions(n_threads=config.threads)))
        info = ModelInfo(
            id=model_id or files.model.stem, path=files.model, mmproj=files.mmproj, origin=files.origin,
            architecture=architecture, chat_format=chat_format.name, n_ctx=config.ctx_size,
            n_ctx_train=model.n_ctx_train(), n_params=model.n_params(), size_bytes=model.size(),
            description=model.desc(), created=int(files.model.stat().st_mtime), metadata=metadata,
            weight_buffers=weight_buffers, kv_cache_mib=llama.kv_cache_mib_from_log(context_log))
        return cls(model, context, chat_format, info, config, vision)

    def _cache_files(self) -> Path | None:
        config = self.config
        if config.persist_cache is None or not config.prefix_cache:
            return None
        return kv_files.cache_directory(config.persist_cache, self.info.path, config.kv_type, config.swa_full,
                                        config.ctx_size)

    def _restore_caches(self) -> None:
        directory = self._cache_files()
        if directory is not None and directory.is_dir():
            restored = self.scheduler.load_caches(directory)
            log.info("restored %d cached tokens from %s", restored, directory)

    # -- serving state: what admission control, metrics and shutdown read -------------------

    @property
    def parallel(self) -> int:
        return len(self.scheduler.slots)

    @property
    def running(self) -> int:
        return self.scheduler.running

    @property
    def waiting(self) -> int:
        return self.scheduler.waiting

    @property
    def cache_ram_bytes(self) -> int:
        return self.scheduler.kept_bytes

    def wake(self) -> None:
        """A cancel flag was set: the scheduler sees it at its next step even when idle."""
        self.scheduler.wake()

    def stop(self) -> None:
        """Ends the scheduler thread, waiting for it to leave llama.cpp; ``close`` then frees the model."""
        self.scheduler.close()

    def close(self) -> None:
        self.stop()
        directory = self._cache_files()
        if directory is not None:
            try:
                written = self.scheduler.save_caches(directory)
                log.info("saved the cached conversations to %s (%.1f MiB)", directory, written / 2**20)
            except OSError as error:  # a full or read-only disk must not turn shutdown into a crash
                log.warning("could not save the cached conversations to %s: %s", directory, error)
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
        with self.vision_lock:  # prepare runs beside a generation that may be encoding with mtmd
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
        prepared = PreparedPrompt(request, tuple(tokens), 0, resolve_seed(request.sampling.seed),
                                  images=tuple(images))
        try:
            prepared.max_tokens = self._output_budget(len(tokens), request.max_tokens)
            prepared.constraint = self.chat_format.constraint(request, self.control_token)
            if prepared.constraint is not None:
                prepared.grammar = self._compile_grammar(prepared.constraint, request)
            prepared.banned_tokens = tuple(self.control_token(text) for text in self.chat_format.banned_tokens(request))
        except BaseException:
            prepared.close()
            raise
        return prepared

    def _compile_grammar(self, constraint: Constraint, request: GenerationRequest) -> Grammar:
        try:
            return Grammar(self.model, constraint)
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

    def submit(self, prepared: PreparedPrompt, emit: Callable[[int, object], None], cancelled: threading.Event,
               choices: int = 1) -> None:
        """Queue ``choices`` sequences of one prompt; ``emit(choice, item)`` receives, from the scheduler
        thread, each choice's events and then ``END`` (an ``EdgeError`` instead of events on failure)."""
        submitted = time.perf_counter()
        context = contextvars.copy_context()
        leader = Job(prepared, 0, lambda item: emit(0, item), cancelled, submitted, context=context)
        followers = [Job(prepared, choice, (lambda item, choice=choice: emit(choice, item)), cancelled, submitted,
                         leader, context) for choice in range(1, choices)]
        self.scheduler.submit([leader, *followers])

    def generate(self, prepared: PreparedPrompt, cancelled: threading.Event | None = None) -> Iterator[Event]:
        """Yield text deltas, then exactly one Finish; blocks the calling thread, not the scheduler."""
        for _, event in self.generate_choices(prepared, cancelled, 1):
            yield event

    def generate_choices(self, prepared: PreparedPrompt, cancelled: threading.Event | None = None,
                         choices: int = 1) -> Iterator[tuple[int, Event]]:
        """(choice, event) pairs of ``choices`` sequences decoded side by side."""
        cancelled = cancelled or threading.Event()
        items: queue.SimpleQueue = queue.SimpleQueue()
        self.submit(prepared, lambda choice, item: items.put((choice, item)), cancelled, choices)
        running = choices
        try:
            while running:
                choice, item = items.get()
                if item is END:
                    running -= 1
                elif isinstance(item, BaseException):
                    raise item
                else:
                    yield choice, item
        finally:
            if running:
                cancelled.set()
                self.wake()
