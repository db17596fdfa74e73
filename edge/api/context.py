"""What a translator needs to know about the served model to build a GenerationRequest."""

from __future__ import annotations

from dataclasses import dataclass

from edge.formats.base import ChatFormat
from edge.runtime.images import ImagePolicy


@dataclass(frozen=True)
class ServingContext:
    chat_format: ChatFormat
    n_vocab: int
    vision: bool  # a projector is loaded: image input is accepted
    image_policy: ImagePolicy
