"""GBNF for Gemma 4 output under a constraint: tool calls in Gemma's own syntax, or JSON.

Control tokens are matched as tokens (``<[ID]>``), never as spelled-out text, so a constrained call is
exactly what the chat template would have written: ``<|tool_call>call:NAME{key:value,...}<tool_call|>``
with ``<|"|>``-quoted strings and bare keys. Arguments come from the same schema lowering as JSON output
(``edge.schema``), so every keyword means the same in both. With thinking on, an optional thought
channel may come first.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from edge.core.request import ToolSpec
from edge.formats.gemma4_values import QUOTE
from edge.schema import DEFAULT_LIMITS, Limits, Rules, SchemaError, gemma_rules, json_rules, lower_schema
from edge.schema.emit import literal_text
from edge.schema.gemma_emit import unwritable
from edge.schema.lower import objects_only, restrict


class ToolSchemaError(SchemaError):
    """A tool's parameters cannot be enforced; the message names the tool."""


def tool_call_grammar(tools: Sequence[ToolSpec], parallel: bool, token: Callable[[str], int], thinking: bool,
                      max_calls: int | None = None, limits: Limits = DEFAULT_LIMITS) -> str:
    """One call, or with ``parallel`` one to ``max_calls`` (None: any number) calls in a row."""
    rules = Rules(limits)
    quote = f"<[{token(QUOTE)}]>"
    functions = [rules.add(f"fn-{tool.name}", f"{literal_text(tool.name)} {_arguments(tool, rules, quote, limits)}")
                 for tool in tools]
    call = rules.add("call", f'<[{token("<|tool_call>")}]> {literal_text("call:")} ({" | ".join(functions)}) '
                             f'<[{token("<tool_call|>")}]>')
    calls = rules.counted(call, 1, 1 if not parallel else max_calls)
    if thinking:
        thought = rules.add("thought", _thought_rule(token))
        return f"root ::= ({thought})? {calls}\n{rules.text()}"
    return f"root ::= {calls}\n{rules.text()}"


def _arguments(tool: ToolSpec, rules: Rules, quote: str, limits: Limits) -> str:
    try:
        tree = objects_only(lower_schema(tool.parameters or {"type": "object"}, limits))
        return gemma_rules(restrict(tree, unwritable, limits), rules, quote)
    except SchemaError as error:
        raise ToolSchemaError(f"tool {tool.name!r}: {error}") from None


def json_output_grammar(schema: dict[str, Any], token: Callable[[str], int], thinking: bool,
                        limits: Limits = DEFAULT_LIMITS) -> str:
    """JSON valid against ``schema``; with thinking, the thought channel may come first."""
    rules = Rules(limits)
    value = json_rules(lower_schema(schema, limits), rules)
    if not thinking:
        return f"root ::= {value}\n{rules.text()}"
    thought = rules.add("thought", _thought_rule(token))
    return f"root ::= ({thought})? {value}\n{rules.text()}"


def _thought_rule(token: Callable[[str], int]) -> str:
    close = token("<channel|>")
    return f'<[{token("<|channel>")}]> "thought\\n" (!<[{close}]>)* <[{close}]>'
