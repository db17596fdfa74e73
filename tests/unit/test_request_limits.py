"""Request parsing limits and the cheap context check: hostile bodies are typed 400s, never crashes."""

from __future__ import annotations

import json

import pytest

from edge.api import validation
from edge.api.validation import parse_json_body
from edge.core.request import GenerationRequest, Message, TextPart
from edge.errors import ContextLengthExceededError, InvalidRequestError
from edge.server.lifecycle import check_prompt_fits, max_token_chars, prompt_characters


def refused(raw: bytes) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as caught:
        parse_json_body(raw)
    assert caught.value.status == 400
    return caught.value


def test_json_nested_100000_deep():
    error = refused(b"[" * 100_000 + b"]" * 100_000)
    assert "nested more than" in error.message
    error = refused(b'{"messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    assert "nested more than" in error.message


def test_nesting_just_past_the_limit_names_where_it_starts():
    depth = validation.MAX_JSON_DEPTH + 1
    body = {"tools": [{"function": {"parameters": {}}}]}
    inner = body["tools"][0]["function"]["parameters"]
    for _ in range(depth):
        inner["p"] = {}
        inner = inner["p"]
    error = refused(json.dumps(body).encode())
    assert error.param == "tools[0].function.parameters"


def test_deep_but_reasonable_nesting_parses():
    body = {"a": 1}
    for _ in range(validation.MAX_JSON_DEPTH - 2):
        body = {"x": body}
    assert parse_json_body(json.dumps(body).encode())


@pytest.mark.parametrize("raw", [b'{"seed": ' + b"9" * 5000 + b"}", b'{"seed": -' + b"9" * 5000 + b"}",
                                 b'{"temperature": 0.' + b"1" * 5000 + b"}"])
def test_numbers_of_thousands_of_digits(raw):
    assert "at most" in refused(raw).message


@pytest.mark.parametrize("raw", [b'{"a": NaN}', b'{"a": Infinity}', b'{"a": -Infinity}', b'{"a": 1e999}'])
def test_non_finite_numbers(raw):
    refused(raw)


@pytest.mark.parametrize("raw, param", [
    (b'{"model": "\\ud800"}', "model"),
    (b'{"messages": [{"role": "user", "content": "hi \\udfff there"}]}', "messages[0].content"),
    (b'{"logit_bias": {"\\ud800": 1}}', "logit_bias"),
    (b'{"tools": [{"function": {"parameters": {"properties": {"x": {"description": "\\udc00"}}}}}]}',
     "tools[0].function.parameters.properties.x.description"),
])
def test_lone_surrogates_anywhere_name_their_place(raw, param):
    error = refused(raw)
    assert error.param == param and "surrogate" in error.message


def test_paired_surrogates_and_other_unicode_parse():
    assert parse_json_body(b'{"t": "\\ud83d\\ude00 \xc3\xa9 \xe2\x80\xa6"}') == {"t": "\U0001F600 é …"}


def test_object_keys_of_thousands_of_characters():
    error = refused(b'{"logit_bias": {"' + b"1" * 5000 + b'": 5}}')
    assert error.param == "logit_bias"


def test_arrays_past_the_item_limit():
    items = b",".join([b"0"] * (validation.MAX_ARRAY_ITEMS + 1))
    assert refused(b'{"stop": [' + items + b"]}").param == "stop"


@pytest.mark.parametrize("raw", [b"{nope", b"", b"\xff\xfe", b'{"a": 1} trailing'])
def test_malformed_bodies(raw):
    assert "not valid JSON" in refused(raw).message


def _request(text: str, max_tokens: int | None = None) -> GenerationRequest:
    return GenerationRequest(messages=(Message("user", (TextPart(text),)),), max_tokens=max_tokens)


def test_characters_bound_refuses_what_cannot_fit():
    with pytest.raises(ContextLengthExceededError) as caught:
        check_prompt_fits(_request("x" * 20_000_000), n_ctx=8192, chars_per_token=48)
    assert caught.value.param == "messages" and "at least 416667 tokens" in caught.value.message
    with pytest.raises(ContextLengthExceededError):  # the prompt fits, prompt + completion does not
        check_prompt_fits(_request("x" * 4800, max_tokens=4096), n_ctx=4096 + 99, chars_per_token=48)


def test_characters_bound_lets_through_what_might_fit():
    check_prompt_fits(_request("x" * (8191 * 48)), n_ctx=8192, chars_per_token=48)
    check_prompt_fits(_request("x" * 4752, max_tokens=4096), n_ctx=4096 + 99, chars_per_token=48)


def test_only_verbatim_text_counts():
    request = GenerationRequest(messages=(Message("system", (TextPart("  be brief \n"),)),
                                          Message("user", (TextPart("hi"), TextPart("there"))),
                                          Message("assistant", (), reasoning="a long thought")))
    assert prompt_characters(request) == len("be brief") + 2 + 5


def test_max_token_chars_counts_characters_touched():
    pieces = [b"a", "…".encode() * 16, b"\xe2\x80", b"\xa6\xe2", b" " * 31]
    assert max_token_chars(lambda: pieces) == 31
    assert max_token_chars(lambda: [b"\x80\x80\x80"]) == 3  # undecodable bytes: one character each, at most
    assert max_token_chars(lambda: []) == 1
