"""What comes back when a forced tool call is cut by max_tokens, and the legacy chat functions, on the real
server with the tiny Gemma 4 and the official SDKs.

A cut call is still a call in every dialect — chat ``tool_calls`` with ``finish_reason: "length"``, a
Responses ``function_call`` item with ``status: "incomplete"``, a Messages ``tool_use`` block with
``stop_reason: "max_tokens"`` — and Gemma's call syntax never reaches the text.
"""

from __future__ import annotations

import base64
import io
import json

import anthropic
import pytest
from PIL import Image

from edge.api.common import partial_json_object
from edge.formats.gemma4_parser import MARKERS

MODEL = "gemma4-tiny"
WEATHER = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12},
                                            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
           "required": ["city", "unit"]}
ASK = [{"role": "user", "content": "What's the weather in Paris?"}]
CHAT_TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}]
NO_THINKING = {"enable_thinking": False}
CUTS = (1, 3, 6, 9)  # max tokens: inside the opening, the name, the arguments


def assert_no_markers(*texts):
    for text in texts:
        assert not any(marker in (text or "") for marker in MARKERS), text


def assert_cut_arguments(arguments: str):
    """As far as they were written: a beginning of a JSON object that does not parse."""
    assert arguments == "" or arguments.startswith("{")
    with pytest.raises(ValueError):
        json.loads(arguments)
    assert set(partial_json_object(arguments)) <= set(WEATHER["properties"])
    assert_no_markers(arguments)


@pytest.fixture
def claude(gemma4_server):
    return anthropic.Anthropic(base_url=gemma4_server.base_url, api_key="x", max_retries=0, timeout=120)


@pytest.mark.parametrize("max_tokens", CUTS)
def test_chat_forced_call_cut_by_max_tokens(gemma4_client, max_tokens):
    kwargs = dict(model=MODEL, messages=ASK, tools=CHAT_TOOLS, tool_choice="required", seed=2,
                  max_tokens=max_tokens, extra_body=NO_THINKING)
    reply = gemma4_client.chat.completions.create(**kwargs)
    choice = reply.choices[0]
    assert choice.finish_reason == "length" and reply.usage.completion_tokens == max_tokens
    assert not choice.message.content
    [call] = choice.message.tool_calls
    assert call.id.startswith("call_") and call.function.name in ("get_weather", "")
    assert_cut_arguments(call.function.arguments)
    chunks = list(gemma4_client.chat.completions.create(**kwargs, stream=True))
    deltas = [delta for chunk in chunks for delta in chunk.choices[0].delta.tool_calls or []]
    assert [delta.function.arguments for delta in deltas] == [call.function.arguments]
    assert chunks[-1].choices[0].finish_reason == "length"
    assert_no_markers(*(chunk.choices[0].delta.content for chunk in chunks))


@pytest.mark.parametrize("max_tokens", CUTS)
def test_responses_forced_call_cut_by_max_output_tokens(gemma4_client, max_tokens):
    tools = [{"type": "function", "name": "get_weather", "parameters": WEATHER}]
    response = gemma4_client.responses.create(model=MODEL, input=ASK, tools=tools, tool_choice="required",
                                              max_output_tokens=max_tokens, extra_body={"seed": 2, **NO_THINKING})
    assert response.status == "incomplete" and response.incomplete_details.reason == "max_output_tokens"
    [item] = response.output
    assert item.type == "function_call" and item.status == "incomplete"
    assert_cut_arguments(item.arguments)
    assert_no_markers(response.output_text)
    follow_up = gemma4_client.responses.create(
        model=MODEL, previous_response_id=response.id, tools=tools, max_output_tokens=4,
        input=[{"type": "function_call_output", "call_id": item.call_id, "output": "cut off"}],
        extra_body=NO_THINKING)
    assert follow_up.usage.input_tokens > response.usage.input_tokens


@pytest.mark.parametrize("max_tokens", CUTS)
def test_messages_forced_call_cut_by_max_tokens(claude, max_tokens):
    tools = [{"name": "get_weather", "input_schema": WEATHER}]
    kwargs = dict(model=MODEL, max_tokens=max_tokens, messages=ASK, tools=tools, tool_choice={"type": "any"},
                  extra_body={"seed": 2})
    message = claude.messages.create(**kwargs)
    assert message.stop_reason == "max_tokens"
    [block] = message.content
    assert block.type == "tool_use" and isinstance(block.input, dict)
    assert set(block.input) <= set(WEATHER["properties"])
    with claude.messages.stream(**kwargs) as stream:
        events = list(stream)
        final = stream.get_final_message()
    partial = "".join(event.delta.partial_json for event in events
                      if event.type == "content_block_delta" and event.delta.type == "input_json_delta")
    assert_cut_arguments(partial)
    assert final.content[0].type == "tool_use" and final.content[0].input == block.input
    assert final.stop_reason == "max_tokens"


# -- legacy functions ------------------------------------------------------------------------------

FUNCTIONS = [{"name": "get_weather", "description": "Weather for a city.", "parameters": WEATHER}]


def test_legacy_functions_round_trip(gemma4_client):
    reply = gemma4_client.chat.completions.create(model=MODEL, messages=ASK, functions=FUNCTIONS,
                                                  function_call={"name": "get_weather"}, seed=4, max_tokens=300,
                                                  extra_body=NO_THINKING)
    choice = reply.choices[0]
    assert choice.finish_reason == "function_call" and choice.message.tool_calls is None
    call = choice.message.function_call
    assert call.name == "get_weather" and set(json.loads(call.arguments)) >= {"city", "unit"}
    history = ASK + [{"role": "assistant", "content": None, "function_call": call.model_dump()},
                     {"role": "function", "name": "get_weather", "content": '{"temperature": 21}'}]
    second = gemma4_client.chat.completions.create(model=MODEL, messages=history, functions=FUNCTIONS, seed=4,
                                                   max_tokens=6, extra_body=NO_THINKING)
    assert second.usage.prompt_tokens > reply.usage.prompt_tokens
    chunks = list(gemma4_client.chat.completions.create(
        model=MODEL, messages=ASK, functions=FUNCTIONS, function_call={"name": "get_weather"}, seed=4,
        max_tokens=300, stream=True, extra_body=NO_THINKING))
    streamed = [chunk.choices[0].delta.function_call for chunk in chunks if chunk.choices[0].delta.function_call]
    assert [(delta.name, delta.arguments) for delta in streamed] == [(call.name, call.arguments)]
    assert chunks[-1].choices[0].finish_reason == "function_call"


# -- images a tool returned ------------------------------------------------------------------------

def png_base64() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (96, 64), (20, 160, 90)).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_images_inside_a_tool_result_reach_the_model(claude):
    tools = [{"name": "screenshot", "input_schema": {"type": "object", "properties": {}}}]
    history = ASK + [{"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "screenshot",
                                                        "input": {}}]}]

    def result(content):
        return history + [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                                        "content": content}]}]

    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png_base64()}}
    text_only = claude.messages.count_tokens(model=MODEL, tools=tools,
                                             messages=result([{"type": "text", "text": "the screen"}]))
    with_image = claude.messages.count_tokens(model=MODEL, tools=tools,
                                              messages=result([{"type": "text", "text": "the screen"}, image]))
    assert with_image.input_tokens > text_only.input_tokens + 60  # the image's soft tokens
    message = claude.messages.create(model=MODEL, max_tokens=5, tools=tools, messages=result([image]))
    assert message.usage.input_tokens + message.usage.cache_read_input_tokens == claude.messages.count_tokens(model=MODEL, tools=tools,
                                                                      messages=result([image])).input_tokens
