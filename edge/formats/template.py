"""Rendering a model's own Jinja chat template, safely, into control and text segments.

The template runs in Jinja's immutable sandbox. Every string that came from a client (message text,
tool-call argument values, tool results, descriptions) is swapped for a sentinel before rendering and
swapped back afterwards as a *text* segment, so text a user typed, such as ``<|tool_call>``, is tokenized
as text and can never become a control token, whatever the template does with it.

Names and keys (tool names, argument and result keys, schema property names) stay visible, so that they
are tokenized as the model saw them in training, unless they hold a ``<``: every special-token spelling
starts with one, so such a name is hidden like any other client text.

Templates trim message text and strip thoughts from past model turns; a sentinel is immune to both, so
those two steps are applied to the real text here before it is hidden.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from edge.errors import InvalidRequestError
from edge.formats.base import Segment

_SENTINEL = re.compile("\ue000(\\d+)\ue001")
_THOUGHT = re.compile(r"<\|channel>.*?(<channel\|>|$)", re.DOTALL)


class TemplateError(ValueError):
    """The GGUF's chat template does not compile."""


def _raise_exception(message: str) -> None:
    raise InvalidRequestError(f"the chat template refused the conversation: {message}", param="messages")


def compile_template(source: str) -> jinja2.Template:
    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                                extensions=["jinja2.ext.loopcontrols"])
    environment.globals["raise_exception"] = _raise_exception
    try:
        return environment.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"the model's chat template does not compile: {exc}") from exc


class _JsonNull:
    """JSON ``null`` for a template: it prints as ``null`` (Gemma's spelling, the one its tool-call grammar
    and parser use) where Python's ``None`` would print as ``None``, and no Jinja test mistakes it for a
    string, mapping or sequence."""

    def __str__(self) -> str:
        return "null"

    __repr__ = __str__


JSON_NULL = _JsonNull()


@dataclass
class Hider:
    """Replaces client strings by sentinels and remembers them."""

    texts: list[str] = field(default_factory=list)

    def hide(self, text: str) -> str:
        if not text:
            return ""  # nothing to protect, and templates test emptiness (``{% if description %}``)
        self.texts.append(text)
        return f"\ue000{len(self.texts) - 1}\ue001"

    def name(self, text: str) -> str:
        """A name or key: visible unless it could spell a special token."""
        return self.hide(text) if "<" in text else text

    def hide_values(self, value: Any) -> Any:
        """Hide every string inside a JSON-like value (tool-call arguments, tool results); keys are names."""
        if isinstance(value, str):
            return self.hide(value)
        if value is None:
            return JSON_NULL
        if isinstance(value, dict):
            return {self.name(str(key)): self.hide_values(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.hide_values(item) for item in value]
        return value

    def segments(self, rendered: str) -> list[Segment]:
        segments: list[Segment] = []
        position = 0
        for match in _SENTINEL.finditer(rendered):
            if match.start() > position:
                segments.append(Segment(rendered[position:match.start()], True))
            segments.append(Segment(self.texts[int(match.group(1))], False))
            position = match.end()
        if position < len(rendered):
            segments.append(Segment(rendered[position:], True))
        return [segment for segment in segments if segment.text]


def visible_text(text: str) -> str:
    """A past model turn without its thought channel, trimmed: what the template would keep."""
    return _THOUGHT.sub("", text).strip()


def render_template(template: jinja2.Template, variables: dict[str, Any], hider: Hider) -> list[Segment]:
    try:
        rendered = template.render(**variables)
    except InvalidRequestError:
        raise
    except Exception as exc:  # a GGUF's template is data: whatever it raises is its refusal, not our failure
        raise InvalidRequestError(f"the chat template could not render this conversation: {exc}",
                                  param="messages") from exc
    return hider.segments(rendered)
