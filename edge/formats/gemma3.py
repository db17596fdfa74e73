"""Gemma 2/3 turn format (``<start_of_turn>ROLE`` … ``<end_of_turn>``), used by the demo model.

Its GGUF carries no chat template, so this renderer follows Google's Gemma 3 template: a system
message is folded into the first user turn, the assistant role is ``model``, content is trimmed.
Gemma 3 has no tool-call or thinking tokens.
"""

from __future__ import annotations

from typing import Sequence

from edge.errors import InvalidRequestError
from edge.formats.base import ChatFormat, OutputParser, PlainTextParser, Segment, control, merge_adjacent_roles, text
from edge.core.request import Message, ToolSpec


class Gemma3Format(ChatFormat):
    name = "gemma3"
    text_markers = ("<start_of_turn>", "<end_of_turn>", "<bos>", "<eos>", "<pad>", "<unk>", "<mask>")
    end_tokens = ("<end_of_turn>", "<eos>")

    def render(self, messages: Sequence[Message], *, tools: Sequence[ToolSpec] = (), enable_thinking: bool = False,
               add_generation_prompt: bool = True) -> list[Segment]:
        system_text, conversation = _split_system(messages)
        segments = [control("<bos>")]
        for index, message in enumerate(merge_adjacent_roles(conversation)):
            role = "model" if message.role == "assistant" else message.role
            if role not in ("user", "model"):
                raise InvalidRequestError(
                    f"the Gemma 3 format has no '{message.role}' role", param=f"messages[{index}].role")
            segments.append(control(f"<start_of_turn>{role}\n"))
            body = message.text.strip()
            if index == 0 and system_text:
                body = f"{system_text}\n\n{body}"
            segments.append(text(body))
            segments.append(control("<end_of_turn>\n"))
        if add_generation_prompt:
            segments.append(control("<start_of_turn>model\n"))
        return segments

    def new_parser(self, tools: Sequence[ToolSpec] = ()) -> OutputParser:
        return PlainTextParser()


def _split_system(messages: Sequence[Message]) -> tuple[str, list[Message]]:
    """Leading system messages become the prefix of the first user turn, as Google's template does."""
    system_parts = []
    rest = list(messages)
    while rest and rest[0].role == "system":
        system_parts.append(rest.pop(0).text.strip())
    if any(message.role == "system" for message in rest):
        index = next(i for i, m in enumerate(messages) if m.role == "system" and i >= len(system_parts))
        raise InvalidRequestError(
            "system messages must come before the conversation for Gemma 3", param=f"messages[{index}]")
    if not rest and system_parts:
        rest = [Message(role="user")]  # a lone system prompt still reaches the model
    return "\n\n".join(part for part in system_parts if part), rest
