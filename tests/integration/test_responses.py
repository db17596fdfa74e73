"""POST /v1/responses through the real server, driven by the official openai SDK.

The demo model covers plain text, streaming, limits, structured output and stored conversations; the
tiny random Gemma 4 covers images, tool loops and reasoning (random weights: structure only).
"""

from __future__ import annotations

import base64
import io
import json

import httpx
import jsonschema
import openai
import pydantic
import pytest
from PIL import Image

GEMMA4 = "gemma4-tiny"
NO_THINKING = {"enable_thinking": False}
WEATHER = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12},
                                            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
           "required": ["city", "unit"]}
TOOLS = [{"type": "function", "name": "get_weather", "description": "Weather for a city.", "parameters": WEATHER}]


class Person(pydantic.BaseModel):
    name: str = pydantic.Field(max_length=8)
    colour: str = pydantic.Field(pattern="^(red|green)$")


def png_data_url(size=(64, 48), colour=(200, 30, 30)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def streamed(client, **kwargs):
    """Every event of one streamed response, and the final response the stream carried."""
    with client.responses.stream(**kwargs) as stream:
        events = list(stream)
    assert [event.sequence_number for event in events] == list(range(len(events)))
    assert events[0].type == "response.created" and events[1].type == "response.in_progress"
    assert events[-1].type in ("response.completed", "response.incomplete")
    assert len({event.response.id for event in events if hasattr(event, "response")}) == 1
    return events, events[-1].response


def joined(events, kind):
    return "".join(event.delta for event in events if event.type == kind)


def assert_items_match_events(events, final):
    """Each item the final response holds was announced, streamed and finished with the same content."""
    done = {event.output_index: event.item for event in events if event.type == "response.output_item.done"}
    added = {event.output_index: event.item for event in events if event.type == "response.output_item.added"}
    assert sorted(done) == sorted(added) == list(range(len(final.output)))
    for index, item in enumerate(final.output):
        assert done[index].id == added[index].id == item.id and done[index].type == item.type
        own = [event for event in events if getattr(event, "output_index", None) == index]
        if item.type == "message":
            assert item.content[0].text == joined(own, "response.output_text.delta")
        elif item.type == "reasoning":
            assert item.content[0].text == joined(own, "response.reasoning_text.delta")
        elif item.type == "function_call":
            [done] = [event for event in own if event.type == "response.function_call_arguments.done"]
            assert done.arguments == item.arguments


@pytest.fixture(scope="module")
def http(demo_server):
    with httpx.Client(base_url=demo_server.base_url, timeout=60) as client:
        yield client


# -- demo model ------------------------------------------------------------------------------------

def test_plain_response(openai_client, demo_model_id):
    response = openai_client.responses.create(model=demo_model_id, input="Say hello.", max_output_tokens=10,
                                              instructions="Be brief.", extra_body={"seed": 3})
    assert response.id.startswith("resp_") and response.object == "response" and response.model == demo_model_id
    assert response.status in ("completed", "incomplete")
    [message] = response.output
    assert message.type == "message" and message.role == "assistant" and message.content[0].type == "output_text"
    assert response.output_text == message.content[0].text
    usage = response.usage
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens and usage.output_tokens <= 10
    assert usage.output_tokens_details.reasoning_tokens == 0
    assert response.instructions == "Be brief." and response.max_output_tokens == 10


def test_max_output_tokens_makes_the_response_incomplete(openai_client, demo_model_id):
    response = openai_client.responses.create(model=demo_model_id, input="Write a long story about the sea.",
                                              max_output_tokens=3, temperature=0)
    assert response.usage.output_tokens == 3
    assert response.status == "incomplete" and response.incomplete_details.reason == "max_output_tokens"
    assert response.output[0].status == "incomplete"


def test_stream_matches_the_non_streamed_response(openai_client, demo_model_id):
    kwargs = dict(model=demo_model_id, input=[{"role": "user", "content": [{"type": "input_text", "text": "Hi!"}]}],
                  max_output_tokens=12, temperature=1.0, extra_body={"seed": 7})
    reference = openai_client.responses.create(**kwargs)
    events, final = streamed(openai_client, **kwargs)
    assert joined(events, "response.output_text.delta") == reference.output_text == final.output_text
    assert final.usage.output_tokens == reference.usage.output_tokens
    assert final.status == reference.status
    assert_items_match_events(events, final)
    kinds = [event.type for event in events]
    for kind in ("response.output_item.added", "response.content_part.added", "response.output_text.done",
                 "response.content_part.done", "response.output_item.done"):
        assert kinds.count(kind) == 1, kinds


def test_stream_get_final_response_parses_structured_output(openai_client, demo_model_id):
    with openai_client.responses.stream(model=demo_model_id, input="Describe a person.", text_format=Person,
                                        max_output_tokens=80, extra_body={"seed": 2}) as stream:
        text = "".join(event.delta for event in stream if event.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert final.output_text == text
    assert isinstance(final.output_parsed, Person)


def test_output_text_logprobs(openai_client, demo_model_id):
    response = openai_client.responses.create(model=demo_model_id, input="Hi", max_output_tokens=4, temperature=0,
                                              include=["message.output_text.logprobs"], top_logprobs=2)
    part = response.output[0].content[0]
    assert 1 <= len(part.logprobs) <= 4
    assert all(len(entry.top_logprobs) == 2 and entry.logprob <= 0 for entry in part.logprobs)


def test_structured_output_with_parse(openai_client, demo_model_id):
    response = openai_client.responses.parse(model=demo_model_id, input="Describe a person.", text_format=Person,
                                             max_output_tokens=80, extra_body={"seed": 1})
    assert response.status == "completed"
    assert isinstance(response.output_parsed, Person) and response.output_parsed.colour in ("red", "green")
    assert response.text.format.type == "json_schema"


def test_previous_response_id_continues_the_conversation(openai_client, demo_model_id):
    first = openai_client.responses.create(model=demo_model_id, input="My name is Ada.", max_output_tokens=5)
    second = openai_client.responses.create(model=demo_model_id, input="What is my name?", max_output_tokens=5,
                                            previous_response_id=first.id)
    alone = openai_client.responses.create(model=demo_model_id, input="What is my name?", max_output_tokens=5)
    assert second.previous_response_id == first.id
    assert second.usage.input_tokens >= alone.usage.input_tokens + first.usage.input_tokens
    third = openai_client.responses.create(model=demo_model_id, input="Again?", max_output_tokens=3,
                                           previous_response_id=second.id)
    assert third.usage.input_tokens > second.usage.input_tokens + second.usage.output_tokens
    assert openai_client.responses.retrieve(second.id).output_text == second.output_text


def test_store_false_is_not_kept(openai_client, demo_model_id):
    response = openai_client.responses.create(model=demo_model_id, input="Hi", max_output_tokens=2, store=False)
    assert response.store is False
    with pytest.raises(openai.NotFoundError):
        openai_client.responses.create(model=demo_model_id, input="Hi", max_output_tokens=2,
                                       previous_response_id=response.id)


def test_unknown_previous_response_is_404_in_openai_shape(http, demo_model_id):
    response = http.post("/v1/responses", json={"model": demo_model_id, "input": "x",
                                                "previous_response_id": "resp_unknown"})
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["param"] == "previous_response_id" and error["code"] == "previous_response_not_found"
    assert set(error) == {"message", "type", "param", "code"}


BAD_BODIES = [
    ({"temperature": 3}, "temperature"),
    ({"max_output_tokens": 0}, "max_output_tokens"),
    ({"max_output_tokens": 100000}, "max_output_tokens"),
    ({"input": 5}, "input"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": png_data_url()}]}]},
     "input[0].content[0]"),
    ({"input": [{"type": "function_call_output", "call_id": "call_x", "output": "1"}]}, "input[0]"),
    ({"tools": TOOLS}, "tools"),
    ({"reasoning": {"effort": "high"}}, "reasoning.effort"),
    ({"reasoning": {"effort": "extreme"}}, "reasoning.effort"),
    ({"text": {"format": {"type": "json_schema", "name": "x"}}}, "text.format.schema"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"frobnicate": True}, "frobnicate"),
]


@pytest.mark.parametrize("changes, param", BAD_BODIES)
def test_bad_input_is_400_in_openai_shape(http, demo_model_id, changes, param):
    response = http.post("/v1/responses", json={"model": demo_model_id, "input": "hi", **changes})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["param"] == param, error
    assert error["type"] == "invalid_request_error"


def test_missing_input_and_unknown_model(http, demo_model_id):
    assert http.post("/v1/responses", json={"model": demo_model_id}).json()["error"]["param"] == "input"
    response = http.post("/v1/responses", json={"model": "gpt-9", "input": "x"})
    assert response.status_code == 404 and response.json()["error"]["code"] == "model_not_found"


# -- tiny Gemma 4 ----------------------------------------------------------------------------------

def test_image_input(gemma4_client):
    def ask(content):
        return gemma4_client.responses.create(model=GEMMA4, input=[{"role": "user", "content": content}],
                                              max_output_tokens=4, extra_body=NO_THINKING)

    text = {"type": "input_text", "text": "What is in the picture?"}
    with_image = ask([text, {"type": "input_image", "image_url": png_data_url(), "detail": "low"}])
    without = ask([text])
    assert with_image.usage.input_tokens >= without.usage.input_tokens + 50  # ~64 soft tokens at detail low


def test_tool_loop_with_function_call_output(gemma4_client):
    ask = [{"role": "user", "content": "What's the weather in Paris?"}]
    first = gemma4_client.responses.create(model=GEMMA4, input=ask, tools=TOOLS, tool_choice="required",
                                           max_output_tokens=200, extra_body={**NO_THINKING, "seed": 4})
    calls = [item for item in first.output if item.type == "function_call"]
    assert first.status == "completed" and calls
    for call in calls:
        assert call.name == "get_weather" and call.id.startswith("fc_") and call.call_id
        jsonschema.validate(json.loads(call.arguments), WEATHER)
    results = [{"type": "function_call_output", "call_id": call.call_id, "output": '{"temp": 21}'} for call in calls]
    second = gemma4_client.responses.create(model=GEMMA4, input=ask + first.output + results, tools=TOOLS,
                                            tool_choice="none", max_output_tokens=5, extra_body=NO_THINKING)
    assert second.usage.input_tokens > first.usage.input_tokens + len(calls)
    assert not [item for item in second.output if item.type == "function_call"]
    chained = gemma4_client.responses.create(model=GEMMA4, input=results, previous_response_id=first.id,
                                             tools=TOOLS, tool_choice="none", max_output_tokens=5,
                                             extra_body=NO_THINKING)
    assert chained.usage.input_tokens == second.usage.input_tokens


def test_streamed_function_call(gemma4_client):
    events, final = streamed(gemma4_client, model=GEMMA4, input="Weather in Oslo?", tools=TOOLS,
                             tool_choice={"type": "function", "name": "get_weather"}, parallel_tool_calls=False,
                             max_output_tokens=200, extra_body={**NO_THINKING, "seed": 2})
    assert final.status == "completed"
    [call] = [item for item in final.output if item.type == "function_call"]
    assert joined(events, "response.function_call_arguments.delta") == call.arguments
    jsonschema.validate(json.loads(call.arguments), WEATHER)
    assert_items_match_events(events, final)


def test_reasoning_effort(gemma4_client):
    off = gemma4_client.responses.create(model=GEMMA4, input="Think.", max_output_tokens=20,
                                         reasoning={"effort": "low"})
    assert not [item for item in off.output if item.type == "reasoning"]
    assert off.usage.output_tokens_details.reasoning_tokens == 0
    events, final = streamed(gemma4_client, model=GEMMA4, input="Think.", max_output_tokens=30,
                             reasoning={"effort": "high"}, extra_body={"thinking_budget": 6, "seed": 1})
    assert_items_match_events(events, final)
    assert final.reasoning.effort == "high"
    reasoning = [item for item in final.output if item.type == "reasoning"]
    assert bool(reasoning) == (final.usage.output_tokens_details.reasoning_tokens > 0)


def test_json_schema_on_gemma4(gemma4_client):
    response = gemma4_client.responses.parse(model=GEMMA4, input="A person.", text_format=Person,
                                             max_output_tokens=200, extra_body={**NO_THINKING, "seed": 5})
    assert isinstance(response.output_parsed, Person)
