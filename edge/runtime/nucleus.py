"""The compiled sampling kernel (``_nucleus.c``): exact top-k / top-p / min-p draws without a full sort.

One ``NucleusKernel`` per sequence owns the kernel's scratch memory for its vocabulary, so sequences
sampled one after another never share state.
"""

from __future__ import annotations

import ctypes

import numpy as np

from edge.runtime import _nucleus

_lib = ctypes.CDLL(_nucleus.__file__)
_float_p = ctypes.POINTER(ctypes.c_float)
_lib.edge_scratch_bytes.restype = ctypes.c_size_t
_lib.edge_scratch_bytes.argtypes = [ctypes.c_int32]
_lib.edge_scratch_init.restype = ctypes.c_void_p
_lib.edge_scratch_init.argtypes = [ctypes.c_void_p, ctypes.c_int32]
_lib.edge_sample.restype = ctypes.c_int32
_lib.edge_sample.argtypes = [ctypes.c_void_p, ctypes.c_int32, ctypes.c_float, ctypes.c_int32, ctypes.c_float,
                             ctypes.c_float, ctypes.c_uint64, ctypes.c_void_p]
_lib.edge_kept_set.restype = ctypes.c_int32
_lib.edge_kept_set.argtypes = [ctypes.c_void_p, ctypes.c_int32, ctypes.c_float, ctypes.c_int32, ctypes.c_float,
                               ctypes.c_float, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
_lib.edge_log_normalizer.restype = ctypes.c_double
_lib.edge_log_normalizer.argtypes = [ctypes.c_void_p, ctypes.c_int32, ctypes.c_void_p]


class NucleusKernel:
    def __init__(self, n_vocab: int):
        self.n_vocab = n_vocab
        self._memory = np.zeros(_lib.edge_scratch_bytes(n_vocab), dtype=np.uint8)
        self._scratch = _lib.edge_scratch_init(self._memory.ctypes.data, n_vocab)

    def sample(self, logits: np.ndarray, temperature: float, top_k: int, top_p: float, min_p: float,
               random_bits: int) -> int:
        """One token id from float32 ``logits`` (greedy at temperature 0); -1 if every logit is -inf."""
        self._check(logits)
        return _lib.edge_sample(logits.ctypes.data, self.n_vocab, temperature, top_k, top_p, min_p,
                                random_bits, self._scratch)

    def kept_set(self, logits: np.ndarray, temperature: float, top_k: int, top_p: float,
                 min_p: float) -> tuple[np.ndarray, np.ndarray]:
        """The tokens a draw can return and their probabilities, most probable first (temperature > 0)."""
        self._check(logits)
        ids = np.empty(self.n_vocab, dtype=np.int32)
        probabilities = np.empty(self.n_vocab, dtype=np.float64)
        count = _lib.edge_kept_set(logits.ctypes.data, self.n_vocab, temperature, top_k, top_p, min_p,
                                   self._scratch, ids.ctypes.data, probabilities.ctypes.data)
        return ids[:count].copy(), probabilities[:count].copy()

    def log_normalizer(self, logits: np.ndarray) -> float:
        """log(sum(exp(logits))) over the vocabulary."""
        self._check(logits)
        return _lib.edge_log_normalizer(logits.ctypes.data, self.n_vocab, self._scratch)

    def _check(self, logits: np.ndarray) -> None:
        """The kernel reads n_vocab contiguous float32 values: anything else would read past the array."""
        if logits.shape != (self.n_vocab,) or logits.dtype != np.float32 or not logits.flags.c_contiguous:
            raise ValueError(f"expected {self.n_vocab} contiguous float32 logits, got {logits.dtype} {logits.shape}")
