"""The conversation in the shape Gemma 4's chat templates read: Google's own, and the project's that matches it.

Google's template (the one every published Gemma 4 GGUF carries) has two ways to receive tool results.
Its forward scan of ``role: tool`` messages treats any sequence — a dict too — as a list of content parts,
so a JSON result fails to render (``'str object' has no attribute 'get'``), and a text result always
becomes ``{value:"..."}``. Its ``tool_responses`` list on the assistant message that made the calls
renders a mapping as Gemma's native ``response:NAME{key:value}``. So each model turn is handed over as:

- one assistant message per batch of calls, carrying those calls, their results as ``tool_responses`` (a
  JSON result parsed, anything else as text) and no content, which keeps the model turn open;
- the ``role: tool`` messages after it as they are (text content), for templates that only forward-scan
  (Google's skips them when ``tool_responses`` is there);
- then one closing assistant message with the turn's text. Google's template writes an assistant
  message's content after its calls and results and ends the turn there, so text that came with calls can
  only go at the end of the turn without cutting the turn short. The closing message is left out when
  the conversation ends with results and no text: the model then continues its own turn after the last
  result, as it does natively.

Every call must have its result right after the turn step that made it, and every result must answer a
call of that step, as the hosted APIs require; anything else is a 400 rather than a prompt the template
would silently drop a result from.
"""

from __future__ import annotations

import itertools
import json
from typing import Any, Sequence

from edge.core.request import ImagePart, Message, ToolCall, ToolSpec
from edge.errors import InvalidRequestError
from edge.formats.template import Hider, visible_text

# JSON-schema type names: a declaration's ``type`` stays visible (templates upper-case it) only if it is one
_SCHEMA_TYPES = {"string", "number", "integer", "boolean", "array", "object", "null"}
# keys Google's template skips when it meets them as property names (it shares one list for property names
# and schema keywords); a property so named is hidden, which makes it render like any other property
_RESERVED_PROPERTY_NAMES = {"description", "type", "properties", "required", "nullable"}
# references inlined into one declaration at most (shared definitions would otherwise multiply)
_MAX_INLINED_REFS = 64


def template_messages(messages: Sequence[Message], hider: Hider) -> list[dict[str, Any]]:
    """Messages -> the ``messages`` variable: system and user turns as they are, model turns regrouped."""
    rendered: list[dict[str, Any]] = []
    index = 0
    while index < len(messages):
        message = messages[index]
        if message.role == "tool":
            raise _orphan_result(message)
        if message.role != "assistant":
            rendered.append(_plain_message(message, hider))
            index += 1
            continue
        end = _turn_end(messages, index)
        rendered.extend(_model_turn(messages[index:end], hider, ends_conversation=end == len(messages)))
        index = end
    return rendered


def _turn_end(messages: Sequence[Message], start: int) -> int:
    """A model turn runs from an assistant message to the next user or system message."""
    end = start
    while end < len(messages) and messages[end].role in ("assistant", "tool"):
        end += 1
    return end


def _plain_message(message: Message, hider: Hider) -> dict[str, Any]:
    """A system turn's content is one string (Google's template trims it as a string); a user turn's a
    part list, where text parts side by side become one, a blank line between them: the template trims
    each part and writes them back to back, which would run separate texts (a document and a question)
    into one another."""
    if message.role == "system":
        text = message.text.strip()
        return {"role": "system", "content": hider.hide(text)}
    content: list[dict[str, Any]] = []
    for image, parts in itertools.groupby(message.parts, key=lambda part: isinstance(part, ImagePart)):
        if image:
            content.extend({"type": "image"} for _ in parts)
        else:
            text = "\n\n".join(filter(None, (part.text.strip() for part in parts)))
            content.append({"type": "text", "text": hider.hide(text)})
    return {"role": message.role, "content": content}


def _model_turn(turn: Sequence[Message], hider: Hider, ends_conversation: bool) -> list[dict[str, Any]]:
    """Assistant and tool messages up to the next user or system turn: steps, then the closing text."""
    rendered: list[dict[str, Any]] = []
    texts: list[str] = []
    index = 0
    while index < len(turn):
        message = turn[index]
        index += 1
        if message.role == "tool":
            raise _orphan_result(message)
        text = visible_text(message.text)
        if text:
            texts.append(text)
        if not message.tool_calls:
            continue
        results = []
        while index < len(turn) and turn[index].role == "tool":
            results.append(turn[index])
            index += 1
        rendered.append(_step(message, results, hider))
        rendered.extend(_tool_message(result, message.tool_calls, hider) for result in results)
    if texts or not rendered or not ends_conversation:
        joined = "\n\n".join(texts)
        rendered.append({"role": "assistant", "content": hider.hide(joined) if joined else None})
    return rendered


def _step(message: Message, results: list[Message], hider: Hider) -> dict[str, Any]:
    """One batch of calls with its results: the model turn stays open after it."""
    _check_answered(message.tool_calls, results)
    step: dict[str, Any] = {
        "role": "assistant", "content": None,
        "tool_calls": [_call(call, hider) for call in message.tool_calls],
        "tool_responses": [{"name": hider.name(_result_name(result, message.tool_calls)),
                            "response": hider.hide_values(_result_value(result.text))} for result in results],
    }
    reasoning = (message.reasoning or "").strip()
    if reasoning:
        step["reasoning_content"] = hider.hide(reasoning)
    return step


def _call(call: ToolCall, hider: Hider) -> dict[str, Any]:
    return {"id": call.id, "type": "function",
            "function": {"name": hider.name(call.name), "arguments": hider.hide_values(call.arguments)}}


def _tool_message(result: Message, calls: Sequence[ToolCall], hider: Hider) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": result.tool_call_id, "name": hider.name(_result_name(result, calls)),
            "content": hider.hide(result.text)}


def _result_name(result: Message, calls: Sequence[ToolCall]) -> str:
    return result.name or next(call.name for call in calls if call.id == result.tool_call_id)


def _result_value(text: str) -> Any:
    """A JSON result as its value (an object renders as Gemma's own object); anything else as the text."""
    try:
        return json.loads(text, parse_constant=_no_constant)
    except ValueError:
        return text


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _check_answered(calls: Sequence[ToolCall], results: list[Message]) -> None:
    ids = {call.id for call in calls}
    for result in results:
        if result.tool_call_id not in ids:
            raise InvalidRequestError(
                f"the tool result for {result.tool_call_id!r} answers no call of the assistant turn right "
                "before it", param="messages")
    answered = {result.tool_call_id for result in results}
    for call in calls:
        if call.id not in answered:
            raise InvalidRequestError(
                f"the tool call {call.id!r} ({call.name}) has no result: each call's result must follow the "
                "assistant turn that made it", param="messages")


def _orphan_result(message: Message) -> InvalidRequestError:
    return InvalidRequestError(f"the tool result for {message.tool_call_id!r} does not follow an assistant turn "
                               "with tool calls", param="messages")


# -- tool declarations -----------------------------------------------------------------------------

def template_tools(tools: Sequence[ToolSpec], hider: Hider) -> list[dict[str, Any]] | None:
    return [_declaration(tool, hider) for tool in tools] or None


def _declaration(tool: ToolSpec, hider: Hider) -> dict[str, Any]:
    parameters = _Declared(tool.parameters).schema(tool.parameters, frozenset())
    parameters.setdefault("type", "object")  # without it Google's template leaves the declaration unclosed
    function = {"name": hider.name(tool.name), "description": hider.hide(tool.description),
                "parameters": _hide_schema(parameters, hider)}
    return {"type": "function", "function": function}


class _Declared:
    """The schema as a declaration shows it: ``$ref`` inlined, nullable unions as ``nullable: true``,
    objects with an explicit (maybe empty) ``properties``. Google's template knows only ``type``,
    ``nullable``, ``properties``, ``items``, ``enum`` and descriptions; this keeps a pydantic model's nested
    fields and optional values visible to the model. The grammar enforces the real schema either way.

    A reference is not inlined inside itself (a recursive model shows one level) nor past a budget of
    inlined references per declaration (shared definitions could otherwise multiply)."""

    def __init__(self, root: dict[str, Any]):
        self.root = root
        self.inlined = 0

    def schema(self, schema: Any, expanding: frozenset[str]) -> Any:
        if not isinstance(schema, dict):
            return {}
        schema, expanding = self._inline_ref(schema, expanding)
        schema = _nullable(schema)
        declared: dict[str, Any] = {}
        for key, value in schema.items():
            if key == "properties" and isinstance(value, dict):
                declared[key] = {name: self.schema(child, expanding) for name, child in value.items()}
            elif key in ("items", "additionalProperties") and isinstance(value, dict):
                declared[key] = self.schema(value, expanding)
            else:
                declared[key] = value
        if declared.get("type") == "object" and not isinstance(declared.get("properties"), dict):
            declared["properties"] = {}
        return declared

    def _inline_ref(self, schema: dict[str, Any], expanding: frozenset[str]) -> tuple[dict[str, Any], frozenset[str]]:
        reference = schema.get("$ref")
        while isinstance(reference, str) and reference not in expanding and self.inlined < _MAX_INLINED_REFS:
            target = _resolve(reference, self.root)
            if not isinstance(target, dict):
                break
            self.inlined += 1
            expanding = expanding | {reference}
            schema = {**target, **{key: value for key, value in schema.items() if key != "$ref"}}
            reference = target.get("$ref")
        return schema, expanding


def _resolve(reference: str, root: dict[str, Any]) -> Any:
    if not reference.startswith("#/"):
        return None
    node: Any = root
    for part in reference[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``type: [X, "null"]`` and ``anyOf: [X, {type: null}]`` (pydantic's Optional) -> X with ``nullable``."""
    kind = schema.get("type")
    if isinstance(kind, list) and "null" in kind and len(kind) == 2:
        other = next(item for item in kind if item != "null")
        return {**schema, "type": other, "nullable": True}
    for union in ("anyOf", "oneOf"):
        branches = schema.get(union)
        if isinstance(branches, list) and len(branches) == 2 and {"type": "null"} in branches:
            other = next(branch for branch in branches if branch != {"type": "null"})
            if isinstance(other, dict):
                rest = {key: value for key, value in schema.items() if key != union}
                return {**other, **rest, "nullable": True}
    return schema


def _hide_schema(schema: Any, hider: Hider) -> Any:
    """Descriptions, enum values and other literals are client text; structure (types, names) stays visible."""
    if not isinstance(schema, dict):
        return hider.hide_values(schema)
    hidden: dict[str, Any] = {}
    for key, value in schema.items():
        key = hider.name(str(key))
        if key == "type":
            hidden[key] = value if _is_schema_type(value) else hider.hide(value if isinstance(value, str)
                                                                           else json.dumps(value))
        elif key == "required" and isinstance(value, list):
            hidden[key] = [_property_name(str(name), hider) for name in value]
        elif key in ("properties", "$defs", "definitions") and isinstance(value, dict):
            hidden[key] = {_property_name(str(name), hider): _hide_schema(child, hider)
                           for name, child in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            hidden[key] = _hide_schema(value, hider)
        elif key in ("anyOf", "oneOf", "allOf") and isinstance(value, list):
            hidden[key] = [_hide_schema(child, hider) for child in value]
        else:
            hidden[key] = hider.hide_values(value)
    return hidden


def _is_schema_type(value: Any) -> bool:
    if isinstance(value, list):
        return all(isinstance(item, str) and item in _SCHEMA_TYPES for item in value)
    return isinstance(value, str) and value in _SCHEMA_TYPES


def _property_name(name: str, hider: Hider) -> str:
    return hider.hide(name) if name in _RESERVED_PROPERTY_NAMES else hider.name(name)
