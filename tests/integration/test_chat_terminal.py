"""``edge chat`` in a real pseudo-terminal (pexpect): keys as a person types them, output as a terminal shows it.

In-process on the demo model, and with ``--url`` against the real servers (demo and tiny Gemma 4).
"""

from __future__ import annotations

import io
import json
import os
import re
import sys
import time

import pexpect
import pytest
from PIL import Image

from tests.conftest import REPO

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")
UP = "\x1b[A"
CANCEL_LINE = "client closed the stream; generation cancelled"


class Pty:
    """edge chat under a pseudo-terminal; `expect` matches text with the terminal's escapes removed."""

    def __init__(self, args: list[str], tmp_path, timeout: float = 120):
        env = {**os.environ, "TERM": "xterm-256color", "PROMPT_TOOLKIT_NO_CPR": "1",
               "EDGE_CACHE_DIR": os.environ.get("EDGE_CACHE_DIR", "") or str(_demo_cache()),
               "COLUMNS": "100", "LINES": "30"}
        self.history = tmp_path / "chat_history"
        env["EDGE_CHAT_HISTORY"] = str(self.history)  # the test's folder, not the user's
        self.child = pexpect.spawn(sys.executable, ["-m", "edge.cli", "chat", *args], cwd=str(REPO), env=env,
                                   encoding="utf-8", timeout=timeout, dimensions=(30, 100))
        self.raw = ""
        self.seen = 0  # how much of the cleaned output earlier expects consumed

    def text(self) -> str:
        return ANSI.sub("", self.raw)

    def expect(self, pattern: str, timeout: float | None = None) -> re.Match:
        """Waits for `pattern` (a regex) after what was already matched; returns the match."""
        deadline = time.monotonic() + (timeout or self.child.timeout)
        compiled = re.compile(pattern)
        while True:
            match = compiled.search(self.text(), self.seen)
            if match:
                self.seen = match.end()
                return match
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} in the terminal after {self.text()[self.seen:][-1500:]!r}")
            try:
                self.raw += self.child.read_nonblocking(4096, timeout=0.2)
            except pexpect.TIMEOUT:
                pass
            except pexpect.EOF:
                if not compiled.search(self.text(), self.seen):
                    raise AssertionError(f"edge chat ended before {pattern!r}: {self.text()[-1500:]!r}")

    def prompt(self):
        return self.expect(r"you> ?")

    def line(self, text: str):
        self.child.send(text + "\r")

    def finish(self) -> int:
        self.child.expect(pexpect.EOF, timeout=60)
        self.raw += self.child.before or ""
        self.child.close()
        return self.child.exitstatus


def _demo_cache():
    from edge.settings import Settings

    return Settings().cache_dir


def png_file(path, colour="red"):
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), colour).save(buffer, "PNG")
    path.write_bytes(buffer.getvalue())
    return path


def test_commands_history_save_load_and_reset_in_process(demo_model_path, tmp_path):
    chat = Pty(["--max-tokens", "3", "--temperature", "0"], tmp_path)
    chat.expect(r"edge chat with gemma-3-270m-q4_k_m \(text\)")
    chat.prompt()
    chat.line("/help")
    for command in ("/reset", "/system TEXT", "/think on|off", "/image PATH", "/save FILE", "/load FILE"):
        chat.expect(re.escape(command))
    chat.prompt()
    chat.line("/frobnicate")
    chat.expect("unknown command /frobnicate")  # a command is never sent to the model
    chat.prompt()
    chat.line("/think on")
    chat.expect("gemma-3-270m-q4_k_m cannot think")
    chat.prompt()
    chat.line(f"/image {png_file(tmp_path / 'red.png')}")
    chat.expect("has no vision projector")
    chat.prompt()
    chat.line("/system You answer in one word.")
    chat.expect("system prompt set")
    chat.prompt()
    chat.line("Name a lighthouse.")
    chat.expect(r"\d+ tokens · [\d.]+ tok/s · first token [\d.]+ s")
    chat.prompt()
    chat.child.send(UP)  # the last line comes back for editing
    chat.expect(r"Name a lighthouse\.")
    chat.child.send("\r")
    chat.expect(r"tok/s")
    chat.prompt()
    saved = tmp_path / "talk.json"
    chat.line(f"/save {saved}")
    chat.expect("saved 4 messages")
    conversation = json.loads(saved.read_text())
    assert [m["role"] for m in conversation["messages"]] == ["system", "user", "assistant", "user", "assistant"]
    assert conversation["messages"][0]["content"] == "You answer in one word."
    assert conversation["messages"][1]["content"] == conversation["messages"][3]["content"] == "Name a lighthouse."

    chat.prompt()
    chat.line("/reset")
    chat.expect(r"Forget the 4 messages of this conversation\? \[y/N\]")
    chat.line("n")
    chat.expect("kept")
    chat.prompt()
    chat.line("/reset")
    chat.expect(r"\[y/N\]")
    chat.line("y")
    chat.expect("the conversation starts over")
    chat.prompt()
    chat.line(f"/save {saved}")
    chat.expect("saved 0 messages")
    chat.prompt()
    saved.write_text(json.dumps(conversation))
    chat.line(f"/load {saved}")
    chat.expect("loaded 4 messages")
    chat.prompt()
    chat.child.sendcontrol("d")
    assert chat.finish() == 0
    assert "Name a lighthouse." in chat.history.read_text()  # history outlives the session


def test_answers_are_rendered_as_markdown(demo_model_path, tmp_path):
    saved = tmp_path / "markdown.json"
    saved.write_text(json.dumps({"messages": [
        {"role": "user", "content": "format it"},
        {"role": "assistant", "content": "Some **bold words** and a list:\n\n- first item\n- second item\n\n"
                                         "```python\nprint('hi')\n```"}]}))
    chat = Pty([], tmp_path)
    chat.prompt()
    chat.line(f"/load {saved}")
    chat.expect("loaded 2 messages")
    raw = chat.raw
    assert "\x1b[1mbold words" in raw and "**bold words**" not in raw  # bold, without the asterisks
    assert re.search(r"• first item", chat.text()) and "- first item" not in chat.text()
    assert "```" not in chat.text() and "print" in chat.text()
    chat.prompt()
    chat.line("/exit")
    assert chat.finish() == 0


def test_ctrl_c_stops_the_answer_and_the_chat_goes_on(demo_model_path, tmp_path):
    chat = Pty(["--max-tokens", "4000"], tmp_path)
    chat.prompt()
    chat.line("Tell me a very long story about the sea.")
    chat.expect(r"generating… [1-9]\d* tokens \(Ctrl-C stops\)")
    chat.child.sendcontrol("c")
    chat.expect(r"\[stopped\] · \d+ tokens")
    chat.prompt()
    # the engine is free again: a 4000-token answer still running would hold this one back for minutes
    chat.line("/save " + str(tmp_path / "after.json"))
    chat.expect("saved 2 messages")
    chat.prompt()
    chat.child.sendcontrol("c")  # at the prompt, Ctrl-C leaves
    assert chat.finish() == 0


def test_a_second_ctrl_c_during_an_answer_leaves(demo_model_path, tmp_path):
    chat = Pty(["--max-tokens", "4000"], tmp_path)
    chat.prompt()
    chat.line("Tell me a very long story about the sea.")
    chat.expect(r"generating… [1-9]\d* tokens")
    chat.child.sendcontrol("c")
    time.sleep(0.3)  # a person's second key press; two signals at once would arrive as one
    chat.child.sendcontrol("c")
    assert chat.finish() == 0  # while the answer stops, or at the prompt after it: either way it leaves


def test_with_url_it_streams_from_the_server_and_stop_cancels_there(demo_server, tmp_path):
    chat = Pty(["--url", demo_server.base_url, "--max-tokens", "4000", "--extra-body", '{"top_k": 40}'], tmp_path)
    chat.expect(r"edge chat with gemma-3-270m-q4_k_m \(text\)")
    chat.prompt()
    cancels_before = demo_server.log().count(CANCEL_LINE)
    chat.line("Tell me a very long story about the sea.")
    chat.expect(r"generating… [1-9]\d* tokens")
    chat.child.sendcontrol("c")
    chat.expect(r"\[stopped\]")
    chat.prompt()
    deadline = time.monotonic() + 60
    while demo_server.log().count(CANCEL_LINE) == cancels_before:
        assert time.monotonic() < deadline, "the server never logged the cancel"
        time.sleep(0.2)
    chat.line("/think on")
    chat.expect("cannot think")  # from the server's capabilities
    chat.prompt()
    chat.child.sendcontrol("d")
    assert chat.finish() == 0


def test_with_url_the_thought_is_dimmed_and_images_are_sent(gemma4_server, gemma4_models, tmp_path):
    from browser.test_page_gemma4 import channel_token

    bias = {"logit_bias": {str(channel_token.__wrapped__(gemma4_models)): 8}}
    chat = Pty(["--url", gemma4_server.base_url, "--max-tokens", "32", "--seed", "1",
                "--extra-body", json.dumps(bias)], tmp_path)
    chat.expect(r"\(text, vision, thinking\)")
    chat.prompt()
    chat.line("Think first.")  # a bias on <|channel> makes the random model open its thought channel
    chat.expect(r"tok/s")
    assert "\x1b[2;3m" in chat.raw, "the thought is printed dim and italic"
    chat.prompt()
    chat.line("/think off")
    chat.expect("thinking off")
    chat.prompt()
    chat.line(f"/image {png_file(tmp_path / 'red.png')}")
    chat.expect(r"red\.png \(0 KiB\) goes with your next message")
    chat.prompt()
    chat.line("What is in this picture?")
    chat.expect(r"tok/s")
    chat.prompt()
    saved = tmp_path / "seen.json"
    chat.line(f"/save {saved}")
    chat.expect("saved 4 messages")
    saved_body = json.loads(saved.read_text())
    assert saved_body["enable_thinking"] is False
    user = saved_body["messages"][2]
    assert user["content"][0] == {"type": "text", "text": "What is in this picture?"}
    assert user["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")
    chat.prompt()
    chat.child.sendcontrol("d")
    assert chat.finish() == 0


def test_a_page_export_loads_into_the_terminal(demo_model_path, tmp_path):
    from browser.conftest import conversation

    export = tmp_path / "export.json"
    export.write_text(json.dumps({"format": "edge-chat", "version": 1, "conversations": [conversation("t", [
        {"role": "user", "content": "From the page"}, {"role": "assistant", "content": "An *answer*"}])]}))
    chat = Pty([], tmp_path)
    chat.prompt()
    chat.line(f"/load {export}")
    chat.expect("you> From the page")
    chat.expect("loaded 2 messages")
    chat.prompt()
    chat.child.sendcontrol("d")
    assert chat.finish() == 0


def test_an_unreachable_url_is_a_clear_error(tmp_path):
    from tests.conftest import free_port

    result = pexpect.run(f"{sys.executable} -m edge.cli chat --url http://127.0.0.1:{free_port()}",
                         cwd=str(REPO), withexitstatus=True, timeout=60, encoding="utf-8")
    output, status = result
    assert status == 2 and "edge: error: cannot reach" in output and "Traceback" not in output


@pytest.mark.parametrize("line", ["/load /nonexistent.json", "/image /nonexistent.png"])
def test_bad_paths_are_reported_and_the_chat_goes_on(gemma4_server, tmp_path, line):
    chat = Pty(["--url", gemma4_server.base_url], tmp_path)
    chat.prompt()
    chat.line(line)
    chat.expect(r"cannot load|no such file")
    chat.prompt()
    chat.child.sendcontrol("d")
    assert chat.finish() == 0
