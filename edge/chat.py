"""``edge chat``: a multi-turn conversation in the terminal, streamed from the local model.

It drives the same generation core as the server; ``/reset`` starts over, ``/exit`` or EOF leaves.
"""

from __future__ import annotations

import sys
from typing import TextIO

from edge.errors import EdgeError
from edge.runtime.engine import Engine
from edge.core.events import Finish, TextDelta
from edge.core.request import GenerationRequest, Message, SamplingParams, TextPart

PROMPT = "you> "


def chat_loop(engine: Engine, *, system: str | None, temperature: float, max_tokens: int,
              stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout) -> int:
    history: list[Message] = _fresh_history(system)
    stdout.write(f"edge chat with {engine.info.id} — /reset to start over, /exit to leave\n")
    while True:
        stdout.write(PROMPT)
        stdout.flush()
        line = stdin.readline()
        if not line or line.strip() == "/exit":
            stdout.write("\n")
            return 0
        if line.strip() == "/reset":
            history = _fresh_history(system)
            continue
        if not line.strip():
            continue
        history.append(Message("user", (TextPart(line.rstrip("\n")),)))
        reply = _answer(engine, history, temperature, max_tokens, stdout)
        if reply is None:
            history.pop()
        else:
            history.append(Message("assistant", (TextPart(reply),)))


def _fresh_history(system: str | None) -> list[Message]:
    return [Message("system", (TextPart(system),))] if system else []


def _answer(engine: Engine, history: list[Message], temperature: float, max_tokens: int,
            stdout: TextIO) -> str | None:
    request = GenerationRequest(messages=tuple(history), sampling=SamplingParams(temperature=temperature),
                                max_tokens=max_tokens)
    try:
        prepared = engine.prepare(request)
    except EdgeError as error:
        stdout.write(f"[{error.message}]\n")
        return None
    stdout.write("model> ")
    parts = []
    for event in engine.generate(prepared):
        if isinstance(event, TextDelta):
            parts.append(event.text)
            stdout.write(event.text)
            stdout.flush()
        elif isinstance(event, Finish) and event.reason == "length":
            stdout.write(" [max tokens reached]")
    stdout.write("\n")
    return "".join(parts)
