"""``edge pull NAME[:QUANT]`` and ``edge list``: models in huggingface-hub's cache, by name.

``edge pull`` resolves a catalogue name (or any ``owner/repo[:QUANT]``) exactly as ``edge serve --model``
does (edge/runtime/sources.py), but always asks the hub, so a missing projector or a newer file is fetched;
huggingface-hub draws the progress bar, resumes a dropped connection and stores the files in its cache
(``HF_HUB_CACHE``, by default ``~/.cache/huggingface/hub``), where ``edge serve`` then finds them offline.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edge.device.catalogue import CATALOGUE, CatalogueError, is_catalogue_name, lookup
from edge.runtime.sources import ModelFiles, ModelSourceError, choose_gguf, from_hub, is_mmproj_name


def repo_spec(spec: str) -> str:
    """A catalogue name becomes ``repo:QUANT``; ``owner/repo[:QUANT]`` passes through."""
    if is_catalogue_name(spec):
        try:
            named = lookup(spec)
        except CatalogueError as exc:
            raise ModelSourceError(str(exc)) from None
        return f"{named.entry.repo}:{named.quant}"
    if "/" in spec:
        return spec
    raise ModelSourceError(f"unknown model name {spec!r} (known: {', '.join(CATALOGUE)}; "
                           "or a Hugging Face owner/repo[:QUANT])")


def pull(spec: str) -> ModelFiles:
    return from_hub(repo_spec(spec), prefer_cache=False)


@dataclass(frozen=True)
class CachedFile:
    repo: str
    name: str
    size: int
    path: Path
    projector: bool


def cached_ggufs() -> list[CachedFile]:
    """Every GGUF of every model repo in the hub cache (huggingface-hub's own cache scan)."""
    from huggingface_hub import scan_cache_dir

    try:
        from huggingface_hub.errors import CacheNotFound
    except ImportError:  # huggingface-hub before 0.26 kept it in utils
        from huggingface_hub.utils import CacheNotFound

    try:
        cache = scan_cache_dir()
    except CacheNotFound:
        return []
    files = []
    for repo in sorted(cache.repos, key=lambda item: item.repo_id):
        if repo.repo_type != "model":
            continue
        seen = set()
        for revision in repo.revisions:
            for cached in revision.files:
                if cached.file_name.lower().endswith(".gguf") and cached.file_name not in seen:
                    seen.add(cached.file_name)
                    files.append(CachedFile(repo.repo_id, cached.file_name, cached.size_on_disk,
                                            cached.file_path, is_mmproj_name(cached.file_name)))
    return files


def names_for(repo: str, file_names: list[str]) -> list[str]:
    """The catalogue names (with quant) that these cached files of ``repo`` satisfy."""
    names = []
    for entry in CATALOGUE.values():
        if entry.repo.lower() != repo.lower():
            continue
        for quant in entry.quants:
            try:
                choose_gguf(file_names, quant, repo)
            except ModelSourceError:
                continue
            names.append(f"{entry.name}:{quant}")
    return names


def format_listing(files: list[CachedFile], known: bool) -> str:
    lines = []
    by_repo: dict[str, list[CachedFile]] = {}
    for cached in files:
        by_repo.setdefault(cached.repo, []).append(cached)
    if not by_repo:
        lines.append("no GGUF models in the Hugging Face cache (edge pull NAME fetches one)")
    for repo, entries in by_repo.items():
        names = names_for(repo, [entry.name for entry in entries])
        lines.append(f"{repo}" + (f"  (edge serve --model {' | '.join(names)})" if names else ""))
        for entry in entries:
            kind = "projector" if entry.projector else "model"
            lines.append(f"  {entry.name:<48} {entry.size / 2**30:7.2f} GiB  {kind}  {entry.path}")
    if known:
        lines += ["", "models edge knows by name (edge pull NAME[:QUANT]):"]
        for entry in CATALOGUE.values():
            lines.append(f"  {entry.name:<18} {entry.repo:<40} {', '.join(entry.quants):<18} {entry.description}")
    return "\n".join(lines)
