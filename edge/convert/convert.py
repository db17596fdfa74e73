"""``edge convert``: a Hugging Face Gemma 4 checkpoint -> ``NAME-OUTTYPE.gguf`` + ``mmproj-NAME-F16.gguf``."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import gguf

from edge.convert.checkpoint import open_checkpoint, resolve_source
from edge.convert.errors import ConversionError
from edge.convert.gguf_out import OUT_TYPES, write_gguf
from edge.convert.mmproj import has_vision, mmproj_outtype, plan_mmproj_tensors, write_mmproj_metadata
from edge.convert.text_model import plan_text_tensors, text_params, write_text_metadata
from edge.convert.vocab import read_vocabulary, write_vocabulary

log = logging.getLogger("edge.convert")


@dataclass(frozen=True)
class ConversionResult:
    text_gguf: Path
    mmproj_gguf: Path | None


def convert_checkpoint(source: str | Path, out_dir: str | Path, outtype: str = "f16",
                       name: str | None = None, progress: bool = True) -> ConversionResult:
    """Convert ``source`` (folder or hub repo id) into ``out_dir``; every output is written atomically."""
    if outtype not in OUT_TYPES:
        raise ConversionError(f"unsupported --outtype {outtype!r}; choose from {', '.join(OUT_TYPES)}")
    folder = resolve_source(str(source))
    checkpoint = open_checkpoint(folder)
    params = text_params(checkpoint.config)
    vocab = read_vocabulary(checkpoint, params.n_vocab)
    name = name or _model_name(folder)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    text_path = out / f"{name}-{outtype.upper()}.gguf"
    text_plan = plan_text_tensors(checkpoint, params, outtype, len(vocab.pieces))
    writer = gguf.GGUFWriter(path=None, arch=gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.GEMMA4])
    write_text_metadata(writer, params, name, outtype)
    write_vocabulary(writer, vocab)
    write_gguf(text_path, writer, text_plan, f"text {outtype}", progress)
    log.info("wrote %s", text_path)

    mmproj_path = None
    if has_vision(checkpoint):
        projector_type = mmproj_outtype(outtype)
        mmproj_path = out / f"mmproj-{name}-{projector_type.upper()}.gguf"
        writer = gguf.GGUFWriter(path=None, arch="clip")
        try:
            plan = plan_mmproj_tensors(checkpoint, projector_type)
            write_mmproj_metadata(writer, checkpoint, name, projector_type)
            write_gguf(mmproj_path, writer, plan, f"mmproj {projector_type}", progress)
        except BaseException:
            text_path.unlink(missing_ok=True)  # a text model without its projector is a half conversion
            raise
        log.info("wrote %s", mmproj_path)
    return ConversionResult(text_path, mmproj_path)


def _model_name(folder: Path) -> str:
    """``google/gemma-4-E4B-it`` snapshots live in .../models--google--gemma-4-E4B-it/snapshots/HASH."""
    for part in reversed(folder.resolve().parts):
        if part.startswith("models--"):
            return part.split("--")[-1]
    return folder.resolve().name
