"""Where a Hugging Face Gemma 4 checkpoint lives and what it holds: its config and its tensors.

``resolve_source`` accepts a local folder or a hub repo id (downloaded with huggingface-hub, which also
serves ``HF_HUB_OFFLINE=1`` from the local cache). ``Checkpoint`` lists tensors from the safetensors
headers and reads one tensor at a time.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.convert.errors import ConversionError
from edge.convert.safetensors_io import TensorEntry, load_tensor, read_header

SUPPORTED_ARCHITECTURES = ("Gemma4ForConditionalGeneration",)
SUPPORTED_DTYPES = ("F32", "F16", "BF16")
_DOWNLOAD_PATTERNS = ["*.json", "*.safetensors", "*.jinja", "tokenizer.model"]


def resolve_source(source: str) -> Path:
    """A local checkpoint folder as is; anything else is taken as a hub repo id and fetched."""
    path = Path(source).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ConversionError(f"{path} is a file; pass the checkpoint folder that holds config.json")
        return path
    if source.count("/") != 1 or source.startswith((".", "/")):
        raise ConversionError(f"{source}: no such folder, and not a Hugging Face repo id (owner/name)")
    return _download(source)


def _download(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}
    try:
        return Path(snapshot_download(repo_id, allow_patterns=_DOWNLOAD_PATTERNS, local_files_only=offline))
    except LocalEntryNotFoundError as exc:
        hint = ("HF_HUB_OFFLINE is set and it is not in the local cache" if offline
                else "the hub could not be reached and it is not in the local cache")
        raise ConversionError(f"{repo_id}: {hint}") from exc
    except (HfHubHTTPError, OSError, ValueError) as exc:
        raise ConversionError(f"{repo_id}: download failed ({exc})") from exc


@dataclass
class Checkpoint:
    folder: Path
    config: dict
    tensors: dict[str, TensorEntry] = field(default_factory=dict)

    def load(self, name: str) -> np.ndarray:
        return load_tensor(self.tensors[name], name)

    def shape(self, name: str) -> tuple[int, ...]:
        return self.tensors[name].shape

    def json_file(self, name: str) -> dict | None:
        path = self.folder / name
        if not path.is_file():
            return None
        return _read_json(path)


def open_checkpoint(folder: Path) -> Checkpoint:
    """Read config.json and every safetensors header; refuse what we cannot convert, by name."""
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ConversionError(f"{folder}: missing config.json (is this a Hugging Face checkpoint folder?)")
    config = _read_json(config_path)
    architectures = config.get("architectures") or []
    if not any(arch in SUPPORTED_ARCHITECTURES for arch in architectures):
        raise ConversionError(f"{folder}: unsupported architecture {architectures or config.get('model_type')}; "
                              f"supported: {', '.join(SUPPORTED_ARCHITECTURES)}")
    if not (folder / "tokenizer.json").is_file():
        raise ConversionError(f"{folder}: missing tokenizer.json")
    checkpoint = Checkpoint(folder, config)
    for file in _weight_files(folder):
        checkpoint.tensors.update(read_header(file))
    _check_dtypes(checkpoint)
    return checkpoint


def _check_dtypes(checkpoint: Checkpoint) -> None:
    """Refuse unsupported dtypes before anything is written (an int8/fp8 checkpoint needs its own path)."""
    for name, entry in checkpoint.tensors.items():
        if entry.dtype not in SUPPORTED_DTYPES:
            raise ConversionError(f"tensor {name!r} has dtype {entry.dtype}; supported: "
                                  f"{', '.join(SUPPORTED_DTYPES)}")


def _weight_files(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        names = sorted(set(_read_json(index).get("weight_map", {}).values()))
        missing = [name for name in names if not (folder / name).is_file()]
        if missing:
            raise ConversionError(f"{folder}: missing weight files {', '.join(missing)}")
        return [folder / name for name in names]
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise ConversionError(f"{folder}: no .safetensors weight files")
    return files


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConversionError(f"{path}: not valid JSON ({exc})") from exc
