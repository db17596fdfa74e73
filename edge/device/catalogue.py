"""Models edge knows by name: ``edge pull gemma-4-e4b``, ``edge serve --model gemma-4-e4b:Q8_0``.

Each name is a Hugging Face repository of GGUF files with its vision projector (``mmproj``); the quant tag
picks the file, as ``choose_gguf`` does for any repo. ``architecture`` names a shape in
``edge.device.shape`` so that ``edge plan --model NAME`` works before the file is downloaded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NAME_PATTERN = re.compile(r"^(?P<name>[a-z0-9][a-z0-9.-]*)(?::(?P<quant>[A-Za-z0-9_]+))?$")


class CatalogueError(ValueError):
    pass


@dataclass(frozen=True)
class Entry:
    name: str
    repo: str
    quants: tuple[str, ...]  # tags published in the repo; the first is the default
    description: str
    architecture: str | None = None  # a key of edge.device.shape.KNOWN_ARCHITECTURES

    @property
    def default_quant(self) -> str:
        return self.quants[0]


CATALOGUE: dict[str, Entry] = {entry.name: entry for entry in (
    Entry("gemma-4-e4b", "ggml-org/gemma-4-E4B-it-GGUF", ("Q4_K_M", "Q8_0", "F16"),
          "Gemma 4 E4B instruction-tuned, llama.cpp's own conversion, with its mmproj", "gemma-4-e4b"),
    Entry("gemma-4-e2b", "ggml-org/gemma-4-E2B-it-GGUF", ("Q4_K_M", "Q8_0", "F16"),
          "Gemma 4 E2B instruction-tuned, llama.cpp's own conversion, with its mmproj"),
    Entry("gemma-4-e4b-qat", "google/gemma-4-E4B-it-qat-q4_0-gguf", ("Q4_0",),
          "Gemma 4 E4B, Google's quantization-aware-trained Q4_0 build, with its mmproj", "gemma-4-e4b"),
    Entry("gemma-4-e2b-qat", "google/gemma-4-E2B-it-qat-q4_0-gguf", ("Q4_0",),
          "Gemma 4 E2B, Google's quantization-aware-trained Q4_0 build, with its mmproj"),
)}


@dataclass(frozen=True)
class Named:
    entry: Entry
    quant: str

    @property
    def spec(self) -> str:
        return f"{self.entry.name}:{self.quant}"


def is_catalogue_name(spec: str | None) -> bool:
    match = NAME_PATTERN.match(spec or "")
    return bool(match and match.group("name") in CATALOGUE)


def lookup(spec: str) -> Named:
    """``gemma-4-e4b`` or ``gemma-4-e4b:Q8_0``; an unknown name or tag lists what there is."""
    match = NAME_PATTERN.match(spec)
    if not match or match.group("name") not in CATALOGUE:
        raise CatalogueError(f"unknown model name {spec!r} (known: {', '.join(CATALOGUE)}; "
                             "or pass a GGUF path or a Hugging Face owner/repo[:QUANT])")
    entry = CATALOGUE[match.group("name")]
    quant = (match.group("quant") or entry.default_quant).upper()
    if quant not in entry.quants:
        raise CatalogueError(f"{entry.name} has no {quant} build (published: {', '.join(entry.quants)})")
    return Named(entry, quant)
