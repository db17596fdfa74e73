"""Gemma 4 turn format: rendered by the GGUF's own chat template, or the project's when it has none.

Both go through the same sandboxed renderer (template.py) and get the conversation in the shape Google's
template reads (gemma4_prompt.py); the project's template (gemma4_template.py) renders it exactly as
Google's does and is the native renderer for GGUFs that carry no ``tokenizer.chat_template``.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from edge.errors import InvalidRequestError
from edge.formats.base import ChatFormat, OutputParser, Segment
from edge.formats.gemma4_grammar import json_output_grammar, tool_call_grammar
from edge.formats.gemma4_parser import CALL_OPEN, CHANNEL_CLOSE, CHANNEL_OPEN, MARKERS, Gemma4Parser
from edge.formats.gemma4_prompt import template_messages, template_tools
from edge.formats.gemma4_template import GEMMA4_CHAT_TEMPLATE
from edge.formats.template import Hider, compile_template, render_template
from edge.core.constraints import Constraint
from edge.schema import DEFAULT_LIMITS, Limits, SchemaError
from edge.core.request import GenerationRequest, Message, ToolSpec

# the control tokens Gemma 4's constraints and bans are written with
CONTROL_TOKENS = ("<|tool_call>", "<tool_call|>", '<|"|>', "<|channel>", "<channel|>")


class Gemma4Format(ChatFormat):
    name = "gemma4"
    supports_tools = True
    supports_thinking = True
    image_placeholder = "<|image|>"
    text_markers = MARKERS
    reasoning_close = CHANNEL_CLOSE
    # llama.cpp ends Gemma 4 generation at these; <|tool_response> is where the model waits for a result
    end_tokens = ("<turn|>", "<eos>", "<|tool_response>")

    def __init__(self, template_source: str | None = None):
        self.builtin_template = template_source is None
        self._template = compile_template(template_source or GEMMA4_CHAT_TEMPLATE)

    def render(self, messages: Sequence[Message], *, tools: Sequence[ToolSpec] = (), enable_thinking: bool = False,
               add_generation_prompt: bool = True) -> list[Segment]:
        hider = Hider()
        variables = {
            "messages": template_messages(messages, hider),
            "tools": template_tools(tools, hider),
            "add_generation_prompt": add_generation_prompt,
            "enable_thinking": enable_thinking,
            "bos_token": "<bos>",
            "eos_token": "<eos>",
        }
        return render_template(self._template, variables, hider)

    def new_parser(self, tools: Sequence[ToolSpec] = ()) -> OutputParser:
        return Gemma4Parser(tools)

    def banned_tokens(self, request: GenerationRequest) -> tuple[str, ...]:
        """Thinking off: the thought channel cannot open. tool_choice none: no call can open."""
        banned = list(super().banned_tokens(request))
        if not request.enable_thinking:
            banned.append(CHANNEL_OPEN)
        if request.tool_choice.mode == "none" or not request.tools or request.max_tool_calls == 0:
            banned.append(CALL_OPEN)
        return tuple(banned)

    def constraint(self, request: GenerationRequest, token: Callable[[str], int],
                   limits: Limits = DEFAULT_LIMITS) -> Constraint | None:
        forced = request.tools and request.tool_choice.mode in ("required", "function")
        if request.response_format.kind != "text" and forced:
            raise InvalidRequestError("a forced tool call and a JSON response_format exclude each other",
                                      param="response_format")
        if forced and request.max_tool_calls == 0:
            raise InvalidRequestError("max_tool_calls 0 allows no call, but tool_choice requires one",
                                      param="max_tool_calls")
        if request.tools and request.tool_choice.mode in ("auto", "required", "function") \
                and request.max_tool_calls != 0:
            return self._tool_constraint(request, token, limits)
        return super().constraint(request, token, limits)

    def json_grammar(self, schema: dict[str, Any], request: GenerationRequest, token: Callable[[str], int],
                     limits: Limits = DEFAULT_LIMITS) -> str:
        return json_output_grammar(schema, token, thinking=request.enable_thinking, limits=limits)

    def _tool_constraint(self, request: GenerationRequest, token: Callable[[str], int],
                         limits: Limits) -> Constraint | None:
        choice = request.tool_choice
        tools = [tool for tool in request.tools if choice.mode != "function" or tool.name == choice.name]
        try:
            gbnf = tool_call_grammar(tools, request.parallel_tool_calls, token,
                                     thinking=request.enable_thinking and choice.mode != "auto",
                                     max_calls=request.max_tool_calls, limits=limits)
        except SchemaError as error:
            raise InvalidRequestError(f"a tool's parameters cannot be enforced: {error}", param="tools") from None
        if choice.mode == "auto":
            if request.response_format.kind != "text":
                raise InvalidRequestError("tool_choice auto with a JSON response_format is not supported; "
                                          "use tool_choice none or a text response", param="response_format")
            # free text until the model opens a call; from then on the call must be valid
            return Constraint(gbnf, trigger_tokens=(token(CALL_OPEN),))
        return Constraint(gbnf)
