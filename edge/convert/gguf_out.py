"""Writing a GGUF one tensor at a time, atomically.

Two passes over a plan: first every tensor's name, shape and output type go into the header (known from
the safetensors headers alone), then each tensor is read, converted and written before the next one is
touched. Peak memory is therefore about the largest tensor, not the checkpoint. The file is written under
a temporary name in the destination folder and renamed only when complete, so a failure leaves nothing
that looks like a model behind.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np
from tqdm import tqdm

from edge.convert.errors import ConversionError

OUT_TYPES = {
    "f32": gguf.GGMLQuantizationType.F32,
    "f16": gguf.GGMLQuantizationType.F16,
    "bf16": gguf.GGMLQuantizationType.BF16,
    "q8_0": gguf.GGMLQuantizationType.Q8_0,
}
FILE_TYPES = {
    "f32": gguf.LlamaFileType.ALL_F32,
    "f16": gguf.LlamaFileType.MOSTLY_F16,
    "bf16": gguf.LlamaFileType.MOSTLY_BF16,
    "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
}


@dataclass(frozen=True)
class PlannedTensor:
    """One output tensor: ``load`` returns float32 data already in the GGUF's (numpy-order) shape."""

    name: str
    shape: tuple[int, ...]
    qtype: gguf.GGMLQuantizationType
    load: Callable[[], np.ndarray]


def choose_type(outtype: str, shape: tuple[int, ...], force_f32: bool = False) -> gguf.GGMLQuantizationType:
    """Vectors, scalars and anything marked ``force_f32`` stay F32; a matrix gets the requested type, or
    F16 when its rows do not fit Q8_0's 32-element blocks."""
    wanted = OUT_TYPES[outtype]
    if force_f32 or len(shape) < 2 or wanted == gguf.GGMLQuantizationType.F32:
        return gguf.GGMLQuantizationType.F32
    if wanted == gguf.GGMLQuantizationType.Q8_0 and shape[-1] % 32 != 0:
        return gguf.GGMLQuantizationType.F16
    return wanted


def encode(data: np.ndarray, qtype: gguf.GGMLQuantizationType) -> np.ndarray:
    data = np.ascontiguousarray(data, dtype=np.float32)
    if qtype == gguf.GGMLQuantizationType.F32:
        return data
    if qtype == gguf.GGMLQuantizationType.F16:
        return data.astype(np.float16)
    return gguf.quants.quantize(data, qtype)


def write_gguf(path: Path, writer: gguf.GGUFWriter, plan: list[PlannedTensor], label: str,
               progress: bool = True) -> None:
    """Write ``plan`` through ``writer`` (its metadata already added) to ``path``, atomically."""
    temp = path.with_name(f".{path.name}.partial")
    try:
        for tensor in plan:
            nbytes = _nbytes(tensor.shape, tensor.qtype)
            writer.add_tensor_info(tensor.name, tensor.shape, np.dtype(np.float32), nbytes, raw_dtype=tensor.qtype)
        writer.write_header_to_file(temp)
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        bar = tqdm(plan, desc=label, unit="tensor", disable=not progress, leave=False)
        for tensor in bar:
            data = tensor.load()
            if tuple(data.shape) != tensor.shape:
                raise ConversionError(f"tensor {tensor.name}: expected shape {tensor.shape}, got {data.shape}")
            writer.write_tensor_data(encode(data, tensor.qtype))
        writer.close()
        os.replace(temp, path)
    except BaseException:
        writer.close()
        temp.unlink(missing_ok=True)
        raise


def _nbytes(shape: tuple[int, ...], qtype: gguf.GGMLQuantizationType) -> int:
    block, type_size = gguf.GGML_QUANT_SIZES[qtype]
    count = int(np.prod(shape, dtype=np.int64))
    return count // block * type_size
