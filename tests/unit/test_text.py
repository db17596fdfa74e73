import pytest

from edge.runtime.text import StopMatcher, Utf8Stream


def feed_all(matcher: StopMatcher, chunks: list[str]) -> tuple[str, str | None]:
    emitted = []
    for chunk in chunks:
        scan = matcher.feed(chunk)
        emitted.append(scan.emit)
        if scan.stopped:
            return "".join(emitted), scan.sequence
    return "".join(emitted) + matcher.flush(), None


@pytest.mark.parametrize("text, stops, expected, sequence", [
    ("hello world", ("world",), "hello ", "world"),
    ("hello world", ("xyz",), "hello world", None),
    ("a STOP b END c", ("END", "STOP"), "a ", "STOP"),
    ("no stop here wor", ("world",), "no stop here wor", None),
    ("abcabd", ("abd",), "abc", "abd"),
    ("", ("x",), "", None),
])
def test_stop_sequences_split_at_every_position(text, stops, expected, sequence):
    for cut in range(len(text) + 1):
        for second_cut in range(cut, len(text) + 1):
            chunks = [text[:cut], text[cut:second_cut], text[second_cut:]]
            assert feed_all(StopMatcher(stops), chunks) == (expected, sequence), chunks


def test_partial_stop_is_held_back_until_decided():
    matcher = StopMatcher(("</end>",))
    assert matcher.feed("text </e").emit == "text "
    assert matcher.feed("nough").emit == "</enough"


def test_no_stop_sequences_passes_text_through():
    matcher = StopMatcher(())
    assert matcher.feed("abc").emit == "abc"
    assert matcher.flush() == ""


def test_utf8_character_split_across_tokens():
    stream = Utf8Stream()
    data = "héllo 🌊".encode()
    pieces = [stream.feed(data[i:i + 1]) for i in range(len(data))]
    assert "".join(pieces) + stream.flush() == "héllo 🌊"
    assert all("\ufffd" not in piece for piece in pieces)


def test_utf8_invalid_bytes_become_replacement_characters_at_flush():
    stream = Utf8Stream()
    assert stream.feed(b"ok\xf0\x9f") == "ok"
    assert stream.flush() == "\ufffd"
