"""Turn formats per model family: prompt rendering and the streaming output parser."""

from __future__ import annotations

from edge.formats.base import ChatFormat
from edge.formats.gemma3 import Gemma3Format


class UnsupportedModelError(ValueError):
    pass


# general.architecture -> the family's turn format
_FORMATS: dict[str, type[ChatFormat]] = {
    "gemma3": Gemma3Format,
}


def chat_format_for(architecture: str, chat_template: str | None) -> ChatFormat:
    """The renderer and parser for a model; chosen by architecture, not guessed from names."""
    try:
        return _FORMATS[architecture]()
    except KeyError:
        served = ", ".join(sorted(_FORMATS))
        raise UnsupportedModelError(
            f"edge has no turn format for architecture {architecture!r} (it serves: {served})") from None
