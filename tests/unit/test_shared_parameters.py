"""The hosted API's parameters and the fields clients send, through each dialect's wire model and translator."""

from __future__ import annotations

import pytest

from edge.api import anthropic_messages, openai_chat, openai_responses
from edge.api.context import ServingContext
from edge.api.validation import validate_body
from edge.core.request import SamplingParams
from edge.errors import InvalidRequestError, UnsupportedFeatureError
from edge.formats.gemma3 import Gemma3Format
from edge.formats.gemma4 import Gemma4Format
from edge.runtime.images import ImagePolicy

GEMMA4 = ServingContext(Gemma4Format(), n_vocab=1000, vision=False, image_policy=ImagePolicy())
GEMMA3 = ServingContext(Gemma3Format(), n_vocab=1000, vision=False, image_policy=ImagePolicy())
HELLO = [{"role": "user", "content": "hi"}]
DIALECTS = {
    "chat": (openai_chat.ChatCompletionRequest, openai_chat.to_generation_request,
             {"model": "m", "messages": HELLO}),
    "responses": (openai_responses.ResponsesRequest, openai_responses.to_generation_request,
                  {"model": "m", "input": HELLO}),
    "messages": (anthropic_messages.MessagesRequest, anthropic_messages.to_generation_request,
                 {"model": "m", "messages": HELLO, "max_tokens": 8}),
}
TOOL = {"chat": {"tools": [{"type": "function", "function": {"name": "f"}}]},
        "responses": {"tools": [{"type": "function", "name": "f"}]},
        "messages": {"tools": [{"name": "f", "input_schema": {"type": "object"}}]}}


def translate(dialect: str, serving=GEMMA4, **fields):
    model, translator, base = DIALECTS[dialect]
    return translator(validate_body(model, {**base, **fields}), serving)


@pytest.mark.parametrize("dialect", list(DIALECTS))
def test_the_shared_sampling_parameters_reach_the_engine(dialect):
    request = translate(dialect, seed=5, min_p=0.1, top_k=7, presence_penalty=0.5, frequency_penalty=-0.5,
                        repetition_penalty=1.2, temperature=0.5, top_p=0.9)
    assert request.sampling == SamplingParams(temperature=0.5, top_p=0.9, min_p=0.1, top_k=7, presence_penalty=0.5,
                                              frequency_penalty=-0.5, repetition_penalty=1.2, seed=5)


@pytest.mark.parametrize("dialect", list(DIALECTS))
def test_logprobs_and_ignore_eos_reach_the_engine(dialect):
    request = translate(dialect, logprobs=True, top_logprobs=3, ignore_eos=True)
    assert (request.logprobs, request.top_logprobs, request.ignore_eos) == (True, 3, True)
    assert translate(dialect).ignore_eos is False


@pytest.mark.parametrize("dialect", list(DIALECTS))
@pytest.mark.parametrize("field, value", [("seed", -1), ("min_p", 2), ("top_k", -3), ("repetition_penalty", 5),
                                          ("presence_penalty", 2.5), ("top_logprobs", 30), ("ignore_eos", "y"),
                                          ("reasoning_effort", "max")])
def test_the_same_ranges_everywhere(dialect, field, value):
    model, _, base = DIALECTS[dialect]
    with pytest.raises(InvalidRequestError) as caught:
        validate_body(model, {**base, field: value})
    assert caught.value.param == field and caught.value.message.startswith(f"Invalid value for '{field}'")


@pytest.mark.parametrize("dialect", list(DIALECTS))
def test_ignore_eos_bans_the_end_tokens(dialect):
    request = translate(dialect, ignore_eos=True, enable_thinking=True)
    assert set(GEMMA4.chat_format.banned_tokens(request)) >= {"<turn|>", "<eos>", "<|tool_response>"}
    assert "<turn|>" not in GEMMA4.chat_format.banned_tokens(translate(dialect))
    assert Gemma3Format().banned_tokens(translate(dialect, GEMMA3, ignore_eos=True)) == ("<end_of_turn>", "<eos>")


@pytest.mark.parametrize("dialect", list(DIALECTS))
def test_ignore_eos_cannot_run_under_a_grammar(dialect):
    with pytest.raises(InvalidRequestError) as caught:
        translate(dialect, ignore_eos=True, **TOOL[dialect])
    assert caught.value.param == "ignore_eos"
    none = {"chat": "none", "responses": "none", "messages": {"type": "none"}}[dialect]
    assert translate(dialect, ignore_eos=True, tool_choice=none, **TOOL[dialect]).ignore_eos


@pytest.mark.parametrize("dialect, fields, thinking", [
    ("responses", {}, True), ("responses", {"reasoning": {"effort": "low"}}, False),
    ("responses", {"reasoning": {"effort": "low"}, "reasoning_effort": "high"}, True),
    ("responses", {"reasoning_effort": "high", "enable_thinking": False}, False),
    ("messages", {}, False), ("messages", {"reasoning_effort": "medium"}, True),
    ("messages", {"thinking": {"type": "adaptive"}, "enable_thinking": False}, False),
    ("messages", {"thinking": {"type": "disabled"}, "reasoning_effort": "high"}, True),
    ("chat", {"reasoning_effort": "minimal"}, False),
    ("chat", {"chat_template_kwargs": {"enable_thinking": False}, "reasoning_effort": "high"}, False),
])
def test_thinking_precedence(dialect, fields, thinking):
    assert translate(dialect, **fields).enable_thinking is thinking


def test_a_budget_only_applies_when_thinking_is_on():
    request = translate("messages", max_tokens=100, thinking={"type": "enabled", "budget_tokens": 20},
                        enable_thinking=False)
    assert request.enable_thinking is False and request.thinking_budget is None


def test_responses_logprobs_by_include_or_by_the_extension():
    assert translate("responses", include=["message.output_text.logprobs"], top_logprobs=2).top_logprobs == 2
    assert translate("responses", logprobs=True, top_logprobs=2).logprobs
    with pytest.raises(InvalidRequestError):
        translate("responses", top_logprobs=2)


@pytest.mark.parametrize("max_tool_calls, choice, mode", [(None, None, "auto"), (2, None, "auto"), (0, None, "none"),
                                                          (0, "auto", "none")])
def test_max_tool_calls(max_tool_calls, choice, mode):
    fields = {"max_tool_calls": max_tool_calls} if max_tool_calls is not None else {}
    if choice:
        fields["tool_choice"] = choice
    request = translate("responses", **TOOL["responses"], **fields)
    assert request.max_tool_calls == max_tool_calls and request.tool_choice.mode == mode
    with pytest.raises(InvalidRequestError):
        translate("responses", **TOOL["responses"], max_tool_calls=0, tool_choice="required")
    with pytest.raises(InvalidRequestError):
        translate("responses", max_tool_calls=-1)


@pytest.mark.parametrize("dialect, fields", [
    ("chat", {"prompt_cache_key": "k", "prompt_cache_retention": "24h", "prompt_cache_options": {"mode": "x"},
              "safety_identifier": "s", "verbosity": "high", "prediction": {"type": "content", "content": "x"},
              "modalities": ["text"], "store": True, "metadata": {"a": "b"}, "user": "u", "service_tier": "flex",
              "stream": True, "stream_options": {"include_usage": True, "include_obfuscation": True}}),
    ("responses", {"include": ["reasoning.encrypted_content", "message.input_image.image_url",
                               "file_search_call.results", "web_search_call.results",
                               "web_search_call.action.sources", "computer_call_output.output.image_url",
                               "code_interpreter_call.outputs"],
                   "truncation": "auto", "text": {"verbosity": "low", "format": {"type": "text"}},
                   "prompt_cache_key": "k", "prompt_cache_retention": "in_memory", "safety_identifier": "s",
                   "background": False, "reasoning": {"summary": "detailed", "generate_summary": "auto"},
                   "stream": True, "stream_options": {"include_obfuscation": False}, "store": False}),
    ("messages", {"cache_control": {"type": "ephemeral"}, "metadata": {"user_id": "u"}, "service_tier": "auto"}),
])
def test_fields_with_no_local_meaning_are_accepted_and_change_nothing(dialect, fields):
    assert translate(dialect, **fields) == translate(dialect, **{key: value for key, value in fields.items()
                                                                 if key in ("stream",)})


@pytest.mark.parametrize("dialect, fields, param, error", [
    ("chat", {"audio": {"voice": "alloy", "format": "mp3"}}, "audio", UnsupportedFeatureError),
    ("chat", {"modalities": ["text", "audio"]}, "modalities", UnsupportedFeatureError),
    ("responses", {"background": True}, "background", UnsupportedFeatureError),
    ("responses", {"truncation": "middle"}, "truncation", InvalidRequestError),
    ("responses", {"conversation": "conv_1"}, "conversation", InvalidRequestError),
    ("messages", {"container": "c"}, "container", InvalidRequestError),
])
def test_what_cannot_be_honoured_is_refused_by_name(dialect, fields, param, error):
    with pytest.raises(error) as caught:
        translate(dialect, **fields)
    assert caught.value.param == param
