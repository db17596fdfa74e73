"""Ready-made test models for test suites (tests/gemma4, server tests): checkpoint -> GGUF -> quantized.

Plain functions so that any suite can build them into its own temporary folder:

    models = build_test_models(tmp_dir, "tiny")            # F32 text GGUF + F32 mmproj
    wide = build_test_models(tmp_dir, "wide", quant_types=("Q8_0", "Q4_K_M"))
    google = build_test_models(tmp_dir, "tiny", chat_template=google_source)  # carries Google's template
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edge.convert.convert import convert_checkpoint
from edge.convert.quantize import quantize_gguf
from edge.convert.test_model import make_test_model


@dataclass(frozen=True)
class TestModels:
    checkpoint: Path
    text_gguf: Path
    mmproj_gguf: Path
    quantized: dict[str, Path] = field(default_factory=dict)


def build_test_models(work_dir: str | Path, variant: str = "tiny", outtype: str = "f32",
                      quant_types: tuple[str, ...] = (), chat_template: str | None = None) -> TestModels:
    """``chat_template``: the template the GGUF carries instead of the project's own (same weights)."""
    work = Path(work_dir)
    checkpoint = make_test_model(work / f"{variant}-hf", variant, chat_template=chat_template)
    result = convert_checkpoint(checkpoint, work / f"{variant}-gguf", outtype, name=f"gemma4-{variant}",
                                progress=False)
    quantized = {
        qtype: quantize_gguf(result.text_gguf, work / f"{variant}-gguf" / f"gemma4-{variant}-{qtype}.gguf",
                             qtype).output
        for qtype in quant_types
    }
    return TestModels(checkpoint, result.text_gguf, result.mmproj_gguf, quantized)
