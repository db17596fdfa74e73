"""Anthropic Messages -> the internal request: what a translator must not drop."""

import json

from edge.api.anthropic_messages import MessagesRequest, to_generation_request
from edge.api.context import ServingContext
from edge.api.validation import validate_body
from edge.formats.gemma4 import Gemma4Format
from edge.runtime.images import ImagePolicy

GEMMA4 = ServingContext(Gemma4Format(), n_vocab=1000, vision=False, image_policy=ImagePolicy())


def tool_result_text(is_error):
    block = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "city not found"}
    if is_error is not None:
        block["is_error"] = is_error
    body = {"model": "m", "max_tokens": 5, "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "w", "input": {}}]},
        {"role": "user", "content": [block]}]}
    request = to_generation_request(validate_body(MessagesRequest, body), GEMMA4)
    return next(m for m in request.messages if m.role == "tool").text


def test_a_failed_tool_result_reaches_the_model_marked_as_an_error():
    assert json.loads(tool_result_text(True)) == {"error": "city not found"}
    assert tool_result_text(False) == tool_result_text(None) == "city not found"
