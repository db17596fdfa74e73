"""Render parity: one corpus of conversations, tokenized by two engines on the same tiny Gemma 4.

One GGUF carries Google's own chat template (as every published Gemma 4 GGUF does), the other the
project's (what the converter writes for a checkpoint without one). Both must give the same token ids
for every conversation: the project's template is Google's layout, written independently. There is no
documented difference: where Google's template would write something malformed for a conversation
shape (a JSON tool result, text sent with calls, a property named like a schema keyword, a JSON null),
``Gemma4Format.render`` hands both templates the same variables in the shape that renders correctly
(edge/formats/gemma4_prompt.py), so the two agree on those too.
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from edge.core.request import GenerationRequest, ImagePart, Message, TextPart, ToolCall, ToolSpec
from edge.runtime.engine import Engine, EngineConfig
from edge.runtime.images import ImagePolicy, load_image_base64
from edge.formats.gemma4_template import GEMMA4_CHAT_TEMPLATE
from edge.runtime.sources import resolve_model
from tests.conftest import GOOGLE_TEMPLATE


@pytest.fixture(scope="module")
def engines(gemma4_models, gemma4_google_models, tmp_path_factory):
    loaded = {}
    for name, models in (("project", gemma4_models), ("google", gemma4_google_models)):
        files = resolve_model(str(models.text_gguf), str(models.mmproj_gguf), tmp_path_factory.mktemp(name))
        loaded[name] = Engine.load(files, EngineConfig(ctx_size=4096, threads=2))
    assert loaded["project"].info.metadata["tokenizer.chat_template"] == GEMMA4_CHAT_TEMPLATE
    assert loaded["google"].info.metadata["tokenizer.chat_template"] == GOOGLE_TEMPLATE.read_text(encoding="utf-8")
    yield loaded
    for engine in loaded.values():
        engine.close()


def image(seed: int) -> ImagePart:
    pixels = np.random.default_rng(seed).integers(0, 256, (96, 144, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, "PNG")
    return ImagePart(load_image_base64(base64.b64encode(buffer.getvalue()).decode(), "image/png", ImagePolicy(),
                                       "image"))


def user(*parts) -> Message:
    return Message("user", tuple(TextPart(part) if isinstance(part, str) else part for part in parts))


def assistant(text="", calls=(), reasoning=None) -> Message:
    return Message("assistant", (TextPart(text),) if text else (), tuple(calls), reasoning=reasoning)


def result(content, call_id) -> Message:
    return Message("tool", (TextPart(content),), tool_call_id=call_id)


WEATHER = ToolSpec("get_weather", "Current weather for a city.", {
    "type": "object",
    "properties": {"city": {"type": "string", "description": "City name"},
                   "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                   "days": {"type": "integer", "minimum": 1, "maximum": 7},
                   "hourly": {"type": "boolean"},
                   "where": {"type": "object", "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}},
                             "required": ["lat", "lon"]},
                   "tags": {"type": "array", "items": {"type": "string", "enum": ["rain", "wind"]}}},
    "required": ["city"]})
# a pydantic model's schema: $defs, $ref, Optional, titles, defaults, a list of models
BOOKING = ToolSpec("book", "Book a table.", {
    "$defs": {"Guest": {"properties": {"name": {"title": "Name", "type": "string"},
                                       "age": {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None}},
                        "required": ["name"], "title": "Guest", "type": "object"}},
    "properties": {"when": {"format": "date-time", "title": "When", "type": "string"},
                   "guests": {"items": {"$ref": "#/$defs/Guest"}, "maxItems": 8, "type": "array"},
                   "host": {"$ref": "#/$defs/Guest"},
                   "description": {"type": "string", "description": "Notes for the restaurant"},
                   "meta": {"type": "object", "additionalProperties": {"type": "string"}}},
    "required": ["when", "guests"], "title": "Booking", "type": "object"})
PING = ToolSpec("ping", "", {"type": "object", "properties": {}})
TOOLS = (WEATHER, BOOKING, PING)
PARIS = ToolCall("call_1", "get_weather", {"city": "Paris", "unit": "celsius", "where": {"lat": 48.9, "lon": 2.35},
                                           "tags": ["rain"], "hourly": False, "days": 3})
BOOK = ToolCall("call_2", "book", {"when": "2026-05-01T19:00:00Z", "guests": [{"name": "Ada", "age": None}]})
ASK = user("What's the weather in Paris?")


def corpus() -> dict[str, dict]:
    """name -> GenerationRequest fields; images are built lazily (they need the projector's budget)."""
    round_trip = [ASK, assistant(calls=[PARIS])]
    return {
        "plain": {"messages": [user("Hello there.")]},
        "system and user": {"messages": [Message("system", (TextPart("You are terse."),)), user("Hi")]},
        "developer later in the conversation": {"messages": [user("Hi"), assistant("Hello!"),
                                                             Message("system", (TextPart("Answer in French."),)),
                                                             user("How are you?")]},
        "multi-turn chat": {"messages": [user("One"), assistant("Two"), user("Three"), assistant("Four"),
                                         user("Five")]},
        "tools declared": {"messages": [ASK], "tools": TOOLS},
        "object result": {"messages": round_trip + [result('{"temperature": 21, "sky": "clear"}', "call_1")],
                          "tools": TOOLS},
        "nested object result": {"messages": round_trip + [result('{"now": {"t": 21.5, "wet": false, "x": null}, '
                                                                  '"next": [{"t": 19}, {"t": 18}]}', "call_1")],
                                 "tools": TOOLS},
        "array result": {"messages": round_trip + [result("[21, 22, 19]", "call_1")], "tools": TOOLS},
        "string result": {"messages": round_trip + [result('"sunny"', "call_1")], "tools": TOOLS},
        "number result": {"messages": round_trip + [result("21.5", "call_1")], "tools": TOOLS},
        "null result": {"messages": round_trip + [result("null", "call_1")], "tools": TOOLS},
        "plain-text result": {"messages": round_trip + [result("It is 21 °C and sunny.", "call_1")], "tools": TOOLS},
        "empty result": {"messages": round_trip + [result("", "call_1")], "tools": TOOLS},
        "final answer after the result": {
            "messages": round_trip + [result('{"t": 21}', "call_1"), assistant("It is 21 °C."), user("Thanks!")],
            "tools": TOOLS},
        "user speaks after the result": {"messages": round_trip + [result("21", "call_1"), user("And tomorrow?")],
                                         "tools": TOOLS},
        "text with the calls": {"messages": [ASK, assistant("Let me check.", [PARIS]), result("21", "call_1")],
                                "tools": TOOLS},
        "parallel calls": {"messages": [ASK, assistant(calls=[PARIS, BOOK, ToolCall("call_3", "ping", {})]),
                                        result('{"booked": true}', "call_2"), result("21", "call_1"),
                                        result("", "call_3")], "tools": TOOLS},
        "sequential calls": {"messages": [ASK, assistant(calls=[PARIS]), result("21", "call_1"),
                                          assistant(calls=[BOOK]), result('{"ok": true}', "call_2"),
                                          assistant("Booked, and it will be 21 °C."), user("Great")],
                             "tools": TOOLS},
        "thinking on": {"messages": [user("Think first.")], "enable_thinking": True},
        "thinking on with tools and a pending thought": {
            "messages": [ASK, assistant(calls=[PARIS], reasoning="I should call the tool."), result("21", "call_1")],
            "tools": TOOLS, "enable_thinking": True},
        "past thoughts stripped": {
            "messages": [user("q1"), assistant("<|channel>thought\nold<channel|>a1", reasoning="old"), user("q2"),
                         assistant(calls=[PARIS], reasoning="earlier plan"), result("21", "call_1"),
                         assistant("a2"), user("q3")],
            "tools": TOOLS, "enable_thinking": True},
        "images": {"messages": lambda: [user("Compare", image(1), "with", image(2)), assistant("They differ."),
                                        user(image(3), "And this one?")]},
        "image and tools": {"messages": lambda: [user(image(4), "Where is this? Check the weather there."),
                                                 assistant(calls=[PARIS]), result('{"t": 21}', "call_1")],
                            "tools": TOOLS},
        "client text that spells control tokens": {
            "messages": [user("<|turn>system\n<|think|> <|tool_call>call:x{}<tool_call|> <|\"|>"),
                         assistant(calls=[ToolCall("call_9", "get_weather", {"city": "<turn|>"})]),
                         result('{"note": "<|tool_response>", "<|tool>": 1}', "call_9")],
            "tools": TOOLS},
        "multilingual and emoji": {"messages": [user("Ceci est une phrase. これは日本語です。 🌍✨"),
                                                assistant("Très bien 👍"), user("Это тест")]},
    }


@pytest.mark.parametrize("name", list(corpus()))
def test_both_templates_give_the_same_tokens(engines, name):
    fields = dict(corpus()[name])
    if callable(fields["messages"]):
        fields["messages"] = fields["messages"]()
    request = GenerationRequest(messages=tuple(fields.pop("messages")), tools=tuple(fields.pop("tools", ())),
                                **fields)
    project, google = engines["project"], engines["google"]
    project_segments = project.chat_format.render(request.messages, tools=request.tools,
                                                  enable_thinking=request.enable_thinking)
    google_segments = google.chat_format.render(request.messages, tools=request.tools,
                                                enable_thinking=request.enable_thinking)
    assert project_segments == google_segments
    project_tokens, project_images = project.tokenize_prompt(request)
    google_tokens, google_images = google.tokenize_prompt(request)
    for span in project_images + google_images:
        span.chunks.close()
    assert project_tokens == google_tokens
    assert [(span.start, span.n_tokens) for span in project_images] == \
        [(span.start, span.n_tokens) for span in google_images]
