"""POST /v1/messages and /v1/messages/count_tokens through the real server, driven by the anthropic SDK.

The demo model covers text, streaming, stop sequences, structured output and errors; the tiny random
Gemma 4 covers thinking, tool use and images (random weights: structure only).
"""

from __future__ import annotations

import base64
import io
import json

import anthropic
import httpx
import jsonschema
import pytest
from PIL import Image

from tests.conftest import start_server, stop_server

GEMMA4 = "gemma4-tiny"


def prompt_tokens(message) -> int:
    """The whole prompt: Anthropic's input_tokens leaves out what was read from the cache."""
    return message.usage.input_tokens + (message.usage.cache_read_input_tokens or 0)

HELLO = [{"role": "user", "content": "Write a short story about a lighthouse keeper."}]
GREEDY = {"temperature": 0, "top_k": 1}  # this anthropic SDK has no sampling keywords; the API has them
WEATHER = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12},
                                            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
           "required": ["city", "unit"]}
TOOLS = [{"name": "get_weather", "description": "Weather for a city.", "input_schema": WEATHER}]
PERSON = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 8},
                                           "colour": {"type": "string", "enum": ["red", "green"]}},
          "required": ["name", "colour"], "additionalProperties": False}


def client_for(server, api_key="not-needed"):
    return anthropic.Anthropic(base_url=server.base_url, api_key=api_key, max_retries=0, timeout=120)


@pytest.fixture
def demo(demo_server):
    return client_for(demo_server)


@pytest.fixture
def gemma4(gemma4_server):
    return client_for(gemma4_server)


@pytest.fixture(scope="module")
def http(demo_server):
    with httpx.Client(base_url=demo_server.base_url, timeout=60) as client:
        yield client


def png_base64(size=(64, 48)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, (30, 120, 200)).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def streamed(client, **kwargs):
    """The raw events of one streamed message and the SDK's accumulated final message."""
    with client.messages.stream(**kwargs) as stream:
        events = list(stream)
        final = stream.get_final_message()
    raw = [event for event in events if event.type in
           ("message_start", "content_block_start", "content_block_delta", "content_block_stop", "message_delta",
            "message_stop")]
    assert raw[0].type == "message_start" and raw[-1].type == "message_stop" and raw[-2].type == "message_delta"
    assert_blocks_match_events(raw, final)
    return raw, final


def assert_blocks_match_events(events, final):
    starts = [event for event in events if event.type == "content_block_start"]
    stops = [event for event in events if event.type == "content_block_stop"]
    assert [event.index for event in starts] == [event.index for event in stops] == list(range(len(final.content)))
    for index, block in enumerate(final.content):
        deltas = [event.delta for event in events if event.type == "content_block_delta" and event.index == index]
        if block.type == "text":
            assert block.text == "".join(delta.text for delta in deltas)
        elif block.type == "thinking":
            assert block.thinking == "".join(delta.thinking for delta in deltas)
        elif block.type == "tool_use":
            assert block.input == json.loads("".join(delta.partial_json for delta in deltas))


# -- demo model ------------------------------------------------------------------------------------

def test_plain_message(demo, demo_model_id):
    message = demo.messages.create(model=demo_model_id, max_tokens=10, messages=HELLO, system="Be brief.")
    assert message.id.startswith("msg_") and message.type == "message" and message.role == "assistant"
    assert message.model == demo_model_id
    assert [block.type for block in message.content] == ["text"]
    assert message.stop_reason in ("end_turn", "max_tokens") and message.stop_sequence is None
    assert 0 < message.usage.output_tokens <= 10 and message.usage.input_tokens > 0


def test_stream_matches_the_non_streamed_message(demo, demo_model_id):
    kwargs = dict(model=demo_model_id, max_tokens=12, messages=HELLO, extra_body=GREEDY,
                  system=[{"type": "text", "text": "You tell stories."}])
    reference = demo.messages.create(**kwargs)
    events, final = streamed(demo, **kwargs)
    assert final.content[0].text == reference.content[0].text
    assert final.stop_reason == reference.stop_reason and final.usage.output_tokens == reference.usage.output_tokens
    # message_start knows only the whole prompt; the end splits it into uncached and cache-read tokens
    assert events[0].message.usage.input_tokens == prompt_tokens(reference) == prompt_tokens(final)


def test_stop_sequences(demo, demo_model_id):
    reference = demo.messages.create(model=demo_model_id, max_tokens=20, messages=HELLO, extra_body=GREEDY)
    text = reference.content[0].text
    cut = next(i for i in range(1, len(text)) if text[i].strip() and text[i] not in text[:i])
    kwargs = dict(model=demo_model_id, max_tokens=20, messages=HELLO, extra_body=GREEDY,
                  stop_sequences=[text[cut], "@@"])
    message = demo.messages.create(**kwargs)
    assert message.stop_reason == "stop_sequence" and message.stop_sequence == text[cut]
    assert message.content[0].text == text[:cut]
    _, final = streamed(demo, **kwargs)
    assert final.stop_reason == "stop_sequence" and final.stop_sequence == text[cut]
    assert final.content[0].text == text[:cut]


def test_max_tokens_stop_reason(demo, demo_model_id):
    message = demo.messages.create(model=demo_model_id, max_tokens=2, messages=HELLO, extra_body=GREEDY)
    assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 2


def test_structured_output(demo, demo_model_id):
    message = demo.messages.create(model=demo_model_id, max_tokens=80,
                                   messages=[{"role": "user", "content": "A person"}],
                                   output_config={"format": {"type": "json_schema", "schema": PERSON}})
    assert message.stop_reason == "end_turn"
    jsonschema.validate(json.loads(message.content[0].text), PERSON)


def test_count_tokens_matches_usage(demo, demo_model_id):
    kwargs = dict(model=demo_model_id, messages=HELLO, system="Be brief.")
    counted = demo.messages.count_tokens(**kwargs)
    message = demo.messages.create(max_tokens=1, **kwargs)
    assert counted.input_tokens == prompt_tokens(message)


BAD_BODIES = [
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": 5000}, "max_tokens"),
    ({"max_tokens": None}, "max_tokens"),
    ({"temperature": 1.5}, "temperature"),
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "system", "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": [{"type": "video"}]}]}, "messages[0].content[0]"),
    ({"stop_sequences": [""]}, "stop_sequences"),
    ({"thinking": {"type": "enabled", "budget_tokens": 8}, "max_tokens": 50}, "thinking"),
    ({"thinking": {"type": "enabled", "budget_tokens": 8}}, "thinking.budget_tokens"),
    ({"tools": TOOLS}, "tools"),
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": {
        "type": "base64", "media_type": "image/png", "data": png_base64()}}]}]}, "messages[0].content[0]"),
    ({"tool_choice": {"type": "any"}}, "tool_choice"),
    ({"frobnicate": 1}, "frobnicate"),
]


@pytest.mark.parametrize("changes, param", BAD_BODIES)
def test_bad_input_is_400_in_anthropic_shape(http, demo_model_id, changes, param):
    body = {"model": demo_model_id, "max_tokens": 5, "messages": HELLO, **changes}
    response = http.post("/v1/messages", json={key: value for key, value in body.items() if value is not None},
                         headers={"anthropic-version": "2023-06-01"})
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["type"] == "error" and set(body["error"]) == {"type", "message"}
    assert body["error"]["type"] == "invalid_request_error" and param in body["error"]["message"]


def test_sdk_raises_typed_errors(demo, demo_model_id):
    with pytest.raises(anthropic.BadRequestError) as bad:
        demo.messages.create(model=demo_model_id, max_tokens=0, messages=HELLO)
    assert bad.value.body["error"]["type"] == "invalid_request_error"
    with pytest.raises(anthropic.NotFoundError) as missing:
        demo.messages.create(model="claude-none", max_tokens=5, messages=HELLO)
    assert missing.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.BadRequestError):
        demo.messages.count_tokens(model=demo_model_id, messages=[])


def test_malformed_json_and_unknown_route_use_anthropic_shape(http):
    response = http.post("/v1/messages", content=b"{nope", headers={"content-type": "application/json"})
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"
    response = http.post("/v1/messages/nothing", json={})
    assert response.status_code == 404 and response.json()["error"]["type"] == "not_found_error"


def test_api_key_via_x_api_key(tmp_path, demo_model_path):
    server = start_server([], tmp_path / "server.log", env={"EDGE_API_KEY": "sekret"})
    try:
        model = httpx.get(f"{server.base_url}/v1/models", headers={"x-api-key": "sekret"}).json()["data"][0]["id"]
        message = client_for(server, "sekret").messages.create(model=model, max_tokens=1, messages=HELLO)
        assert message.usage.output_tokens == 1
        with pytest.raises(anthropic.AuthenticationError) as denied:
            client_for(server, "wrong").messages.create(model=model, max_tokens=1, messages=HELLO)
        assert denied.value.body["error"]["type"] == "authentication_error"
        response = httpx.post(f"{server.base_url}/v1/responses", json={"model": model, "input": "x"})
        assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
    finally:
        stop_server(server)


# -- tiny Gemma 4 ----------------------------------------------------------------------------------

def test_thinking(gemma4):
    thinking = {"type": "enabled", "budget_tokens": 6}
    events, final = streamed(gemma4, model=GEMMA4, max_tokens=30, messages=HELLO, thinking=thinking)
    kinds = [block.type for block in final.content]
    assert set(kinds) <= {"thinking", "text"} and kinds == sorted(kinds, key=lambda kind: kind != "thinking")
    message = gemma4.messages.create(model=GEMMA4, max_tokens=30, messages=HELLO, thinking=thinking)
    assert all(block.type in ("thinking", "text") for block in message.content)
    off = gemma4.messages.create(model=GEMMA4, max_tokens=20, messages=HELLO, thinking={"type": "disabled"})
    assert all(block.type == "text" for block in off.content)


def test_tool_use_loop(gemma4):
    ask = [{"role": "user", "content": "What's the weather in Paris?"}]
    first = gemma4.messages.create(model=GEMMA4, max_tokens=200, messages=ask, tools=TOOLS,
                                   tool_choice={"type": "any"})
    assert first.stop_reason == "tool_use"
    uses = [block for block in first.content if block.type == "tool_use"]
    assert uses and all(use.id.startswith("toolu_") and use.name == "get_weather" for use in uses)
    for use in uses:
        jsonschema.validate(use.input, WEATHER)
    history = ask + [{"role": "assistant", "content": first.content},
                     {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "21 C"}
                                                  for use in uses] + [{"type": "text", "text": "Thanks"}]}]
    second = gemma4.messages.create(model=GEMMA4, max_tokens=5, messages=history, tools=TOOLS,
                                    tool_choice={"type": "none"})
    assert second.stop_reason in ("end_turn", "max_tokens")
    assert all(block.type == "text" for block in second.content)
    assert prompt_tokens(second) > prompt_tokens(first)
    assert gemma4.messages.count_tokens(model=GEMMA4, messages=history, tools=TOOLS,
                                        tool_choice={"type": "none"}).input_tokens == prompt_tokens(second)


def test_streamed_named_tool_use(gemma4):
    _, final = streamed(gemma4, model=GEMMA4, max_tokens=200, messages=HELLO, tools=TOOLS,
                        tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True})
    assert final.stop_reason == "tool_use"
    [use] = [block for block in final.content if block.type == "tool_use"]
    jsonschema.validate(use.input, WEATHER)


def test_image(gemma4, gemma4_server):
    text = {"type": "text", "text": "What is this?"}
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png_base64()}}
    with_image = gemma4.messages.create(model=GEMMA4, max_tokens=3,
                                        messages=[{"role": "user", "content": [image, text]}])
    without = gemma4.messages.create(model=GEMMA4, max_tokens=3, messages=[{"role": "user", "content": [text]}])
    assert prompt_tokens(with_image) > prompt_tokens(without) + 100
    counted = gemma4.messages.count_tokens(model=GEMMA4, messages=[{"role": "user", "content": [image, text]}])
    assert counted.input_tokens == prompt_tokens(with_image)
    remote = {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}}
    with pytest.raises(anthropic.BadRequestError) as refused:
        gemma4.messages.create(model=GEMMA4, max_tokens=3, messages=[{"role": "user", "content": [remote, text]}])
    assert "remote image URLs are disabled" in refused.value.body["error"]["message"]


def test_a_follow_up_turn_reads_its_prefix_from_the_cache(demo, demo_model_id):
    first = demo.messages.create(model=demo_model_id, max_tokens=8, messages=HELLO, system="You tell stories.")
    follow_up = HELLO + [{"role": "assistant", "content": first.content[0].text},
                         {"role": "user", "content": "And then?"}]
    second = demo.messages.create(model=demo_model_id, max_tokens=4, messages=follow_up, system="You tell stories.")
    assert second.usage.cache_read_input_tokens >= prompt_tokens(first)
    assert second.usage.cache_creation_input_tokens == 0
