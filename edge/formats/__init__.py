"""Turn formats per model family: prompt rendering and the streaming output parser."""

from __future__ import annotations

from edge.formats.base import ChatFormat
from edge.formats.gemma3 import Gemma3Format
from edge.formats.gemma4 import Gemma4Format


class UnsupportedModelError(ValueError):
    pass


# general.architecture -> the family's turn format, built from the GGUF's chat template (or None)
_FORMATS = {
    "gemma3": lambda template: Gemma3Format(),  # Gemma 3 GGUFs' templates hold nothing this one lacks
    "gemma4": Gemma4Format,
}


def chat_format_for(architecture: str, chat_template: str | None) -> ChatFormat:
    """The renderer and parser for a model; chosen by architecture, not guessed from names."""
    try:
        return _FORMATS[architecture](chat_template)
    except KeyError:
        served = ", ".join(sorted(_FORMATS))
        raise UnsupportedModelError(
            f"edge has no turn format for architecture {architecture!r} (it serves: {served})") from None
