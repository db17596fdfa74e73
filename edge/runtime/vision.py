"""Images through llama.cpp's multimodal library (mtmd): the projector, tokenizing a prompt with image
markers into chunks, encoding an image chunk, and evaluating chunks into a llama context.

mtmd owns its own CPU backend for the vision encoder; its context params have no switch for weight
repacking (extra buffer types), so the AMX hazard (hardware.py) is handled by policy instead: the
projector is shipped as F16/F32 (the converter never quantizes it below F16), and the AMX crash only
concerns quantized weights. The text model itself is loaded through edge.runtime.llama, which applies the
AMX policy there.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

import llama_cpp
from llama_cpp import _internals
from llama_cpp import mtmd_cpp as mtmd


class VisionError(RuntimeError):
    """The projector could not be loaded, or an image could not be tokenized, encoded or evaluated."""


@dataclass(frozen=True)
class VisionOptions:
    n_threads: int = 2
    use_gpu: bool = False
    warmup: bool = False  # a warmup encode costs a full image on CPU; the first real image pays instead
    image_min_tokens: int = 0  # 0: the projector's own budget (Gemma 4: 70..1120)
    image_max_tokens: int = 0


# llama.cpp's image token budget is per projector, not per image: mtmd_context_params.image_min_tokens
# and image_max_tokens (mtmd.h) are read once when the projector loads (clip.cpp, clip_init), and every
# image is then resized into that range (mtmd-image.cpp, calc_size_preserved_ratio). edge.runtime.images
# fits each image to its own budget (the request's detail) before llama.cpp sees it; a projector with
# these bounds keeps such an image's size, so one projector serves every detail level. The floor is 1
# rather than gemma4v's 70 because fitting floors to whole 48 px tiles (a square image at budget 70 is
# 8 x 8 = 64 tokens), which llama.cpp would otherwise scale up again.
FITTED_IMAGE_MIN_TOKENS = 1
FITTED_IMAGE_MAX_TOKENS = 1120


def options_for_fitted_images(options: VisionOptions = VisionOptions()) -> VisionOptions:
    """``options`` with the budget bounds for images fitted by ``edge.runtime.images.load_image``."""
    return replace(options, image_min_tokens=FITTED_IMAGE_MIN_TOKENS, image_max_tokens=FITTED_IMAGE_MAX_TOKENS)


@dataclass(frozen=True)
class Chunk:
    """One piece of a tokenized multimodal prompt: text tokens, or an image of ``n_tokens`` soft tokens."""

    kind: str  # "text" | "image" | "audio"
    n_tokens: int
    tokens: tuple[int, ...] = ()


_CHUNK_KINDS = {mtmd.MTMD_INPUT_CHUNK_TYPE_TEXT: "text", mtmd.MTMD_INPUT_CHUNK_TYPE_IMAGE: "image",
                mtmd.MTMD_INPUT_CHUNK_TYPE_AUDIO: "audio"}


class VisionProjector:
    """An mmproj GGUF bound to its text model. Close it (or use ``with``) before freeing the model."""

    def __init__(self, mmproj_path: str | Path, model: _internals.LlamaModel,
                 options: VisionOptions = VisionOptions()):
        path = Path(mmproj_path)
        if not path.is_file():
            raise VisionError(f"projector file not found: {path}")
        _route_mtmd_logs()
        params = mtmd.mtmd_context_params_default()
        params.use_gpu = options.use_gpu
        params.n_threads = options.n_threads
        params.print_timings = False
        params.warmup = options.warmup
        params.image_min_tokens = options.image_min_tokens or params.image_min_tokens
        params.image_max_tokens = options.image_max_tokens or params.image_max_tokens
        self._ctx = mtmd.mtmd_init_from_file(str(path).encode(), model.model, params)
        if not self._ctx:
            raise VisionError(f"llama.cpp could not load the projector {path} for this text model")
        self.marker = mtmd.mtmd_default_marker().decode()
        self._n_embd = model.n_embd()

    def close(self) -> None:
        if self._ctx:
            mtmd.mtmd_free(self._ctx)
            self._ctx = None

    def __enter__(self) -> "VisionProjector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def tokenize(self, prompt: str, images: list[np.ndarray]) -> "ChunkList":
        """Split ``prompt`` at each ``self.marker`` and put one image (H x W x 3 uint8 RGB) in each place.

        Special tokens in the text are parsed; no BOS is added (the prompt renderer writes it)."""
        bitmaps = [_bitmap(image) for image in images]
        chunks = mtmd.mtmd_input_chunks_init()
        try:
            encoded = prompt.encode("utf-8")
            text = mtmd.mtmd_input_text(encoded, len(encoded), False, True)
            array = (mtmd.mtmd_bitmap_p_ctypes * max(1, len(bitmaps)))(*bitmaps)
            status = mtmd.mtmd_tokenize(self._ctx, chunks, ctypes.byref(text), array, len(bitmaps))
        finally:
            for bitmap in bitmaps:
                mtmd.mtmd_bitmap_free(bitmap)
        if status != 0:
            mtmd.mtmd_input_chunks_free(chunks)
            reason = {1: "the number of images does not match the markers", 2: "image preprocessing failed"}
            raise VisionError(f"could not tokenize the prompt: {reason.get(status, f'status {status}')}")
        return ChunkList(chunks)

    def encode_image(self, chunks: "ChunkList", index: int) -> np.ndarray:
        """Run the vision encoder on image chunk ``index``; returns (n_tokens, n_embd) float32 embeddings."""
        chunk = chunks.raw(index)
        if mtmd.mtmd_input_chunk_get_type(chunk) != mtmd.MTMD_INPUT_CHUNK_TYPE_IMAGE:
            raise VisionError(f"chunk {index} is not an image")
        if mtmd.mtmd_encode_chunk(self._ctx, chunk) != 0:
            raise VisionError("the vision encoder failed on this image")
        n_tokens = mtmd.mtmd_input_chunk_get_n_tokens(chunk)
        pointer = mtmd.mtmd_get_output_embd(self._ctx)
        return np.ctypeslib.as_array(pointer, shape=(n_tokens * self._n_embd,)).reshape(n_tokens, -1).copy()

    def evaluate(self, context: _internals.LlamaContext, chunks: "ChunkList", n_past: int,
                 n_batch: int = 512, seq_id: int = 0, logits_last: bool = True) -> int:
        """Decode every chunk (text tokens and encoded images) into ``context`` from position ``n_past``;
        returns the new n_past. Image tokens are decoded as mtmd requires (non-causal where the model says so)."""
        new_n_past = llama_cpp.llama_pos(0)
        status = mtmd.mtmd_helper_eval_chunks(self._ctx, context.ctx, chunks.pointer, n_past, seq_id, n_batch,
                                              logits_last, ctypes.byref(new_n_past))
        if status != 0:
            raise VisionError(f"evaluating the multimodal prompt failed (status {status})")
        return new_n_past.value


    def evaluate_chunk(self, context: _internals.LlamaContext, chunks: "ChunkList", index: int, n_past: int,
                       n_batch: int = 512, seq_id: int = 0) -> int:
        """Encode and decode one image chunk at ``n_past``; returns the new n_past."""
        new_n_past = llama_cpp.llama_pos(0)
        status = mtmd.mtmd_helper_eval_chunk_single(self._ctx, context.ctx, chunks.raw(index), n_past, seq_id,
                                                    n_batch, False, ctypes.byref(new_n_past))
        if status != 0:
            raise VisionError(f"encoding or decoding an image failed (status {status})")
        return new_n_past.value


class ChunkList:
    """Owns an ``mtmd_input_chunks``; free it with ``close`` (or ``with``)."""

    def __init__(self, pointer):
        self.pointer = pointer

    def __len__(self) -> int:
        return mtmd.mtmd_input_chunks_size(self.pointer)

    def raw(self, index: int):
        if not 0 <= index < len(self):
            raise IndexError(index)
        return mtmd.mtmd_input_chunks_get(self.pointer, index)

    def describe(self) -> list[Chunk]:
        return [self._describe(self.raw(index)) for index in range(len(self))]

    @staticmethod
    def _describe(chunk) -> Chunk:
        kind = _CHUNK_KINDS.get(mtmd.mtmd_input_chunk_get_type(chunk), "unknown")
        if kind != "text":
            return Chunk(kind, mtmd.mtmd_input_chunk_get_n_tokens(chunk))
        count = ctypes.c_size_t(0)
        tokens = mtmd.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(count))
        return Chunk(kind, count.value, tuple(tokens[i] for i in range(count.value)))

    def close(self) -> None:
        if self.pointer:
            mtmd.mtmd_input_chunks_free(self.pointer)
            self.pointer = None

    def __enter__(self) -> "ChunkList":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _route_mtmd_logs() -> None:
    """mtmd and its helpers log every image to stderr; send them where llama.cpp's log goes."""
    from edge.runtime.llama import _route_llama_log

    mtmd.mtmd_log_set(_route_llama_log, ctypes.c_void_p(0))
    mtmd.mtmd_helper_log_set(_route_llama_log, ctypes.c_void_p(0))


def _bitmap(image: np.ndarray):
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise VisionError(f"an image must be an H x W x 3 uint8 RGB array, got {image.dtype} {image.shape}")
    height, width, _ = image.shape
    data = np.ascontiguousarray(image).tobytes()
    buffer = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
    bitmap = mtmd.mtmd_bitmap_init(width, height, buffer)
    if not bitmap:
        raise VisionError("llama.cpp could not create an image bitmap")
    return bitmap
