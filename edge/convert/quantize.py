"""``edge quantize``: a GGUF -> a smaller GGUF through llama.cpp's ``llama_model_quantize``, with the
Gemma 4 recipe.

The recipe: the per-layer token embedding table (``per_layer_token_embd``, ~2.8 B parameters in E4B, read
one row per token) and the token embedding stay at Q8_0 or better, whatever the main type. Plain Q4_K_M
of E4B quantizes the PLE table to 4 bits and collapses (perplexity 23 vs 7.1, llama.cpp issue 22407);
at 8 bits the table costs ~1.4 GB more on disk but is only looked up, not streamed, so decode speed is
unchanged. A projector (mmproj) is never quantized here: it stays F16 (or Q8_0 when asked).
"""

from __future__ import annotations

import ctypes
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

from edge.convert.errors import QuantizationError

# name -> (llama_ftype, needs an importance matrix to be any good)
QUANT_TYPES = {
    "Q8_0": (7, False),
    "Q6_K": (18, False),
    "Q5_K_M": (17, False),
    "Q4_K_M": (15, False),
    "Q4_0": (2, False),
    "IQ4_XS": (30, False),  # works without an imatrix (unlike IQ3/IQ2), better with one
}
GGML_Q8_0 = 8
# tensors the recipe pins at >= 8 bits: (regex, reason)
RECIPE_OVERRIDES = [(r"per_layer_token_embd\.weight", "PLE table: 4-bit collapses E4B")]
TENSOR_GROUPS = [
    ("per_layer_token_embd", r"^per_layer_token_embd\."),
    ("token_embd", r"^token_embd\."),
    ("attention", r"\.attn_(q|k|v|output)\.weight$"),
    ("ffn_gate/up", r"\.ffn_(gate|up)\.weight$"),
    ("ffn_down", r"\.ffn_down\.weight$"),
    ("per_layer (inp_gate/proj)", r"\.(inp_gate|proj)\.weight$|^per_layer_model_proj"),
    ("norms and vectors", r"norm|scale|rope_freqs"),
]


@dataclass(frozen=True)
class QuantizeReport:
    source: Path
    output: Path
    size_before: int
    size_after: int
    types_by_group: dict[str, dict[str, int]]

    def lines(self) -> list[str]:
        out = [f"{self.source.name}: {_mib(self.size_before)} -> {self.output.name}: {_mib(self.size_after)} "
               f"({self.size_after / self.size_before:.0%})"]
        for group, types in self.types_by_group.items():
            listed = ", ".join(f"{name} x{count}" for name, count in sorted(types.items()))
            out.append(f"  {group:28s} {listed}")
        return out


def quantize_gguf(source: str | Path, output: str | Path, qtype: str = "Q4_K_M",
                  imatrix: str | Path | None = None, n_threads: int = 0) -> QuantizeReport:
    """Quantize ``source`` to ``output`` (written under a temporary name, renamed when complete)."""
    source, output = Path(source), Path(output)
    qtype = qtype.upper()
    if qtype not in QUANT_TYPES:
        raise QuantizationError(f"unsupported --type {qtype}; choose from {', '.join(QUANT_TYPES)}")
    _check_source(source)
    temp = output.with_name(f".{output.name}.partial")
    output.parent.mkdir(parents=True, exist_ok=True)
    keepalive = []  # ctypes buffers referenced by params must outlive the call
    params = _params(qtype, imatrix, n_threads, keepalive)
    import llama_cpp

    try:
        status = llama_cpp.llama_model_quantize(str(source).encode(), str(temp).encode(), ctypes.byref(params))
        if status != 0 or not temp.is_file():
            raise QuantizationError(f"llama.cpp could not quantize {source} to {qtype} (status {status})")
        os.replace(temp, output)
    finally:
        temp.unlink(missing_ok=True)
    return QuantizeReport(source, output, source.stat().st_size, output.stat().st_size,
                          tensor_types_by_group(output))


def _check_source(source: Path) -> None:
    if not source.is_file():
        raise QuantizationError(f"input GGUF not found: {source}")
    try:
        reader = gguf.GGUFReader(source)
    except Exception as exc:  # the gguf package raises ValueError, struct.error, ... on bad files
        raise QuantizationError(f"{source}: not a readable GGUF ({exc})") from exc
    field = reader.get_field("general.type")
    if field is not None and field.contents() == "mmproj":
        raise QuantizationError(f"{source} is a vision projector (mmproj): the recipe keeps it at F16; "
                                "convert with --outtype q8_0 for a Q8_0 projector")


def _params(qtype: str, imatrix: str | Path | None, n_threads: int, keepalive: list):
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = QUANT_TYPES[qtype][0]
    params.nthread = n_threads
    params.allow_requantize = False
    # token embedding >= Q8_0 (Q8_0 itself stays Q8_0); output is tied to it in Gemma 4
    params.token_embedding_type = GGML_Q8_0
    overrides = (llama_cpp.llama_model_tensor_override * (len(RECIPE_OVERRIDES) + 1))()
    for index, (pattern, _reason) in enumerate(RECIPE_OVERRIDES):
        encoded = pattern.encode()
        keepalive.append(encoded)
        overrides[index].pattern = encoded
        overrides[index].type = GGML_Q8_0
    overrides[len(RECIPE_OVERRIDES)].pattern = None  # terminator
    keepalive.append(overrides)
    params.tt_overrides = ctypes.cast(overrides, ctypes.POINTER(llama_cpp.llama_model_tensor_override))
    if imatrix is not None:
        entries = load_imatrix(Path(imatrix), keepalive)
        params.imatrix = ctypes.cast(entries, ctypes.POINTER(llama_cpp.llama_model_imatrix_data))
    return params


def load_imatrix(path: Path, keepalive: list):
    """An importance matrix in llama.cpp's GGUF format (``llama-imatrix`` output): for each weight X,
    ``X.in_sum2`` (sum of squared activations per column) and ``X.counts``; the importance is their ratio."""
    import llama_cpp

    if not path.is_file():
        raise QuantizationError(f"imatrix file not found: {path}")
    try:
        reader = gguf.GGUFReader(path)
    except Exception as exc:
        raise QuantizationError(f"{path}: not a GGUF imatrix ({exc}); convert legacy .dat files with "
                                "llama-imatrix --output-format gguf") from exc
    tensors = {tensor.name: np.asarray(tensor.data, dtype=np.float32) for tensor in reader.tensors}
    names = sorted(name[: -len(".in_sum2")] for name in tensors if name.endswith(".in_sum2"))
    if not names:
        raise QuantizationError(f"{path}: no *.in_sum2 tensors (not an importance matrix)")
    entries = (llama_cpp.llama_model_imatrix_data * (len(names) + 1))()
    for index, name in enumerate(names):
        sums = tensors[f"{name}.in_sum2"].reshape(-1)
        counts = tensors.get(f"{name}.counts", np.ones(1, dtype=np.float32)).reshape(-1)
        values = np.ascontiguousarray(sums / np.repeat(np.maximum(counts, 1), sums.size // counts.size),
                                      dtype=np.float32)
        encoded = name.encode()
        keepalive += [values, encoded]
        entries[index].name = encoded
        entries[index].data = values.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        entries[index].size = values.size
    entries[len(names)].name = None
    keepalive.append(entries)
    return entries


def tensor_types_by_group(path: Path) -> dict[str, dict[str, int]]:
    """Read back which GGML type each group of tensors got (the recipe's proof, from the file itself)."""
    groups: dict[str, Counter] = defaultdict(Counter)
    for tensor in gguf.GGUFReader(path).tensors:
        group = next((label for label, pattern in TENSOR_GROUPS if re.search(pattern, tensor.name)), "other")
        groups[group][tensor.tensor_type.name] += 1
    return {label: dict(groups[label]) for label, _ in TENSOR_GROUPS + [("other", "")] if label in groups}


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"
