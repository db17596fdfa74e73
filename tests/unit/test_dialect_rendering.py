"""One conversation in the three wire dialects gives one prompt under Google's template (no model needed).

Chat's ``role: tool`` messages, Responses' ``function_call_output`` items and Messages' ``tool_result``
blocks all become Gemma's own ``response:NAME{...}``, whatever the tool returned; Messages' documents and
the images a tool returned, and chat's legacy ``functions``, land where they should.
"""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from edge.api import anthropic_messages, openai_chat, openai_responses
from edge.api.context import ServingContext
from edge.api.validation import validate_body
from edge.errors import InvalidRequestError, UnsupportedFeatureError
from edge.formats.gemma4 import Gemma4Format
from edge.runtime.images import ImagePolicy
from tests.unit.test_gemma4_render import FORMATS

GOOGLE = FORMATS["google"]
SERVING = ServingContext(GOOGLE, n_vocab=1000, vision=True, image_policy=ImagePolicy())
Q = '<|"|>'
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
RESULTS = ['{"temperature": 21, "sky": "clear"}', "[1, 2]", '"sunny"', "21", "Sunny and warm.", ""]


def render(request) -> str:
    return "".join(segment.text for segment in GOOGLE.render(request.messages, tools=request.tools,
                                                              enable_thinking=request.enable_thinking))


def chat(result: str, **extra):
    body = {"model": "m", "enable_thinking": False, "tools": [
        {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}],
        "messages": [{"role": "user", "content": "Weather in Paris?"},
                     {"role": "assistant", "content": None, "tool_calls": [
                         {"id": "call_1", "type": "function",
                          "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
                     {"role": "tool", "tool_call_id": "call_1", "content": result}], **extra}
    return openai_chat.to_generation_request(validate_body(openai_chat.ChatCompletionRequest, body), SERVING)


def responses(result: str):
    body = {"model": "m", "enable_thinking": False,
            "tools": [{"type": "function", "name": "get_weather", "parameters": WEATHER}],
            "input": [{"role": "user", "content": "Weather in Paris?"},
                      {"type": "function_call", "call_id": "call_1", "name": "get_weather",
                       "arguments": '{"city": "Paris"}'},
                      {"type": "function_call_output", "call_id": "call_1", "output": result}]}
    return openai_responses.to_generation_request(validate_body(openai_responses.ResponsesRequest, body), SERVING)


def messages(result, extra_blocks=(), **extra):
    body = {"model": "m", "max_tokens": 10, "tools": [{"name": "get_weather", "input_schema": WEATHER}],
            "messages": [{"role": "user", "content": "Weather in Paris?"},
                         {"role": "assistant", "content": [
                             {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}]},
                         {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1",
                                                       "content": result}, *extra_blocks]}], **extra}
    return anthropic_messages.to_generation_request(
        validate_body(anthropic_messages.MessagesRequest, body), SERVING)


@pytest.mark.parametrize("result", RESULTS)
def test_the_three_dialects_render_one_prompt(result):
    prompts = {render(chat(result)), render(responses(result)), render(messages(result))}
    assert len(prompts) == 1
    prompt = prompts.pop()
    assert f"<|tool_call>call:get_weather{{city:{Q}Paris{Q}}}<tool_call|><|tool_response>response:get_weather{{" in prompt
    assert prompt.endswith("<tool_response|>")


def test_a_json_object_result_is_gemmas_own_object_in_every_dialect():
    for request in (chat(RESULTS[0]), responses(RESULTS[0]), messages(RESULTS[0])):
        assert f"response:get_weather{{sky:{Q}clear{Q},temperature:21}}<tool_response|>" in render(request)


def test_result_content_as_parts_is_its_text():
    parts = [{"type": "text", "text": '{"temperature": '}, {"type": "text", "text": "21}"}]
    assert "response:get_weather{temperature:21}" in render(chat(parts))
    assert "response:get_weather{temperature:21}" in render(messages(parts))


def test_a_failed_tool_reaches_the_model_as_an_error():
    body = [{"type": "text", "text": "timeout"}]
    request = anthropic_messages.to_generation_request(validate_body(anthropic_messages.MessagesRequest, {
        "model": "m", "max_tokens": 5, "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": body,
                                          "is_error": True}]}]}), SERVING)
    assert f"response:f{{error:{Q}timeout{Q}}}" in render(request)


def png_base64(color=(200, 30, 30)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_images_a_tool_returned_join_the_user_turn_after_the_result():
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png_base64()}}
    request = messages([{"type": "text", "text": "a screenshot"}, image],
                       extra_blocks=[{"type": "text", "text": "What do you see?"}])
    assert [type(part).__name__ for part in request.messages[-1].parts] == ["ImagePart", "TextPart"]
    prompt = render(request)
    assert prompt.endswith(f"response:get_weather{{value:{Q}a screenshot{Q}}}<tool_response|><turn|>\n"
                           "<|turn>user\n<|image|>What do you see?<turn|>\n<|turn>model\n<|channel>thought\n<channel|>")


def test_tool_result_images_need_a_projector():
    blind = ServingContext(GOOGLE, n_vocab=1000, vision=False, image_policy=ImagePolicy())
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png_base64()}}
    wire = validate_body(anthropic_messages.MessagesRequest, {
        "model": "m", "max_tokens": 5, "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [image]}]}]})
    with pytest.raises(UnsupportedFeatureError) as caught:
        anthropic_messages.to_generation_request(wire, blind)
    assert caught.value.param == "messages[2].content[0].content[0]"


def document_request(*blocks):
    return anthropic_messages.to_generation_request(validate_body(anthropic_messages.MessagesRequest, {
        "model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": list(blocks)}]}), SERVING)


def test_text_documents_are_read_as_text():
    plain = {"type": "document", "title": "Notes", "context": "From the meeting.",
             "source": {"type": "text", "media_type": "text/plain", "data": "Ship on Friday."}}
    encoded = {"type": "document", "source": {"type": "base64", "media_type": "text/plain",
                                              "data": base64.b64encode("Zürich, 21 °C".encode()).decode()}}
    content = {"type": "document", "source": {"type": "content", "content": [{"type": "text", "text": "Part one."}]},
               "citations": {"enabled": False}}
    prompt = render(document_request(plain, encoded, content, {"type": "text", "text": "Summarize."}))
    assert ("<|turn>user\nNotes\n\nFrom the meeting.\n\nShip on Friday.\n\nZürich, 21 °C\n\nPart one.\n\n"
            "Summarize.<turn|>") in prompt


@pytest.mark.parametrize("block, param", [
    ({"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}},
     "messages[0].content[0].source"),
    ({"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}},
     "messages[0].content[0].source"),
    ({"type": "document", "source": {"type": "file", "file_id": "file_1"}}, "messages[0].content[0].source"),
    ({"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x"},
      "citations": {"enabled": True}}, "messages[0].content[0].citations.enabled"),
])
def test_documents_that_cannot_be_read_are_refused_by_name(block, param):
    with pytest.raises(UnsupportedFeatureError) as caught:
        document_request(block)
    assert caught.value.param == param


def test_a_base64_text_document_must_be_utf8():
    block = {"type": "document", "source": {"type": "base64", "media_type": "text/plain",
                                            "data": base64.b64encode(b"\xff\xfe").decode()}}
    with pytest.raises(InvalidRequestError) as caught:
        document_request(block)
    assert caught.value.param == "messages[0].content[0].source.data"


# -- legacy chat functions -------------------------------------------------------------------------

LEGACY = {"model": "m", "enable_thinking": False,
          "functions": [{"name": "get_weather", "parameters": WEATHER}],
          "messages": [{"role": "user", "content": "Weather in Paris?"},
                       {"role": "assistant", "content": None,
                        "function_call": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
                       {"role": "function", "name": "get_weather", "content": RESULTS[0]}]}


def test_legacy_functions_render_like_tools():
    legacy = openai_chat.to_generation_request(validate_body(openai_chat.ChatCompletionRequest, LEGACY), SERVING)
    assert render(legacy) == render(chat(RESULTS[0]))
    assert legacy.parallel_tool_calls is False and legacy.tool_choice.mode == "auto"


@pytest.mark.parametrize("function_call, mode, name", [("none", "none", None), ("auto", "auto", None),
                                                       ({"name": "get_weather"}, "function", "get_weather")])
def test_legacy_function_call_is_the_tool_choice(function_call, mode, name):
    body = {**LEGACY, "function_call": function_call}
    request = openai_chat.to_generation_request(validate_body(openai_chat.ChatCompletionRequest, body), SERVING)
    assert (request.tool_choice.mode, request.tool_choice.name) == (mode, name)


@pytest.mark.parametrize("changes, param", [
    ({"tools": [{"type": "function", "function": {"name": "x"}}]}, "functions"),
    ({"tool_choice": "auto", "function_call": "auto"}, "function_call"),
    ({"function_call": {"name": "nope"}}, "function_call"),
    ({"messages": [{"role": "user", "content": "x"}, {"role": "function", "name": "f", "content": "1"}]},
     "messages[1]"),
])
def test_legacy_functions_mistakes_are_400_naming_the_field(changes, param):
    with pytest.raises(InvalidRequestError) as caught:
        openai_chat.to_generation_request(validate_body(openai_chat.ChatCompletionRequest, {**LEGACY, **changes}),
                                          SERVING)
    assert caught.value.param == param


def test_a_function_message_needs_a_name():
    body = {**LEGACY, "messages": LEGACY["messages"][:2] + [{"role": "function", "content": "1"}]}
    with pytest.raises(InvalidRequestError) as caught:
        validate_body(openai_chat.ChatCompletionRequest, body)
    assert caught.value.param == "messages[2]"


def test_project_template_gives_the_same_prompts():
    project = Gemma4Format()
    for request in (chat(RESULTS[0]), responses(RESULTS[1]), messages(RESULTS[4]),
                    document_request({"type": "text", "text": "a"}, {"type": "text", "text": "b"})):
        assert project.render(request.messages, tools=request.tools) == GOOGLE.render(request.messages,
                                                                                      tools=request.tools)


def test_system_and_developer_messages_open_the_system_turn_in_every_dialect():
    chat_request = openai_chat.to_generation_request(validate_body(openai_chat.ChatCompletionRequest, {
        "model": "m", "enable_thinking": False,
        "messages": [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "Hi"}]}), SERVING)
    responses_request = openai_responses.to_generation_request(validate_body(openai_responses.ResponsesRequest, {
        "model": "m", "enable_thinking": False, "instructions": "Be brief.", "input": "Hi"}), SERVING)
    developer_item = openai_responses.to_generation_request(validate_body(openai_responses.ResponsesRequest, {
        "model": "m", "enable_thinking": False,
        "input": [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "Hi"}]}), SERVING)
    messages_request = anthropic_messages.to_generation_request(validate_body(anthropic_messages.MessagesRequest, {
        "model": "m", "max_tokens": 4, "system": [{"type": "text", "text": "Be brief."}],
        "messages": [{"role": "user", "content": "Hi"}]}), SERVING)
    prompts = {render(request) for request in (chat_request, responses_request, developer_item, messages_request)}
    assert prompts == {"<bos><|turn>system\nBe brief.<turn|>\n<|turn>user\nHi<turn|>\n"
                       "<|turn>model\n<|channel>thought\n<channel|>"}
