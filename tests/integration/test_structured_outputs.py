"""Pydantic models through the official SDK helpers, on the tiny Gemma 4 server: every answer validates
with the model itself.

The weights are random, so whatever comes out is what the grammar allows: a model with bounds, a
pattern, formats, enums, nested and optional parts, a discriminated union, bounded lists or recursion
must still parse with ``Model.model_validate_json`` in every place a schema appears (chat
``response_format``, named / required / auto tools, Responses ``text.format``, Anthropic ``tool_use`` and
``output_config.format``). Strings carry a ``max_length`` so that answers end within ``max_tokens``.
"""

from __future__ import annotations

import datetime
import enum
import uuid
from typing import Annotated, Literal, Optional, Union

import anthropic
import openai
import pydantic
import pytest
from pydantic import BaseModel, EmailStr, Field

MODEL = "gemma4-tiny"
SEEDS = (0, 1)
ASK = [{"role": "user", "content": "Fill in the form."}]
NO_THINKING = {"enable_thinking": False}


class Colour(str, enum.Enum):
    RED = "red"
    GREEN = "green"


class Bounded(BaseModel):
    count: int = Field(ge=1, le=8)
    ratio: float = Field(gt=0, lt=1)
    step: int = Field(multiple_of=5, ge=0, le=100)
    code: str = Field(pattern=r"^[A-Z]{2}-\d{2}$")
    colour: Colour


class Dated(BaseModel):
    when: datetime.datetime
    day: datetime.date
    at: datetime.time
    ident: uuid.UUID
    email: EmailStr


class Item(BaseModel):
    name: str = Field(max_length=6)
    tags: list[Literal["a", "b"]] = Field(max_length=2)


class Order(BaseModel):
    items: list[Item] = Field(min_length=1, max_length=2)
    note: Optional[str] = Field(default=None, max_length=5)
    rush: bool = False


class Cat(BaseModel):
    kind: Literal["cat"]
    lives: int = Field(ge=0, le=9)


class Dog(BaseModel):
    kind: Literal["dog"]
    good: bool


class Pet(BaseModel):
    pet: Annotated[Union[Cat, Dog], Field(discriminator="kind")]


class Node(BaseModel):
    value: int = Field(ge=0, le=9)
    children: list["Node"] = Field(default_factory=list, max_length=2)


CORPUS = [Bounded, Dated, Order, Pet, Node]


@pytest.fixture
def client(gemma4_server):
    return openai.OpenAI(base_url=f"{gemma4_server.base_url}/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture
def claude(gemma4_server):
    return anthropic.Anthropic(base_url=gemma4_server.base_url, api_key="unused", max_retries=0, timeout=120)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("model", CORPUS, ids=lambda model: model.__name__)
def test_chat_response_format(client, model, seed):
    completion = client.chat.completions.parse(model=MODEL, messages=ASK, response_format=model, seed=seed,
                                               temperature=1.0, max_tokens=400, extra_body=NO_THINKING)
    choice = completion.choices[0]
    assert choice.finish_reason == "stop", choice
    assert isinstance(choice.message.parsed, model)
    model.model_validate_json(choice.message.content)


@pytest.mark.parametrize("choice", ["named", "required"])
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("model", CORPUS, ids=lambda model: model.__name__)
def test_chat_tools(client, model, seed, choice):
    tool = openai.pydantic_function_tool(model)
    name = tool["function"]["name"]
    tool_choice = {"type": "function", "function": {"name": name}} if choice == "named" else "required"
    completion = client.chat.completions.parse(model=MODEL, messages=ASK, tools=[tool], tool_choice=tool_choice,
                                               seed=seed, temperature=1.0, max_tokens=400, extra_body=NO_THINKING)
    message = completion.choices[0].message
    assert completion.choices[0].finish_reason == "tool_calls", completion
    for call in message.tool_calls:
        assert call.function.name == name
        model.model_validate_json(call.function.arguments)
        assert isinstance(call.function.parsed_arguments, model)


def test_chat_auto_tools_lazy_grammar(client):
    """With tool_choice auto the grammar waits for the model to open a call; any call it makes is valid."""
    from edge.formats.gemma4_parser import MARKERS

    tools = [openai.pydantic_function_tool(model) for model in CORPUS]
    by_name = {model.__name__: model for model in CORPUS}
    for seed in range(6):
        completion = client.chat.completions.create(model=MODEL, messages=ASK, tools=tools, seed=seed,
                                                    temperature=1.0, max_tokens=200, extra_body=NO_THINKING)
        choice = completion.choices[0]
        for call in choice.message.tool_calls or []:
            by_name[call.function.name].model_validate_json(call.function.arguments)
        assert not any(marker in (choice.message.content or "") for marker in MARKERS), choice


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("model", CORPUS, ids=lambda model: model.__name__)
def test_responses_text_format(client, model, seed):
    response = client.responses.parse(model=MODEL, input=ASK, text_format=model, max_output_tokens=400,
                                      temperature=1.0, extra_body={"seed": seed, **NO_THINKING})
    assert response.status == "completed", response
    assert isinstance(response.output_parsed, model)
    model.model_validate_json(response.output_text)


# seed is an extension on /v1/messages too: each run is reproducible, like the chat and Responses ones
@pytest.mark.parametrize("run", SEEDS)
@pytest.mark.parametrize("model", CORPUS, ids=lambda model: model.__name__)
def test_anthropic_tool_use(claude, model, run):
    tool = {"name": model.__name__, "description": "Record it.", "input_schema": model.model_json_schema()}
    message = claude.messages.create(model=MODEL, max_tokens=400, messages=ASK, tools=[tool],
                                     tool_choice={"type": "tool", "name": model.__name__},
                                     extra_body={"temperature": 1.0, "seed": run})
    assert message.stop_reason == "tool_use", message
    blocks = [block for block in message.content if block.type == "tool_use"]
    assert blocks
    for block in blocks:
        model.model_validate(block.input)


@pytest.mark.parametrize("run", SEEDS)
@pytest.mark.parametrize("model", CORPUS, ids=lambda model: model.__name__)
def test_anthropic_output_format(claude, model, run):
    message = claude.messages.create(
        model=MODEL, max_tokens=400, messages=ASK, extra_body={"temperature": 1.0, "seed": run},
        output_config={"format": {"type": "json_schema", "schema": model.model_json_schema()}})
    assert message.stop_reason == "end_turn", message
    text = "".join(block.text for block in message.content if block.type == "text")
    model.model_validate_json(text)


def test_corpus_schemas_use_the_keywords_they_claim():
    """The corpus really exercises bounds, patterns, formats, enums, unions and recursion."""
    text = " ".join(str(model.model_json_schema()) for model in CORPUS)
    for keyword in ("'minimum'", "'maximum'", "'exclusiveMinimum'", "'multipleOf'", "'pattern'", "'date-time'",
                    "'uuid'", "'email'", "'enum'", "'anyOf'", "'oneOf'", "'discriminator'", "'maxItems'", "'$ref'"):
        assert keyword in text, keyword
    assert pydantic.VERSION >= "2"
