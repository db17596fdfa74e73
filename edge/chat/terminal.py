"""The terminal: prompt_toolkit reads lines (editing, history), rich draws answers (markdown, the thought
dimmed). Piped input and output get plain lines and text instead, so scripts can drive ``edge chat``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TextIO

from edge.core.events import Event, Finish, ReasoningDelta, TextDelta


class Leave(Exception):
    """The user asked to leave (a second Ctrl-C, Ctrl-D, /exit)."""


class Terminal:
    """Interactive: prompt_toolkit for input, rich for output. Plain: lines in, text out (pipes, scripts)."""

    def __init__(self, stdin: TextIO, stdout: TextIO, history_file: Path | None):
        from rich.console import Console

        self.interactive = stdin.isatty() and stdout.isatty()
        self.stdin = stdin
        self.console = Console(file=stdout, highlight=False, soft_wrap=False,
                               force_terminal=self.interactive or None)
        self.session = self._session(history_file) if self.interactive else None

    @staticmethod
    def _session(history_file: Path | None):
        from prompt_toolkit import PromptSession
        from prompt_toolkit.history import FileHistory, InMemoryHistory

        history = InMemoryHistory()
        if history_file is not None:
            try:
                history_file.parent.mkdir(parents=True, exist_ok=True)
                history = FileHistory(str(history_file))
            except OSError:
                pass  # a read-only home: history for this session only
        return PromptSession(history=history)

    def read(self, prompt: str = "you> ") -> str:
        """The next line; Leave on Ctrl-C, Ctrl-D or the end of the input."""
        if self.session is not None:
            try:
                return self.session.prompt(prompt)
            except (KeyboardInterrupt, EOFError):
                raise Leave from None
        self.console.file.write(prompt)
        self.console.file.flush()
        line = self.stdin.readline()
        if not line:
            raise Leave
        return line.rstrip("\n")

    def confirm(self, question: str) -> bool:
        if not self.interactive:
            return True  # nobody to ask: a script that says /reset means it
        try:
            return self.read(f"{question} [y/N] ").strip().lower() in ("y", "yes")
        except Leave:
            return False

    def say(self, text: str, style: str = "dim") -> None:
        self.console.print(text, style=style, markup=False)


@dataclass
class Answer:
    reasoning: str = ""
    content: str = ""
    finish: Finish | None = None
    stopped: bool = False
    error: str | None = None
    started: float = field(default_factory=time.monotonic)
    first_token: float | None = None
    ended: float | None = None
    tokens_seen: int = 0

    def add(self, event: Event) -> None:
        if isinstance(event, (TextDelta, ReasoningDelta)):
            self.first_token = self.first_token or time.monotonic()
            self.tokens_seen += 1
        if isinstance(event, TextDelta):
            self.content += event.text
        elif isinstance(event, ReasoningDelta):
            self.reasoning += event.text
        elif isinstance(event, Finish):
            self.finish = event

    def figures(self) -> str:
        end = self.ended or time.monotonic()
        tokens = self.finish.usage.completion_tokens if self.finish and self.finish.usage.completion_tokens else self.tokens_seen
        parts = [f"{tokens} tokens"]
        if self.first_token is not None:
            if tokens > 1 and end > self.first_token:
                parts.append(f"{(tokens - 1) / (end - self.first_token):.1f} tok/s")
            parts.append(f"first token {self.first_token - self.started:.2f} s")
        return " · ".join(parts)


def rendered(answer: Answer):
    """The thought dimmed and in italics, then the answer as markdown."""
    from rich.console import Group
    from rich.markdown import Markdown
    from rich.text import Text

    parts = []
    if answer.reasoning:
        parts.append(Text(answer.reasoning.strip(), style="dim italic"))
    if answer.content:
        parts.append(Markdown(answer.content))
    return Group(*parts)


class LiveAnswer:
    """While an answer streams: its last lines, the thought dimmed, and a status line, redrawn in place.
    The whole answer is printed once it is complete, so the scrollback holds it exactly once."""

    def __init__(self, console, answer: Answer):
        from rich.live import Live

        self.console = console
        self.answer = answer
        self.live = Live(console=console, transient=True, refresh_per_second=12, vertical_overflow="crop",
                         get_renderable=self._renderable)

    def _renderable(self):
        from rich.text import Text

        answer = self.answer
        state = "stopping" if answer.stopped else "thinking" if answer.reasoning and not answer.content else "generating"
        status = Text(f"{state}… {answer.tokens_seen} tokens (Ctrl-C stops)", style="dim")
        return _Tail(rendered(answer), status)

    def __enter__(self) -> Callable[[], None]:
        self.live.__enter__()
        return lambda: None  # Live redraws from get_renderable on its own clock

    def __exit__(self, *exc) -> None:
        self.live.__exit__(*exc)


class _Tail:
    """The bottom of a renderable that fits the screen above a status line (Live cannot scroll back)."""

    def __init__(self, body, status):
        self.body = body
        self.status = status

    def __rich_console__(self, console, options):
        from rich.segment import Segment

        room = max(1, (options.height or console.height) - 2)
        lines = console.render_lines(self.body, options.update(height=None), pad=False)
        for line in lines[-room:]:
            yield from line
            yield Segment.line()
        yield self.status


class PlainAnswer:
    """Piped output: the answer's text as it arrives, after ``model> ``; no thought, no escapes."""

    def __init__(self, console, answer: Answer):
        self.file = console.file
        self.answer = answer
        self.written = 0

    def __enter__(self) -> Callable[[], None]:
        self.file.write("model> ")
        return self._write

    def _write(self) -> None:
        self.file.write(self.answer.content[self.written:])
        self.file.flush()
        self.written = len(self.answer.content)

    def __exit__(self, *exc) -> None:
        self.file.write("\n")
        self.file.flush()
