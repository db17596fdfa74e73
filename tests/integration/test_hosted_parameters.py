"""The hosted API's parameters on every endpoint, and the fields real clients send, through the real server.

Chat Completions has seed, min_p, top_k, the penalties, logprobs, enable_thinking and reasoning_effort
(natively or as extensions); Responses and Messages take the same ones as extensions, with the same
ranges and error messages. ``ignore_eos`` (llama.cpp's extension) works on all three. Fields with no
local meaning are accepted; what would change the answer and cannot be honoured is a 400 naming it.
"""

from __future__ import annotations

import base64

import anthropic
import httpx
import openai
import pytest

from edge.convert.test_model import SPECIAL_TOKENS

GEMMA4 = "gemma4-tiny"
HELLO = [{"role": "user", "content": "Tell me about the sea."}]
ENDPOINTS = {
    "chat": ("/v1/chat/completions", lambda model: {"model": model, "messages": HELLO, "max_tokens": 4}),
    "responses": ("/v1/responses", lambda model: {"model": model, "input": HELLO, "max_output_tokens": 4}),
    "messages": ("/v1/messages", lambda model: {"model": model, "messages": HELLO, "max_tokens": 4}),
}
SHARED = {"seed": 7, "min_p": 0.05, "top_k": 40, "repetition_penalty": 1.1, "presence_penalty": 0.5,
          "frequency_penalty": 0.5, "logprobs": True, "top_logprobs": 2}


def error_message(response: httpx.Response) -> tuple[str, str | None]:
    body = response.json()["error"]
    return body["message"], body.get("param")


@pytest.fixture(scope="module")
def http(demo_server):
    with httpx.Client(base_url=demo_server.base_url, timeout=120) as client:
        yield client


@pytest.mark.parametrize("field, value, param", [
    ("seed", -1, "seed"), ("seed", 2**31, "seed"), ("min_p", 1.5, "min_p"), ("top_k", -1, "top_k"),
    ("repetition_penalty", 0, "repetition_penalty"), ("presence_penalty", 3, "presence_penalty"),
    ("frequency_penalty", -2.5, "frequency_penalty"), ("top_logprobs", 21, "top_logprobs"),
    ("enable_thinking", "yes", "enable_thinking"), ("reasoning_effort", "max", "reasoning_effort"),
    ("ignore_eos", "sometimes", "ignore_eos"), ("logprobs", 1, "logprobs"),
])
def test_the_same_range_and_error_on_every_endpoint(http, demo_model_id, field, value, param):
    messages = set()
    for path, body in ENDPOINTS.values():
        response = http.post(path, json={**body(demo_model_id), field: value})
        assert response.status_code == 400, (path, response.text)
        message, reported = error_message(response)
        assert reported in (param, None) and message.startswith(f"Invalid value for '{param}'"), (path, message)
        messages.add(message)
    assert len(messages) == 1, messages


def test_top_logprobs_without_logprobs_is_the_same_400_everywhere(http, demo_model_id):
    for path, body in ENDPOINTS.values():
        response = http.post(path, json={**body(demo_model_id), "top_logprobs": 3})
        assert response.status_code == 400
        assert error_message(response)[0] == "top_logprobs requires logprobs to be true"


EXTRAS = {**SHARED, "enable_thinking": False, "reasoning_effort": "low", "ignore_eos": False}


def test_every_endpoint_accepts_them_through_the_sdks_and_the_seed_repeats(openai_client, demo_server,
                                                                          demo_model_id):
    claude = anthropic.Anthropic(base_url=demo_server.base_url, api_key="x", max_retries=0, timeout=120)
    calls = {
        "chat": lambda: openai_client.chat.completions.create(
            model=demo_model_id, messages=HELLO, max_tokens=6, temperature=1.0, seed=7,
            presence_penalty=0.5, frequency_penalty=0.5, logprobs=True, top_logprobs=2, reasoning_effort="low",
            extra_body={key: EXTRAS[key] for key in ("min_p", "top_k", "repetition_penalty", "enable_thinking",
                                                     "ignore_eos")}).choices[0].message.content,
        "responses": lambda: openai_client.responses.create(
            model=demo_model_id, input=HELLO, max_output_tokens=6, temperature=1.0, top_logprobs=2,
            extra_body={key: value for key, value in EXTRAS.items() if key != "top_logprobs"}).output_text,
        "messages": lambda: claude.messages.create(
            model=demo_model_id, messages=HELLO, max_tokens=6,
            extra_body={**EXTRAS, "temperature": 1.0}).content[0].text,
    }
    for name, call in calls.items():
        first = call()
        assert first and call() == first, name


def test_responses_logprobs_extension_with_the_sdk(openai_client, demo_model_id):
    response = openai_client.responses.create(model=demo_model_id, input=HELLO, max_output_tokens=6,
                                              top_logprobs=2, extra_body={"logprobs": True, "seed": 3})
    part = response.output[0].content[0]
    assert part.logprobs and "".join(entry.token for entry in part.logprobs) == part.text
    assert all(len(entry.top_logprobs) == 2 for entry in part.logprobs)


def test_messages_logprobs_extension_with_the_sdk(demo_server, demo_model_id):
    claude = anthropic.Anthropic(base_url=demo_server.base_url, api_key="x", max_retries=0, timeout=120)
    kwargs = dict(model=demo_model_id, max_tokens=6, messages=HELLO,
                  extra_body={"logprobs": True, "top_logprobs": 3, "seed": 3, "temperature": 0})
    message = claude.messages.create(**kwargs)
    block = message.content[0]
    assert "".join(entry["token"] for entry in block.logprobs) == block.text
    assert all(len(entry["top_logprobs"]) == 3 for entry in block.logprobs)
    with claude.messages.stream(**kwargs) as stream:
        deltas = [event.delta for event in stream if event.type == "content_block_delta"]
        final = stream.get_final_message()
    assert final.content[0].text == block.text
    assert [entry for delta in deltas for entry in delta.logprobs] == block.logprobs
    plain = claude.messages.create(model=demo_model_id, max_tokens=3, messages=HELLO)
    assert "logprobs" not in plain.content[0].model_dump()


# -- ignore_eos ------------------------------------------------------------------------------------

@pytest.mark.parametrize("dialect", list(ENDPOINTS))
def test_ignore_eos_runs_to_max_tokens(http, demo_model_id, dialect):
    path, body = ENDPOINTS[dialect]
    for seed in range(3):
        request = {**body(demo_model_id), "ignore_eos": True, "seed": seed}
        request["max_tokens" if dialect != "responses" else "max_output_tokens"] = 24
        payload = http.post(path, json=request).json()
        usage = payload["usage"]
        assert usage.get("completion_tokens", usage.get("output_tokens")) == 24, payload


def test_ignore_eos_beats_an_end_token_the_model_is_pushed_to(gemma4_server):
    ends = {str(SPECIAL_TOKENS.index(token)): 100 for token in ("<turn|>", "<eos>", "<|tool_response>")}
    request = {"model": GEMMA4, "messages": HELLO, "max_tokens": 12, "logit_bias": ends, "enable_thinking": False}
    url = f"{gemma4_server.base_url}/v1/chat/completions"
    stopped = httpx.post(url, json=request, timeout=120).json()
    assert stopped["choices"][0]["finish_reason"] == "stop" and stopped["usage"]["completion_tokens"] == 1
    forced = httpx.post(url, json={**request, "ignore_eos": True}, timeout=120).json()
    assert forced["choices"][0]["finish_reason"] == "length" and forced["usage"]["completion_tokens"] == 12


@pytest.mark.parametrize("extra", [
    {"response_format": {"type": "json_object"}},
    {"tools": [{"type": "function", "function": {"name": "f"}}]},
])
def test_ignore_eos_under_a_grammar_is_400(gemma4_server, extra):
    response = httpx.post(f"{gemma4_server.base_url}/v1/chat/completions", timeout=60, json={
        "model": GEMMA4, "messages": HELLO, "max_tokens": 4, "ignore_eos": True, **extra})
    assert response.status_code == 400 and response.json()["error"]["param"] == "ignore_eos"


# -- thinking switches on Responses and Messages ------------------------------------------------------

# With a system prompt the two prompts differ in length: thinking on adds "<|think|>\n" to the system
# turn, thinking off prefills "<|channel>thought\n<channel|>" after the model's turn marker.
SYSTEM = "Answer briefly."


def test_thinking_extensions_shape_the_prompt_on_messages(gemma4_server):
    claude = anthropic.Anthropic(base_url=gemma4_server.base_url, api_key="x", max_retries=0, timeout=120)
    count = lambda **extra: claude.messages.count_tokens(model=GEMMA4, messages=HELLO, system=SYSTEM,
                                                         **extra).input_tokens
    off, on = count(), count(thinking={"type": "adaptive"})
    assert on != off
    assert count(extra_body={"enable_thinking": True}) == count(extra_body={"reasoning_effort": "high"}) == on
    assert count(thinking={"type": "adaptive"}, extra_body={"enable_thinking": False}) == off
    message = claude.messages.create(model=GEMMA4, max_tokens=30, messages=HELLO, system=SYSTEM,
                                     extra_body={"reasoning_effort": "high", "seed": 1})
    assert message.usage.input_tokens + message.usage.cache_read_input_tokens == on


def test_reasoning_effort_extension_on_responses(gemma4_client):
    def input_tokens(**extra):
        return gemma4_client.responses.create(model=GEMMA4, input=HELLO, instructions=SYSTEM, max_output_tokens=2,
                                              **extra).usage.input_tokens

    off = input_tokens(extra_body={"reasoning_effort": "none", "seed": 1})
    on = input_tokens(reasoning={"effort": "low"}, extra_body={"reasoning_effort": "high", "seed": 1})
    assert on != off
    assert on == input_tokens(reasoning={"effort": "high"}) == input_tokens(extra_body={"enable_thinking": True})
    assert off == input_tokens(reasoning={"effort": "high"}, extra_body={"enable_thinking": False})


# -- fields real clients send ----------------------------------------------------------------------

def test_chat_fields_with_no_local_meaning(openai_client, demo_model_id):
    kwargs = dict(model=demo_model_id, messages=HELLO, max_tokens=4, seed=1, prompt_cache_key="user-1",
                  prompt_cache_retention="24h", safety_identifier="hash-1", verbosity="low", modalities=["text"],
                  prediction={"type": "content", "content": "The sea"}, store=False, metadata={"k": "v"},
                  user="u", service_tier="auto")
    reply = openai_client.chat.completions.create(**kwargs)
    assert reply.choices[0].message.content is not None
    chunks = list(openai_client.chat.completions.create(
        **kwargs, stream=True, stream_options={"include_usage": True, "include_obfuscation": False}))
    assert chunks[-1].usage.completion_tokens == reply.usage.completion_tokens


def test_responses_fields_with_no_local_meaning(openai_client, demo_model_id):
    everything = ["file_search_call.results", "web_search_call.results", "web_search_call.action.sources",
                  "message.input_image.image_url", "computer_call_output.output.image_url",
                  "code_interpreter_call.outputs", "reasoning.encrypted_content"]
    kwargs = dict(model=demo_model_id, input=HELLO, max_output_tokens=4, include=everything, truncation="auto",
                  text={"verbosity": "low"}, prompt_cache_key="user-1", prompt_cache_retention="in_memory",
                  safety_identifier="hash-1", store=False, background=False, service_tier="auto",
                  reasoning={"summary": "auto"}, extra_body={"seed": 1})
    response = openai_client.responses.create(**kwargs)
    assert response.status in ("completed", "incomplete") and response.truncation == "auto"
    assert response.text.verbosity == "low"
    events = list(openai_client.responses.create(**kwargs, stream=True,
                                                 stream_options={"include_obfuscation": False}))
    assert events[-1].response.output_text == response.output_text


def test_truncation_auto_does_not_hide_a_conversation_that_does_not_fit(http, demo_model_id):
    response = http.post("/v1/responses", json={"model": demo_model_id, "truncation": "auto",
                                                "input": "sea " * 9000, "max_output_tokens": 4})
    assert response.status_code == 400 and response.json()["error"]["code"] == "context_length_exceeded"


def test_messages_fields_with_no_local_meaning(demo_server, demo_model_id):
    claude = anthropic.Anthropic(base_url=demo_server.base_url, api_key="x", max_retries=0, timeout=120)
    message = claude.messages.create(model=demo_model_id, max_tokens=4, messages=HELLO, metadata={"user_id": "u"},
                                     service_tier="auto", cache_control={"type": "ephemeral"})
    assert message.content and message.usage.output_tokens <= 4


def test_messages_text_documents_with_the_sdk(demo_server, demo_model_id):
    claude = anthropic.Anthropic(base_url=demo_server.base_url, api_key="x", max_retries=0, timeout=120)
    question = {"type": "text", "text": "What does the document say?"}
    document = {"type": "document", "title": "Forecast", "context": "Issued this morning.",
                "source": {"type": "text", "media_type": "text/plain", "data": "Rain, then sun."}}
    encoded = {"type": "document", "source": {"type": "base64", "media_type": "text/plain",
                                              "data": base64.b64encode(b"Rain, then sun.").decode()}}
    plain = claude.messages.count_tokens(model=demo_model_id, messages=[{"role": "user", "content": [question]}])
    with_doc = claude.messages.count_tokens(model=demo_model_id,
                                            messages=[{"role": "user", "content": [document, question]}])
    assert with_doc.input_tokens > plain.input_tokens
    message = claude.messages.create(model=demo_model_id, max_tokens=4,
                                     messages=[{"role": "user", "content": [encoded, question]}])
    assert message.stop_reason in ("end_turn", "max_tokens")
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude.messages.create(model=demo_model_id, max_tokens=4, messages=[{"role": "user", "content": [
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}},
            question]}])
    assert caught.value.body["error"]["message"].startswith("messages[0].content[0].source: a PDF")


@pytest.mark.parametrize("dialect, extra, param", [
    ("chat", {"audio": {"voice": "alloy", "format": "wav"}, "modalities": ["text", "audio"]}, "audio"),
    ("chat", {"modalities": ["text", "audio"]}, "modalities"),
    ("responses", {"background": True}, "background"),
    ("responses", {"conversation": "conv_1"}, "conversation"),
    ("responses", {"prompt": {"id": "pmpt_1"}}, "prompt"),
])
def test_what_cannot_be_honoured_is_400_naming_it(http, demo_model_id, dialect, extra, param):
    path, body = ENDPOINTS[dialect]
    response = http.post(path, json={**body(demo_model_id), **extra})
    assert response.status_code == 400, response.text
    assert error_message(response)[1] == param


def test_max_tool_calls_zero_means_no_call(gemma4_client):
    tools = [{"type": "function", "name": "get_time", "parameters": {"type": "object", "properties": {}}}]
    for seed in range(4):
        response = gemma4_client.responses.create(model=GEMMA4, input=HELLO, tools=tools, max_tool_calls=0,
                                                  max_output_tokens=20, extra_body={"seed": seed,
                                                                                    "enable_thinking": False})
        assert response.max_tool_calls == 0
        assert not [item for item in response.output if item.type == "function_call"]
    with pytest.raises(openai.BadRequestError) as caught:
        gemma4_client.responses.create(model=GEMMA4, input=HELLO, tools=tools, max_tool_calls=0,
                                       tool_choice="required")
    assert caught.value.body["param"] == "max_tool_calls"
