"""Translation steps every dialect shares: tool declarations and the thinking switch.

The dialects differ in where these fields live on the wire, not in what they mean, so each translator
extracts its fields and hands them here.
"""

from __future__ import annotations

from typing import Any, Iterable

from edge.errors import InvalidRequestError, UnsupportedFeatureError
from edge.formats.base import ChatFormat
from edge.core.events import TokenLogprob
from edge.core.request import ToolSpec
from edge.schema import SchemaError
from edge.schema.shape import check_shape

EMPTY_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}


def tool_specs(declared: Iterable[tuple[str, str | None, dict[str, Any] | None]], chat_format: ChatFormat,
               choice_needs_tools: bool) -> tuple[ToolSpec, ...]:
    """(name, description, JSON-schema parameters) per tool -> ToolSpecs, refusing what cannot work."""
    declared = list(declared)
    if not declared:
        if choice_needs_tools:
            raise InvalidRequestError("tool_choice needs tools", param="tool_choice")
        return ()
    if not chat_format.supports_tools:
        raise UnsupportedFeatureError(
            f"this model's turn format ({chat_format.name}) has no tool-call tokens; tools are not supported",
            param="tools")
    names = [name for name, _, _ in declared]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise InvalidRequestError(f"two tools are named {duplicates[0]!r}", param="tools")
    for index, (name, _, parameters) in enumerate(declared):
        try:
            check_shape(parameters or EMPTY_PARAMETERS)  # before the chat template walks it
        except SchemaError as error:
            raise InvalidRequestError(f"tools[{index}] ({name!r}) parameters are not a valid schema: {error}",
                                      param="tools") from None
    return tuple(ToolSpec(name, description or "", parameters or EMPTY_PARAMETERS)
                 for name, description, parameters in declared)


def thinking_switch(explicit: bool | None, chat_format: ChatFormat, *, param: str,
                    budget: int | None = None, budget_param: str = "thinking_budget") -> bool:
    """The request's choice (``None``: the model's default, on where it can think), checked against the model."""
    if explicit and not chat_format.supports_thinking:
        raise UnsupportedFeatureError(f"this model's turn format ({chat_format.name}) has no thinking mode",
                                      param=param)
    if budget is not None and not chat_format.supports_thinking:
        raise UnsupportedFeatureError("this model cannot think, so it has no thinking budget", param=budget_param)
    return chat_format.supports_thinking if explicit is None else explicit


def logprob_json(entry: TokenLogprob) -> dict[str, Any]:
    """One token's log-probability, as both OpenAI dialects spell it."""
    return {"token": entry.token, "bytes": list(entry.bytes), "logprob": entry.logprob,
            "top_logprobs": [{"token": top.token, "bytes": list(top.bytes), "logprob": top.logprob}
                             for top in entry.top]}
