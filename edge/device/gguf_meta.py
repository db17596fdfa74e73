"""A GGUF's metadata and tensor table, read by ggml's own parser (``gguf_init_from_file`` with no_alloc).

The plan needs scalars, small per-layer arrays, the vocabulary's size and each tensor's type and byte
size. The ``gguf`` Python package decodes a 262,144-entry token array element by element (tens of seconds
on a shared 2-core machine); ggml's C reader, the one llama.cpp loads models with, takes milliseconds and
reads no tensor data.
"""

from __future__ import annotations

import ctypes
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# enum gguf_type (ggml/include/gguf.h)
_UINT8, _INT8, _UINT16, _INT16, _UINT32, _INT32, _FLOAT32, _BOOL, _STRING, _ARRAY, _UINT64, _INT64, _FLOAT64 = range(13)
_SCALAR_GETTERS = {_UINT8: "u8", _INT8: "i8", _UINT16: "u16", _INT16: "i16", _UINT32: "u32", _INT32: "i32",
                   _FLOAT32: "f32", _BOOL: "bool", _UINT64: "u64", _INT64: "i64", _FLOAT64: "f64"}
_ARRAY_ELEMENTS = {_UINT8: ctypes.c_uint8, _INT8: ctypes.c_int8, _UINT16: ctypes.c_uint16, _INT16: ctypes.c_int16,
                   _UINT32: ctypes.c_uint32, _INT32: ctypes.c_int32, _FLOAT32: ctypes.c_float, _BOOL: ctypes.c_bool,
                   _UINT64: ctypes.c_uint64, _INT64: ctypes.c_int64, _FLOAT64: ctypes.c_double}
# arrays longer than this (the tokenizer's) are reported by length only
_MAX_ARRAY = 4096


class GGUFError(ValueError):
    pass


@dataclass(frozen=True)
class Tensor:
    name: str
    type_name: str  # ggml's name: "q4_K", "f32" (upper-cased here: "Q4_K", "F32")
    n_bytes: int
    n_dims: int


@dataclass(frozen=True)
class GGUFMetadata:
    values: dict[str, Any]  # scalars, strings, short arrays as lists
    array_lengths: dict[str, int]  # every array's length, long ones included
    tensors: tuple[Tensor, ...]


class _InitParams(ctypes.Structure):
    _fields_ = [("no_alloc", ctypes.c_bool), ("ctx", ctypes.c_void_p)]


@functools.lru_cache(maxsize=1)
def _library() -> Any:
    from llama_cpp._ggml import libggml

    lib = libggml
    c_ctx, c_id = ctypes.c_void_p, ctypes.c_int64
    prototypes = {
        "gguf_init_from_file": ([ctypes.c_char_p, _InitParams], c_ctx), "gguf_free": ([c_ctx], None),
        "gguf_get_n_kv": ([c_ctx], ctypes.c_int64), "gguf_get_key": ([c_ctx, c_id], ctypes.c_char_p),
        "gguf_get_kv_type": ([c_ctx, c_id], ctypes.c_int), "gguf_get_arr_type": ([c_ctx, c_id], ctypes.c_int),
        "gguf_get_arr_n": ([c_ctx, c_id], ctypes.c_size_t), "gguf_get_arr_data": ([c_ctx, c_id], ctypes.c_void_p),
        "gguf_get_arr_str": ([c_ctx, c_id, ctypes.c_size_t], ctypes.c_char_p),
        "gguf_get_val_str": ([c_ctx, c_id], ctypes.c_char_p),
        "gguf_get_n_tensors": ([c_ctx], ctypes.c_int64), "gguf_get_tensor_name": ([c_ctx, c_id], ctypes.c_char_p),
        "gguf_get_tensor_type": ([c_ctx, c_id], ctypes.c_int), "gguf_get_tensor_size": ([c_ctx, c_id], ctypes.c_size_t),
        "gguf_get_tensor_ne": ([c_ctx, c_id], ctypes.POINTER(ctypes.c_int64)),
        "ggml_type_name": ([ctypes.c_int], ctypes.c_char_p),
    }
    scalar_types = {"u8": ctypes.c_uint8, "i8": ctypes.c_int8, "u16": ctypes.c_uint16, "i16": ctypes.c_int16,
                    "u32": ctypes.c_uint32, "i32": ctypes.c_int32, "f32": ctypes.c_float, "bool": ctypes.c_bool,
                    "u64": ctypes.c_uint64, "i64": ctypes.c_int64, "f64": ctypes.c_double}
    for suffix, restype in scalar_types.items():
        prototypes[f"gguf_get_val_{suffix}"] = ([c_ctx, c_id], restype)
    for name, (argtypes, restype) in prototypes.items():
        function = getattr(lib, name)
        function.argtypes, function.restype = argtypes, restype
    return lib


def read_gguf(path: str | Path) -> GGUFMetadata:
    path = Path(path)
    if not path.is_file():
        raise GGUFError(f"{path}: no such file")
    lib = _library()
    context = lib.gguf_init_from_file(str(path).encode(), _InitParams(True, None))
    if not context:
        raise GGUFError(f"{path}: not a readable GGUF file")
    try:
        values, lengths = _key_values(lib, context)
        return GGUFMetadata(values, lengths, _tensors(lib, context))
    finally:
        lib.gguf_free(context)


def _key_values(lib, context) -> tuple[dict[str, Any], dict[str, int]]:
    values: dict[str, Any] = {}
    lengths: dict[str, int] = {}
    for key_id in range(lib.gguf_get_n_kv(context)):
        key = lib.gguf_get_key(context, key_id).decode()
        kind = lib.gguf_get_kv_type(context, key_id)
        if kind == _STRING:
            values[key] = lib.gguf_get_val_str(context, key_id).decode(errors="replace")
        elif kind == _ARRAY:
            lengths[key] = length = lib.gguf_get_arr_n(context, key_id)
            if length <= _MAX_ARRAY:
                values[key] = _array(lib, context, key_id, length)
        elif kind in _SCALAR_GETTERS:
            values[key] = getattr(lib, f"gguf_get_val_{_SCALAR_GETTERS[kind]}")(context, key_id)
    return values, lengths


def _array(lib, context, key_id: int, length: int) -> list:
    element = lib.gguf_get_arr_type(context, key_id)
    if element == _STRING:
        return [lib.gguf_get_arr_str(context, key_id, index).decode(errors="replace") for index in range(length)]
    if element not in _ARRAY_ELEMENTS or length == 0:
        return []
    pointer = ctypes.cast(lib.gguf_get_arr_data(context, key_id), ctypes.POINTER(_ARRAY_ELEMENTS[element]))
    return [pointer[index] for index in range(length)]


def _tensors(lib, context) -> tuple[Tensor, ...]:
    tensors = []
    for tensor_id in range(lib.gguf_get_n_tensors(context)):
        shape = lib.gguf_get_tensor_ne(context, tensor_id)
        n_dims = max((dim + 1 for dim in range(4) if shape[dim] > 1), default=1)
        type_name = lib.ggml_type_name(lib.gguf_get_tensor_type(context, tensor_id)).decode().upper()
        tensors.append(Tensor(lib.gguf_get_tensor_name(context, tensor_id).decode(), type_name,
                              int(lib.gguf_get_tensor_size(context, tensor_id)), n_dims))
    return tuple(tensors)
