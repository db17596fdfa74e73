"""Thin, explicit access to llama.cpp: loading a model, making a context, evaluating tokens.

Everything that touches llama.cpp's C structs for loading lives here so that the AMX policy
(hardware.py) is applied on every load path: the server, the CLI, the converter's checks, the tests.
The high-level ``llama_cpp.Llama`` class is not used: it owns seeding and prefix reuse in ways the
engine must control itself (seeded sampling is not reproducible across calls once its prefix reuse kicks in).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

import llama_cpp
from llama_cpp import _internals

from edge.runtime.hardware import ExtraBuffers, extra_buffers_decision

log = logging.getLogger("edge.runtime")

# KV cache element types the operator may choose (q8_0 is nearly free; q4_0 was catastrophic on E2B)
KV_CACHE_TYPES = {
    "f32": llama_cpp.GGML_TYPE_F32,
    "f16": llama_cpp.GGML_TYPE_F16,
    "q8_0": llama_cpp.GGML_TYPE_Q8_0,
}


class ModelLoadError(RuntimeError):
    """llama.cpp refused the file: not a GGUF, an unknown architecture, or truncated."""


@dataclass(frozen=True)
class LoadOptions:
    n_gpu_layers: int = 0
    extra_buffers: ExtraBuffers = ExtraBuffers.AUTO
    use_mmap: bool = True
    use_mlock: bool = False


@dataclass(frozen=True)
class ContextOptions:
    n_ctx: int = 8192  # KV cells in all; each of the n_seq_max sequences has its own stream of n_ctx / n_seq_max
    n_batch: int = 512
    n_threads: int = 2
    kv_type: str = "f16"
    n_seq_max: int = 1
    # Full-size sliding-window layers keep every position, so a cached prefix can be trimmed anywhere and
    # reused; window-sized ones cost less memory but cannot roll back past the window.
    swa_full: bool = True


# ggml_log_level (DEBUG=1 INFO=2 WARN=3 ERROR=4) -> Python level; llama.cpp INFO chatter becomes DEBUG,
# its warnings INFO (they are notes like "using full-size SWA cache", not problems of ours)
_LOG_LEVELS = {1: logging.DEBUG, 2: logging.DEBUG, 3: logging.INFO, 4: logging.ERROR}
_llama_log = logging.getLogger("llama.cpp")
_log_state = {"level": logging.DEBUG}
_log_captures: list[list[str]] = []


@llama_cpp.llama_log_callback
def _route_llama_log(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    if level != 5:  # GGML_LOG_LEVEL_CONT continues the previous message at its level
        _log_state["level"] = _LOG_LEVELS.get(level, logging.DEBUG)
    line = text.decode("utf-8", errors="replace").rstrip("\n")
    for capture in _log_captures:
        capture.append(line)
    if line:
        _llama_log.log(_log_state["level"], "%s", line)


def route_llama_logs() -> None:
    """Send llama.cpp's log into Python logging (logger ``llama.cpp``) instead of raw stderr."""
    llama_cpp.llama_log_set(_route_llama_log, ctypes.c_void_p(0))


@contextlib.contextmanager
def captured_llama_log() -> Iterator[list[str]]:
    """Collect what llama.cpp logs inside the block (e.g. which weight buffers a load used)."""
    lines: list[str] = []
    _log_captures.append(lines)
    try:
        yield lines
    finally:
        _log_captures.remove(lines)


def load_model(path: str | Path, options: LoadOptions = LoadOptions()) -> _internals.LlamaModel:
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"model file not found: {path}")
    decision = extra_buffers_decision(options.extra_buffers)
    log.info("weight repacking (extra buffer types) %s: %s",
             "on" if decision.enabled else "off", decision.reason)
    params = llama_cpp.llama_model_default_params()
    params.n_gpu_layers = options.n_gpu_layers
    params.use_mmap = options.use_mmap
    params.use_mlock = options.use_mlock
    params.use_extra_bufts = decision.enabled
    route_llama_logs()
    try:
        return _internals.LlamaModel(path_model=str(path), params=params, verbose=False)
    except ValueError as exc:
        raise ModelLoadError(f"llama.cpp could not load {path}: is it a complete GGUF file?") from exc


def weight_buffers_from_log(lines: list[str]) -> dict[str, float]:
    """Buffer type -> MiB, as llama.cpp reports while loading (``CPU_REPACK model buffer size = 12.66 MiB``)."""
    buffers = {}
    for line in lines:
        if "model buffer size" in line:
            name = line.split(":", 1)[-1].split("model buffer size")[0].strip()
            buffers[name] = float(line.rsplit("=", 1)[-1].replace("MiB", "").strip())
    return buffers


def kv_cache_mib_from_log(lines: list[str]) -> float:
    """MiB of keys/values llama.cpp allocated (``llama_kv_cache: size =  144.00 MiB (...)``), every cache
    summed: Gemma's sliding-window and global layers have one each."""
    total = 0.0
    for line in lines:
        if "kv_cache" in line and "size =" in line and "MiB" in line:
            total += float(line.split("size =", 1)[1].split("MiB", 1)[0])
    return total


def new_context(model: _internals.LlamaModel, options: ContextOptions) -> _internals.LlamaContext:
    params = llama_cpp.llama_context_default_params()
    params.n_ctx = options.n_ctx
    params.n_batch = options.n_batch
    params.n_ubatch = options.n_batch
    params.n_threads = options.n_threads
    params.n_threads_batch = options.n_threads
    params.n_seq_max = options.n_seq_max
    # one stream of n_ctx / n_seq_max cells per sequence (llama-server's layout for -np N): where a
    # sequence's keys/values sit, and how many cells its attention spans, then depend on its own history
    # only. With one unified pool they depend on the other sequences, and so do its logits (measured: a
    # seeded text changed after unrelated traffic), which would break the seed promise.
    params.kv_unified = False
    params.type_k = KV_CACHE_TYPES[options.kv_type]
    params.type_v = KV_CACHE_TYPES[options.kv_type]
    params.swa_full = options.swa_full
    params.no_perf = True
    try:
        return _internals.LlamaContext(model=model, params=params, verbose=False)
    except ValueError as exc:
        raise ModelLoadError(f"llama.cpp could not create a context of {options.n_ctx} tokens") from exc


def token_piece(model: _internals.LlamaModel, token: int, special: bool) -> bytes:
    """The bytes of one token; control tokens render as their text only when ``special``."""
    buffer = ctypes.create_string_buffer(64)
    length = llama_cpp.llama_token_to_piece(model.vocab, token, buffer, len(buffer), 0, special)
    if length < 0:
        buffer = ctypes.create_string_buffer(-length)
        length = llama_cpp.llama_token_to_piece(model.vocab, token, buffer, len(buffer), 0, special)
    return buffer.raw[:length]


def tokenize(model: _internals.LlamaModel, text: str, *, special: bool, add_bos: bool = False) -> list[int]:
    """``special`` parses control-token text (``<start_of_turn>``) as control tokens; user text never."""
    return model.tokenize(text.encode("utf-8"), add_bos, special)


def decode_tokens(context: _internals.LlamaContext, batch: _internals.LlamaBatch,
                  tokens: list[int], start_pos: int, n_batch: int, *, all_logits: bool = False,
                  seq_id: int = 0) -> None:
    """Feed ``tokens`` at positions ``start_pos..`` in chunks of ``n_batch``.

    Only the last token's logits are kept unless ``all_logits`` (parity tests, perplexity)."""
    for chunk_start in range(0, len(tokens), n_batch):
        chunk = tokens[chunk_start:chunk_start + n_batch]
        is_last_chunk = chunk_start + n_batch >= len(tokens)
        batch.reset()
        for offset, token in enumerate(chunk):
            index = batch.batch.n_tokens
            batch.batch.token[index] = token
            batch.batch.pos[index] = start_pos + chunk_start + offset
            batch.batch.n_seq_id[index] = 1
            batch.batch.seq_id[index][0] = seq_id
            batch.batch.logits[index] = all_logits or (is_last_chunk and offset == len(chunk) - 1)
            batch.batch.n_tokens += 1
        context.decode(batch)


class DecodeError(RuntimeError):
    """llama_decode failed: no room in the KV cache (1), aborted (2), or a compute error (< 0)."""

    def __init__(self, status: int):
        super().__init__(f"llama_decode returned {status}")
        self.status = status


class TokenBatch:
    """One llama_batch reused for every step: tokens of several sequences, each at its own position."""

    def __init__(self, capacity: int, n_seq_max: int):
        self.capacity = capacity
        self._batch = llama_cpp.llama_batch_init(capacity, 0, n_seq_max)
        self.size = 0

    def clear(self) -> None:
        self.size = 0

    def add(self, token: int, position: int, seq_id: int, logits: bool) -> int:
        """Appends one token; returns its row, where llama_get_logits_ith finds its logits."""
        row = self.size
        batch = self._batch
        batch.token[row] = token
        batch.pos[row] = position
        batch.n_seq_id[row] = 1
        batch.seq_id[row][0] = seq_id
        batch.logits[row] = logits
        self.size += 1
        return row

    def decode(self, context: _internals.LlamaContext) -> None:
        self._batch.n_tokens = self.size
        status = llama_cpp.llama_decode(context.ctx, self._batch)
        if status != 0:
            raise DecodeError(status)

    def close(self) -> None:
        if self._batch is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None


def oldest_position(context: _internals.LlamaContext, seq_id: int) -> int:
    """The oldest position whose keys/values a sequence still holds in every layer (-1 when empty).
    With trimmed sliding-window layers (``swa_full`` off) the window's oldest cells are overwritten."""
    return llama_cpp.llama_memory_seq_pos_min(llama_cpp.llama_get_memory(context.ctx), seq_id)


def sliding_window(model: _internals.LlamaModel) -> int:
    """The sliding-window layers' window in positions (0 when the model has none)."""
    return llama_cpp.llama_model_n_swa(model.model)


def logits_row(context: _internals.LlamaContext, n_vocab: int, index: int = -1) -> np.ndarray:
    """A float32 view of one output row's logits (valid until the next decode)."""
    pointer = llama_cpp.llama_get_logits_ith(context.ctx, index)
    return np.ctypeslib.as_array(pointer, shape=(n_vocab,))


def prompt_logits(model: _internals.LlamaModel, context: _internals.LlamaContext,
                  tokens: list[int], n_batch: int = 512) -> np.ndarray:
    """Next-token logits at every position of ``tokens``, evaluated from an empty cache.

    Used by parity tests and quality benchmarks; returns an (n_tokens, n_vocab) float32 array."""
    context.kv_cache_clear()
    n_vocab = model.n_vocab()
    batch = _internals.LlamaBatch(n_tokens=n_batch, embd=0, n_seq_max=1, verbose=False)
    rows = []
    for chunk_start in range(0, len(tokens), n_batch):
        chunk = tokens[chunk_start:chunk_start + n_batch]
        decode_tokens(context, batch, chunk, chunk_start, n_batch, all_logits=True)
        rows.extend(logits_row(context, n_vocab, i).copy() for i in range(len(chunk)))
    return np.stack(rows)
