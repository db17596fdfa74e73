"""The tiny Gemma 4 converted with Google's own chat template, served for real and driven by the official SDKs.

Every published Gemma 4 GGUF carries Google's template; a tool round trip must work under it in all
three dialects, whatever the tool returned. The same conversations sent to the server whose GGUF carries
the project's template must count the same prompt tokens (the templates render the same prompt).
"""

from __future__ import annotations

import json

import anthropic
import httpx
import openai
import pytest

MODEL = "gemma4-google"
PROJECT_MODEL = "gemma4-tiny"
WEATHER = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12},
                                            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
           "required": ["city", "unit"]}
CHAT_TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city.",
                                                "parameters": WEATHER}}]
RESPONSES_TOOLS = [{"type": "function", "name": "get_weather", "description": "Weather for a city.",
                    "parameters": WEATHER}]
MESSAGES_TOOLS = [{"name": "get_weather", "description": "Weather for a city.", "input_schema": WEATHER}]
ASK = [{"role": "user", "content": "What's the weather in Paris?"}]
NO_THINKING = {"enable_thinking": False}
# what tools return: an object, an array, a JSON string, a number, plain text, nothing
RESULTS = ['{"temperature": 21, "sky": "clear", "wind": {"kmh": 12, "gusts": null}}', "[21, 22, 19]", '"sunny"',
           "21.5", "Sunny, 21 °C.", ""]


@pytest.fixture
def chat(gemma4_google_server):
    return openai.OpenAI(base_url=f"{gemma4_google_server.base_url}/v1", api_key="x", max_retries=0, timeout=120)


@pytest.fixture
def claude(gemma4_google_server):
    return anthropic.Anthropic(base_url=gemma4_google_server.base_url, api_key="x", max_retries=0, timeout=120)


def forced_chat_call(chat, seed=5):
    first = chat.chat.completions.create(model=MODEL, messages=ASK, tools=CHAT_TOOLS, tool_choice="required",
                                         seed=seed, max_tokens=300, extra_body=NO_THINKING)
    assert first.choices[0].finish_reason == "tool_calls"
    return first


@pytest.mark.parametrize("content", RESULTS + [[{"type": "text", "text": '{"temperature": 21}'}]])
def test_chat_tool_round_trip(chat, content):
    first = forced_chat_call(chat)
    message = first.choices[0].message
    history = ASK + [message.model_dump(exclude_none=True)] + [
        {"role": "tool", "tool_call_id": call.id, "content": content} for call in message.tool_calls]
    second = chat.chat.completions.create(model=MODEL, messages=history, tools=CHAT_TOOLS, seed=5, max_tokens=8,
                                          extra_body=NO_THINKING)
    assert second.usage.prompt_tokens > first.usage.prompt_tokens
    third = chat.chat.completions.create(
        model=MODEL, messages=history + [{"role": "assistant", "content": "It is 21 °C."},
                                         {"role": "user", "content": "Thanks. And tomorrow?"}],
        tools=CHAT_TOOLS, seed=5, max_tokens=8, extra_body=NO_THINKING)
    assert third.usage.prompt_tokens > second.usage.prompt_tokens


def test_chat_parallel_calls_and_their_results(chat):
    calls = [{"id": f"call_{city}", "type": "function",
              "function": {"name": "get_weather", "arguments": json.dumps({"city": city, "unit": "celsius"})}}
             for city in ("Paris", "Rome", "Oslo")]
    history = ASK + [{"role": "assistant", "content": None, "tool_calls": calls}] + [
        {"role": "tool", "tool_call_id": call["id"], "content": json.dumps({"t": index})}
        for index, call in reversed(list(enumerate(calls)))]
    for stream in (False, True):
        reply = chat.chat.completions.create(model=MODEL, messages=history, tools=CHAT_TOOLS, seed=1, max_tokens=8,
                                             stream=stream, extra_body=NO_THINKING)
        if stream:
            reply = [chunk for chunk in reply]
            assert reply[-1].choices[0].finish_reason in ("stop", "length", "tool_calls")
        else:
            assert reply.choices[0].finish_reason in ("stop", "length", "tool_calls")


def test_chat_result_without_its_call_is_400(chat):
    with pytest.raises(openai.BadRequestError) as caught:
        chat.chat.completions.create(model=MODEL, max_tokens=4, tools=CHAT_TOOLS, messages=ASK + [
            {"role": "tool", "tool_call_id": "call_nope", "content": "21"}])
    assert caught.value.body["param"] == "messages"


@pytest.mark.parametrize("output", RESULTS)
def test_responses_tool_round_trip(chat, output):
    first = chat.responses.create(model=MODEL, input=ASK, tools=RESPONSES_TOOLS, tool_choice="required",
                                  max_output_tokens=300, extra_body={"seed": 5, **NO_THINKING})
    calls = [item for item in first.output if item.type == "function_call"]
    assert calls and first.status == "completed"
    outputs = [{"type": "function_call_output", "call_id": call.call_id, "output": output} for call in calls]
    resent = chat.responses.create(model=MODEL, input=ASK + [item.model_dump(exclude_none=True) for item in first.output]
                                   + outputs, tools=RESPONSES_TOOLS, max_output_tokens=8,
                                   extra_body={"seed": 5, **NO_THINKING})
    continued = chat.responses.create(model=MODEL, input=outputs, previous_response_id=first.id,
                                      tools=RESPONSES_TOOLS, max_output_tokens=8, extra_body={"seed": 5, **NO_THINKING})
    assert resent.usage.input_tokens == continued.usage.input_tokens > first.usage.input_tokens


def prompt_of(usage) -> int:
    return usage.input_tokens + usage.cache_read_input_tokens


@pytest.mark.parametrize("content", RESULTS + [[{"type": "text", "text": "21"}, {"type": "text", "text": " °C"}]])
def test_messages_tool_round_trip(claude, content):
    first = claude.messages.create(model=MODEL, max_tokens=300, messages=ASK, tools=MESSAGES_TOOLS,
                                   tool_choice={"type": "any"}, extra_body={"seed": 5})
    assert first.stop_reason == "tool_use"
    uses = [block for block in first.content if block.type == "tool_use"]
    history = ASK + [{"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]},
                     {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": content}
                                                  for use in uses]}]
    second = claude.messages.create(model=MODEL, max_tokens=8, messages=history, tools=MESSAGES_TOOLS)
    # Anthropic's input_tokens leaves out what was read from the cache: the whole prompt is both
    assert prompt_of(second.usage) > prompt_of(first.usage)
    failed = history[:-1] + [{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": use.id, "content": "timeout", "is_error": True} for use in uses]
        + [{"type": "text", "text": "Try again?"}]}]
    assert claude.messages.count_tokens(model=MODEL, messages=failed, tools=MESSAGES_TOOLS).input_tokens > 0


CONVERSATIONS = {
    "chat": ("/v1/chat/completions", {"messages": ASK + [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather",
                                                              "arguments": '{"city": "Paris", "unit": "celsius"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": RESULTS[0]},
        {"role": "assistant", "content": "It is 21 °C."}, {"role": "user", "content": "Thanks!"}],
        "tools": CHAT_TOOLS, "max_tokens": 1, **NO_THINKING}),
    "responses": ("/v1/responses", {"input": ASK + [
        {"type": "function_call", "call_id": "call_1", "name": "get_weather",
         "arguments": '{"city": "Paris", "unit": "celsius"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": RESULTS[0]},
        {"role": "assistant", "content": "It is 21 °C."}, {"role": "user", "content": "Thanks!"}],
        "tools": RESPONSES_TOOLS, "max_output_tokens": 1, **NO_THINKING}),
    "messages": ("/v1/messages/count_tokens", {"messages": ASK + [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                                           "input": {"city": "Paris", "unit": "celsius"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": RESULTS[0]}]},
        {"role": "assistant", "content": "It is 21 °C."}, {"role": "user", "content": "Thanks!"}],
        "tools": MESSAGES_TOOLS}),
}


def prompt_tokens(server, model, path, body) -> int:
    response = httpx.post(f"{server.base_url}{path}", json={"model": model, **body}, timeout=60)
    assert response.status_code == 200, response.text
    payload = response.json()
    if "input_tokens" in payload:
        return payload["input_tokens"]
    usage = payload["usage"]
    return usage.get("prompt_tokens", usage.get("input_tokens"))


@pytest.mark.parametrize("dialect", list(CONVERSATIONS))
def test_both_templates_count_the_same_prompt(gemma4_google_server, gemma4_server, dialect):
    path, body = CONVERSATIONS[dialect]
    google = prompt_tokens(gemma4_google_server, MODEL, path, body)
    project = prompt_tokens(gemma4_server, PROJECT_MODEL, path, body)
    assert google == project


def test_the_three_dialects_give_the_same_prompt(gemma4_google_server):
    counts = {dialect: prompt_tokens(gemma4_google_server, MODEL, path, body)
              for dialect, (path, body) in CONVERSATIONS.items()}
    assert len(set(counts.values())) == 1, counts
