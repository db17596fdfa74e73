"""Request validation names the offending parameter; translation builds the internal request."""

import pytest

from edge.api.context import ServingContext
from edge.runtime.images import ImagePolicy
from edge.api.openai_chat import ChatCompletionRequest, to_generation_request
from edge.api.validation import param_path, parse_json_body, validate_body
from edge.errors import InvalidRequestError, UnsupportedFeatureError
from edge.formats.gemma3 import Gemma3Format
from edge.formats.gemma4 import Gemma4Format
from edge.core.request import DEFAULT_TEMPERATURE, DEFAULT_TOP_P

VALID = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
GEMMA3 = ServingContext(Gemma3Format(), n_vocab=1000, vision=False, image_policy=ImagePolicy())


def invalid(**changes):
    body = {**VALID, **changes}
    with pytest.raises(InvalidRequestError) as caught:
        validate_body(ChatCompletionRequest, body)
    return caught.value


@pytest.mark.parametrize("changes, param", [
    ({"temperature": 2.5}, "temperature"),
    ({"temperature": -0.1}, "temperature"),
    ({"temperature": "hot"}, "temperature"),
    ({"top_p": 1.5}, "top_p"),
    ({"min_p": -1}, "min_p"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": 4097}, "max_tokens"),
    ({"max_tokens": 1.5}, "max_tokens"),
    ({"max_completion_tokens": 5000}, "max_completion_tokens"),
    ({"seed": -1}, "seed"),
    ({"seed": 2_147_483_648}, "seed"),
    ({"presence_penalty": 2.5}, "presence_penalty"),
    ({"frequency_penalty": -3}, "frequency_penalty"),
    ({"repetition_penalty": 0.05}, "repetition_penalty"),
    ({"repetition_penalty": 2.5}, "repetition_penalty"),
    ({"top_logprobs": 21, "logprobs": True}, "top_logprobs"),
    ({"top_logprobs": 2}, "top_logprobs"),
    ({"logprobs": "yes"}, "logprobs"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"stop": 5}, "stop"),
    ({"stop": ""}, "stop"),
    ({"n": 0}, "n"),
    ({"stream": "true"}, "stream"),
    ({"stream_options": {"include_usage": True}}, "stream_options"),
    ({"logit_bias": {"abc": 1}}, "logit_bias"),
    ({"logit_bias": {"5": 101}}, "logit_bias.5"),
    ({"messages": []}, "messages"),
    ({"messages": "hi"}, "messages"),
    ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
    ({"messages": [{"role": "user"}]}, "messages[0]"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": 1}]}]}, "messages[0].content[0].text"),
    ({"messages": [{"role": "user", "content": "hi", "colour": "red"}]}, "messages[0].colour"),
    ({"model": 7}, "model"),
    ({"unknown_field": 1}, "unknown_field"),
])
def test_bad_values_name_their_parameter(changes, param):
    assert invalid(**changes).param == param


def test_missing_required_fields_are_named():
    assert validate_body(ChatCompletionRequest, {"messages": VALID["messages"]}).model is None  # the served model
    with pytest.raises(InvalidRequestError) as caught:
        validate_body(ChatCompletionRequest, {"model": "m"})
    assert caught.value.param == "messages"


def test_body_must_be_a_json_object():
    with pytest.raises(InvalidRequestError, match="not valid JSON"):
        parse_json_body(b"{nope")
    with pytest.raises(InvalidRequestError, match="JSON object"):
        validate_body(ChatCompletionRequest, [1, 2])


def test_param_path_drops_union_labels():
    assert param_path(("messages", 0, "content", "list[union[TextContentPart,ImageContentPart]]", 2,
                       "TextContentPart", "text")) == "messages[0].content[2].text"


def test_translation_applies_hosted_defaults_and_maps_roles():
    chat = validate_body(ChatCompletionRequest, {
        "model": "m", "stop": "END", "max_completion_tokens": 9, "logprobs": True, "top_logprobs": 3,
        "messages": [{"role": "developer", "content": "be brief"},
                     {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]})
    request = to_generation_request(chat, GEMMA3)
    assert request.sampling.temperature == DEFAULT_TEMPERATURE and request.sampling.top_p == DEFAULT_TOP_P
    assert request.stop == ("END",) and request.max_tokens == 9 and request.top_logprobs == 3
    assert [m.role for m in request.messages] == ["system", "user"]
    assert request.messages[1].text == "ab"


def test_zero_temperature_is_kept_not_replaced_by_default():
    chat = validate_body(ChatCompletionRequest, {**VALID, "temperature": 0, "top_p": 0})
    request = to_generation_request(chat, GEMMA3)
    assert request.sampling.temperature == 0 and request.sampling.top_p == 0


@pytest.mark.parametrize("changes, param", [
    ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}]},
     "messages[0].content[0].image_url"),
    ({"logit_bias": {"999999": 1}}, "logit_bias.999999"),
])
def test_what_gemma3_cannot_do_is_refused_by_name(changes, param):
    chat = validate_body(ChatCompletionRequest, {**VALID, **changes})
    with pytest.raises(InvalidRequestError) as caught:
        to_generation_request(chat, GEMMA3)
    assert caught.value.param == param
    if param != "logit_bias.999999":
        assert isinstance(caught.value, UnsupportedFeatureError)


GEMMA4 = ServingContext(Gemma4Format(), n_vocab=1000, vision=False, image_policy=ImagePolicy())


@pytest.mark.parametrize("fields, thinking", [
    ({}, True),  # on by default, like the hosted API
    ({"reasoning_effort": "high"}, True),
    ({"reasoning_effort": "medium"}, True),
    ({"reasoning_effort": "low"}, False),
    ({"reasoning_effort": "minimal"}, False),
    ({"reasoning_effort": "high", "enable_thinking": False}, False),
    ({"reasoning_effort": "low", "enable_thinking": True}, True),
    ({"reasoning_effort": "high", "chat_template_kwargs": {"enable_thinking": False}}, False),
])
def test_thinking_switch(fields, thinking):
    chat = validate_body(ChatCompletionRequest, {**VALID, **fields})
    assert to_generation_request(chat, GEMMA4).enable_thinking is thinking


def test_gemma3_cannot_be_asked_to_think():
    chat = validate_body(ChatCompletionRequest, {**VALID, "enable_thinking": True})
    with pytest.raises(UnsupportedFeatureError) as caught:
        to_generation_request(chat, GEMMA3)
    assert caught.value.param == "enable_thinking"
    assert to_generation_request(validate_body(ChatCompletionRequest, VALID), GEMMA3).enable_thinking is False
