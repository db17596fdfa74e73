"""Read and write safetensors files one tensor at a time, bf16 included, without torch.

The ``safetensors`` package's numpy backend cannot represent bfloat16 (numpy has no such dtype), and the
real Gemma 4 checkpoints are bf16. The format is simple — an 8-byte header length, a JSON header, raw
little-endian data — so we parse the header ourselves and memory-map the data: a tensor is read only when
asked for, which keeps the converter's peak memory near the size of the largest tensor.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.convert.errors import ConversionError

# dtypes we can turn into float32; anything else (int8, fp8, ...) is refused by name
_FLOAT_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16}
_MAX_HEADER_BYTES = 100 * 1024 * 1024


@dataclass(frozen=True)
class TensorEntry:
    file: Path
    dtype: str
    shape: tuple[int, ...]
    begin: int  # absolute byte offset in the file
    end: int


def read_header(path: Path) -> dict[str, TensorEntry]:
    """Parse one file's header and check every tensor's byte range against the file size."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            prefix = handle.read(8)
            if len(prefix) != 8:
                raise ConversionError(f"{path}: not a safetensors file (shorter than its header)")
            (header_len,) = struct.unpack("<Q", prefix)
            if header_len > min(size - 8, _MAX_HEADER_BYTES):
                raise ConversionError(f"{path}: corrupt safetensors header (length {header_len})")
            header = json.loads(handle.read(header_len))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, ConversionError):
            raise
        raise ConversionError(f"{path}: unreadable safetensors header ({exc})") from exc
    data_start = 8 + header_len
    entries = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        entries[name] = _entry(path, name, info, data_start, size)
    return entries


def _entry(path: Path, name: str, info: dict, data_start: int, file_size: int) -> TensorEntry:
    try:
        dtype, shape, (begin, end) = info["dtype"], tuple(info["shape"]), info["data_offsets"]
    except (KeyError, TypeError, ValueError) as exc:
        raise ConversionError(f"{path}: corrupt header entry for tensor {name!r}") from exc
    if data_start + end > file_size or begin > end:
        raise ConversionError(f"{path}: tensor {name!r} runs past the end of the file (truncated download?)")
    itemsize = {"F32": 4, "F16": 2, "BF16": 2}.get(dtype)
    if itemsize is not None and (end - begin) != itemsize * int(np.prod(shape, dtype=np.int64)):
        raise ConversionError(f"{path}: tensor {name!r} has {end - begin} bytes, its shape says otherwise")
    return TensorEntry(path, dtype, shape, data_start + begin, data_start + end)


def load_tensor(entry: TensorEntry, name: str) -> np.ndarray:
    """The tensor as float32 (bf16 widened exactly), read through a memory map."""
    numpy_dtype = _FLOAT_DTYPES.get(entry.dtype)
    if numpy_dtype is None:
        raise ConversionError(f"tensor {name!r} has dtype {entry.dtype}; supported: F32, F16, BF16")
    count = int(np.prod(entry.shape, dtype=np.int64))
    raw = np.memmap(entry.file, dtype=numpy_dtype, mode="r", offset=entry.begin, shape=(count,))
    if entry.dtype == "BF16":
        # bf16 is the top half of a float32: widen by shifting into the high bits
        values = (raw.astype(np.uint32) << 16).view(np.float32)
    else:
        values = raw.astype(np.float32)
    return values.reshape(entry.shape)


def float32_to_bf16_bits(values: np.ndarray) -> np.ndarray:
    """Round-to-nearest-even float32 -> bf16, returned as the uint16 bit pattern."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounding = ((bits >> 16) & 1) + 0x7FFF
    return ((bits + rounding) >> 16).astype(np.uint16)


def save_tensors(tensors: dict[str, np.ndarray], path: Path, dtype: str = "F32",
                 metadata: dict[str, str] | None = None) -> None:
    """Write float tensors as one safetensors file in ``dtype`` (F32, F16 or BF16), names sorted."""
    header: dict[str, object] = {"__metadata__": metadata or {"format": "pt"}}
    blobs, offset = [], 0
    for name in sorted(tensors):
        blob = _encode(tensors[name], dtype)
        header[name] = {"dtype": dtype, "shape": list(tensors[name].shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    header_bytes = json.dumps(header, separators=(",", ":")).encode()
    header_bytes += b" " * (-len(header_bytes) % 8)  # the spec pads the header to 8 bytes
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(header_bytes)))
        handle.write(header_bytes)
        for blob in blobs:
            handle.write(blob)


def _encode(array: np.ndarray, dtype: str) -> bytes:
    if dtype == "F32":
        return np.ascontiguousarray(array, dtype="<f4").tobytes()
    if dtype == "F16":
        return np.ascontiguousarray(array, dtype="<f2").tobytes()
    if dtype == "BF16":
        return float32_to_bf16_bits(array).astype("<u2").tobytes()
    raise ValueError(f"unsupported dtype {dtype}")
