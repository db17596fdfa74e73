"""What a GGUF is and what decoding one token reads from it, from the file's own tensor table.

Bytes read per decoded token (the denominator of the roofline):
- embedding tables are lookups: ``token_embd`` and Gemma 4's per-layer table ``per_layer_token_embd``
  give one row per token, not the whole table;
- every other weight tensor is streamed once per token;
- except that a model without an ``output`` tensor (Gemma ties its output head to the token embedding)
  multiplies the hidden state by the whole ``token_embd`` for the logits: that table is then streamed too.
The KV cache read grows with the context and is not counted (small next to the weights at short context).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gguf

from edge.bench.errors import BenchError

LOOKUP_TABLES = ("token_embd.weight", "per_layer_token_embd.weight")
OUTPUT_HEAD = "output.weight"
UNQUANTIZED_FILE_TYPES = {"ALL_F32": "F32", "MOSTLY_F16": "F16", "MOSTLY_BF16": "BF16"}
_FLOAT_TENSOR_TYPES = {"F32", "F16", "BF16"}


@dataclass(frozen=True)
class TokenBytes:
    streamed: int      # weights read in full for every token
    lookups: int       # one row of each embedding table
    tied_output: bool  # token_embd doubles as the output head (then it is in ``streamed``)

    @property
    def total(self) -> int:
        return self.streamed + self.lookups

    def as_dict(self) -> dict[str, object]:
        return {"total": self.total, "streamed": self.streamed, "lookups": self.lookups,
                "tied_output_head": self.tied_output}


def open_gguf(path: str | Path) -> gguf.GGUFReader:
    """A reader, or a BenchError that says the file is missing or not a GGUF."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"{path}: no such file")
    with path.open("rb") as handle:
        if handle.read(4) != b"GGUF":
            raise BenchError(f"{path}: not a GGUF file (wrong magic bytes)")
    try:
        return gguf.GGUFReader(path)
    except Exception as exc:  # the gguf package raises ValueError, struct.error, ... on damaged files
        raise BenchError(f"{path}: not a readable GGUF ({exc})") from exc


def bytes_per_token(reader: gguf.GGUFReader) -> TokenBytes:
    tensors = {tensor.name: tensor for tensor in reader.tensors}
    tied = OUTPUT_HEAD not in tensors and "token_embd.weight" in tensors
    streamed = lookups = 0
    for name, tensor in tensors.items():
        if name in LOOKUP_TABLES:
            lookups += _row_bytes(tensor)
            if tied and name == "token_embd.weight":
                streamed += int(tensor.n_bytes)
        else:
            streamed += int(tensor.n_bytes)
    return TokenBytes(streamed, lookups, tied)


def _row_bytes(tensor) -> int:
    """One row of an embedding table: the GGUF shape is (row length, number of rows)."""
    rows = int(tensor.n_elements // int(tensor.shape[0]))
    return int(tensor.n_bytes) // max(rows, 1)


def file_type_name(reader: gguf.GGUFReader) -> str:
    """``F32``/``F16``/``BF16``/``Q4_K_M``...: the general.file_type key, else guessed from the tensors."""
    field = reader.get_field("general.file_type")
    if field is not None:
        try:
            name = gguf.LlamaFileType(int(field.contents())).name
            return UNQUANTIZED_FILE_TYPES.get(name, name.removeprefix("MOSTLY_"))
        except ValueError:
            pass
    matrix_types = {t.tensor_type.name for t in reader.tensors if len(t.shape) > 1}
    if matrix_types <= _FLOAT_TENSOR_TYPES:
        return "F32" if matrix_types == {"F32"} else ("BF16" if "BF16" in matrix_types else "F16")
    return "GUESSED"


def is_unquantized(reader: gguf.GGUFReader) -> bool:
    return file_type_name(reader) in UNQUANTIZED_FILE_TYPES.values()


def model_info(path: str | Path) -> dict[str, object]:
    """Architecture, name, parameter count and the per-token byte budget, for the report."""
    reader = open_gguf(path)
    field = reader.get_field
    arch = field("general.architecture").contents() if field("general.architecture") else "unknown"
    name = field("general.name").contents() if field("general.name") else Path(path).stem
    tokens = field("tokenizer.ggml.tokens")
    return {"path": str(path), "name": name, "architecture": arch, "file_type": file_type_name(reader),
            "size_bytes": Path(path).stat().st_size,
            "n_params": int(sum(int(t.n_elements) for t in reader.tensors)),
            "n_tensors": len(reader.tensors),
            "n_vocab": len(tokens.data) if tokens is not None else None,
            "bytes_per_token": bytes_per_token(reader).as_dict()}


def bits_per_weight(path: str | Path) -> float:
    reader = open_gguf(path)
    n_params = sum(int(t.n_elements) for t in reader.tensors)
    n_bytes = sum(int(t.n_bytes) for t in reader.tensors)
    return 8.0 * n_bytes / max(n_params, 1)
