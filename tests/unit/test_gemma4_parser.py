"""The Gemma 4 output parser, fed whole and in every split: no marker ever leaks, calls are typed."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings, strategies as st

from edge.formats.base import Piece
from edge.formats.gemma4_parser import MARKERS, Gemma4Parser
from edge.core.events import ReasoningDelta, TextDelta, ToolCallDelta
from edge.core.request import ToolSpec

Q = '<|"|>'
WEATHER = ToolSpec("get_weather", "", {"type": "object", "properties": {
    "city": {"type": "string"}, "days": {"type": "integer"}, "zip": {"type": "string"},
    "scale": {"type": "number"}, "opts": {"type": "object", "properties": {"tags": {"type": "array"}}}}})


def parse(chunks: list[str], tools=(WEATHER,)) -> tuple[str, str, list[ToolCallDelta]]:
    parser = Gemma4Parser(tools)
    events = []
    for chunk in chunks:
        events += parser.feed(Piece(chunk, False))
    events += parser.finish()
    content = "".join(e.text for e in events if isinstance(e, TextDelta))
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    return content, reasoning, [e for e in events if isinstance(e, ToolCallDelta)]


def splits(text: str):
    """The text whole, per character, and cut at every single position."""
    yield [text]
    yield list(text)
    for cut in range(1, len(text)):
        yield [text[:cut], text[cut:]]


CASES = [
    # (model output, content, reasoning, [(name, arguments)])
    ("Hello there.", "Hello there.", "", []),
    ("<|channel>thought\nLet me think.<channel|>The answer is 4.", "The answer is 4.", "Let me think.", []),
    (f"<|tool_call>call:get_weather{{city:{Q}Paris{Q},days:3}}<tool_call|>", "", "",
     [("get_weather", {"city": "Paris", "days": 3})]),
    (f"<|channel>thought\nneed weather<channel|><|tool_call>call:get_weather{{city:{Q}Oslo{Q}}}<tool_call|>"
     f"<|tool_call>call:get_weather{{city:{Q}Rome{Q}}}<tool_call|>", "", "need weather",
     [("get_weather", {"city": "Oslo"}), ("get_weather", {"city": "Rome"})]),
    (f"Sure. <|tool_call>call:get_weather{{city:{Q}a{{b}}c, \"d\"\nnew line{Q},days:-2}}<tool_call|> Done.<turn|>",
     "Sure.  Done.", "", [("get_weather", {"city": 'a{b}c, "d"\nnew line', "days": -2})]),
    (f"<|tool_call>call:get_weather{{opts:{{tags:[{Q}x{Q},1,2.5,true,null]}},scale:1e3,zip:{Q}07{Q}}}<tool_call|>",
     "", "", [("get_weather", {"opts": {"tags": ["x", 1, 2.5, True, None]}, "scale": 1000.0, "zip": "07"})]),
    # schema typing: a bare number where a string is declared, a quoted number where an integer is
    (f"<|tool_call>call:get_weather{{zip:75001,days:{Q}4{Q}}}<tool_call|>", "", "",
     [("get_weather", {"zip": "75001", "days": 4})]),
    ("a <b> c < d <| e |> f", "a <b> c < d <| e |> f", "", []),
    ("text<eos>", "text", "", []),
    ("<|turn>model\nhi<turn|>", "model\nhi", "", []),
]


@pytest.mark.parametrize("output, content, reasoning, calls", CASES)
def test_every_split_gives_the_same_result(output, content, reasoning, calls):
    for chunks in splits(output):
        got_content, got_reasoning, got_calls = parse(chunks)
        assert got_content == content, chunks
        assert got_reasoning == reasoning, chunks
        assert [(c.name, json.loads(c.arguments)) for c in got_calls] == calls, chunks
        assert [c.index for c in got_calls] == list(range(len(calls)))


def test_call_ids_are_unique_and_stable_per_call():
    _, _, calls = parse(["<|tool_call>call:get_weather{}<tool_call|><|tool_call>call:get_weather{}<tool_call|>"])
    assert len({call.id for call in calls}) == 2
    assert all(call.id.startswith("call_") for call in calls)


@pytest.mark.parametrize("output", [
    "<|tool_call>call:get_weather{city:Paris}<tool_call|>",       # unquoted string
    "<|tool_call>get_weather{}<tool_call|>",                      # no call: prefix
    "<|tool_call>get_weather{",                                   # cut off, and no call: prefix either
    "<|tool_call>call:get_weather{a:1}}}<tool_call|>",            # trailing garbage
])
def test_malformed_call_comes_back_as_text_without_markers(output):
    content, _, calls = parse([output])
    assert calls == []
    assert "get_weather" in content
    assert not any(marker in content for marker in MARKERS)


@pytest.mark.parametrize("output, name, arguments, complete_part", [
    ("<|tool_call>", "get_weather", "", {}),
    ("<|tool_call>call:get_we", "get_weather", "", {}),
    ("<|tool_call>call:get_weather{", "get_weather", "{", {}),
    (f"<|tool_call>call:get_weather{{city:{Q}Par", "get_weather", '{"city": "Par', {}),
    (f"<|tool_call>call:get_weather{{city:{Q}Paris<|\"", "get_weather", '{"city": "Paris', {}),
    (f"<|tool_call>call:get_weather{{city:{Q}Paris{Q},da", "get_weather", '{"city": "Paris", "da', {"city": "Paris"}),
    ("<|tool_call>call:get_weather{days:4,opts:{tags:[1,tr", "get_weather", '{"days": 4, "opts": {"tags": [1, tr',
     {"days": 4, "opts": {"tags": [1]}}),
    (f"Sure.<|tool_call>call:get_weather{{city:{Q}Oslo{Q}}}<tool_call|><|tool_call>call:get_weather{{zip:",
     "get_weather", '{"zip": ', {}),
])
def test_a_call_cut_off_is_an_incomplete_call_never_text(output, name, arguments, complete_part):
    from edge.api.common import partial_json_object

    for chunks in splits(output):
        content, _, calls = parse(chunks)
        assert content == ("Sure." if output.startswith("Sure.") else ""), chunks
        cut = calls[-1]
        assert (cut.name, cut.arguments, cut.complete) == (name, arguments, False), chunks
        assert cut.index == len(calls) - 1 and all(call.complete for call in calls[:-1])
        assert partial_json_object(cut.arguments) == complete_part
        with pytest.raises(ValueError):
            json.loads(cut.arguments)


def test_a_cut_name_shared_by_several_tools_stays_as_written():
    tools = (ToolSpec("get_weather", "", {}), ToolSpec("get_time", "", {}))
    _, _, calls = parse(["<|tool_call>call:get_"], tools)
    assert [(call.name, call.arguments, call.complete) for call in calls] == [("get_", "", False)]


def test_reasoning_cut_off_stays_reasoning():
    content, reasoning, _ = parse(["<|channel>thought\nstill thinking"])
    assert content == "" and reasoning == "still thinking"


def test_control_piece_flags_do_not_matter():
    parser = Gemma4Parser()
    events = parser.feed(Piece("<|channel>", True)) + parser.feed(Piece("thought\nhm", False))
    events += parser.feed(Piece("<channel|>", True)) + parser.feed(Piece("ok", False)) + parser.finish()
    assert [type(e).__name__ for e in events] == ["ReasoningDelta", "TextDelta"]


def test_state_flags_follow_the_channels():
    parser = Gemma4Parser()
    assert parser.in_content and not parser.in_reasoning
    parser.feed(Piece("<|channel>", True))
    assert parser.in_reasoning and not parser.can_close_reasoning
    parser.feed(Piece("thought\n", False))
    assert parser.can_close_reasoning
    parser.feed(Piece("<channel|>", True))
    assert parser.in_content


TOKENS = st.sampled_from(list(MARKERS) + ["call:", "get_weather", "{", "}", ":", ",", "[", "]", "city", "a", " ",
                                          "\n", "<", "|", ">", "thought", "1", "x\"y", "é", "🌊"])


@settings(max_examples=300, deadline=None)
@given(st.lists(TOKENS, max_size=40), st.data())
def test_never_raises_and_never_leaks_a_marker(tokens, data):
    text = "".join(tokens)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=6)))
    chunks = [text[a:b] for a, b in zip([0] + cuts, cuts + [len(text)])]
    content, reasoning, calls = parse(chunks)
    for marker in MARKERS:
        assert marker not in content
        assert marker not in reasoning
    for call in calls[:-1]:
        assert call.complete
    for call in calls:
        for marker in MARKERS:
            assert marker not in call.name and marker not in call.arguments
        if call.complete:
            assert isinstance(json.loads(call.arguments), dict)
        else:
            assert call.arguments == "" or call.arguments.startswith("{")
