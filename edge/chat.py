"""``edge chat``: a conversation in the terminal, with the model loaded here or with a running server.

In a terminal it edits lines and keeps their history (prompt_toolkit: Up recalls, Ctrl-R searches), renders
answers as markdown with the thought dimmed above them (rich), and prints tokens/s after each answer.
Ctrl-C stops the answer being written (the generation is cancelled, the conversation goes on); at the
prompt Ctrl-C or Ctrl-D leaves. Lines that start with ``/`` are commands (``/help``), never sent.

Both backends take the same Chat Completions request body and yield the core's events: in-process it goes
through the OpenAI chat translator into ``engine.prepare`` / ``engine.generate`` (one generation path with
the server), with ``--url`` it is streamed from ``/v1/chat/completions``. Piped input gets plain text.
"""

from __future__ import annotations

import base64
import json
import mimetypes
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, TextIO

from edge.core.events import Event, Finish, ReasoningDelta, TextDelta, Usage
from edge.errors import EdgeError

HELP = """\
/help              this list
/reset             forget the conversation (asks first)
/system TEXT       set the system prompt; /system alone shows it, /system clear removes it
/think on|off      let the model think before it answers (models that can)
/image PATH        attach an image to your next message (models with a vision projector)
/save FILE         write the conversation as JSON (Chat Completions messages)
/load FILE         read a conversation saved by /save or exported from the page at /
/exit              leave (Ctrl-D too; Ctrl-C leaves at the prompt, stops an answer while it streams)
//text             send a message that starts with "/"
"""


# -- backends --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelCard:
    id: str
    vision: bool
    thinking: bool


class Backend(Protocol):
    card: ModelCard

    def stream(self, body: dict[str, Any], cancelled: threading.Event) -> Iterator[Event]: ...


class ChatError(Exception):
    """A request the model or the server refused; shown, and the conversation goes on."""


class LocalBackend:
    """The model in this process, through the same translator and engine calls as the server."""

    def __init__(self, engine, image_policy):
        from edge.api.context import ServingContext

        self.engine = engine
        self.serving = ServingContext(engine.chat_format, engine.model.n_vocab(), engine.vision is not None,
                                      image_policy)
        self.card = ModelCard(engine.info.id, engine.vision is not None, engine.chat_format.supports_thinking)

    def stream(self, body: dict[str, Any], cancelled: threading.Event) -> Iterator[Event]:
        from edge.api.openai_chat import ChatCompletionRequest, to_generation_request
        from edge.api.validation import validate_body

        try:
            request = to_generation_request(validate_body(ChatCompletionRequest, body), self.serving)
            prepared = self.engine.prepare(request)
        except EdgeError as error:
            raise ChatError(_described(error.message, error.param)) from None
        yield from self.engine.generate(prepared, cancelled)


class RemoteBackend:
    """A running edge (or any OpenAI-compatible server), over streamed Chat Completions."""

    def __init__(self, url: str, api_key: str | None, model: str | None):
        import httpx

        self.url = url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(timeout=httpx.Timeout(30, read=600), headers=self.headers)
        models = self._get("/v1/models")["data"]
        chosen = next((m for m in models if m["id"] == model), None) if model else (models[0] if models else None)
        if chosen is None:
            raise ChatError(f"{self.url} serves {[m['id'] for m in models]}, not {model!r}")
        can = chosen.get("capabilities", {})
        self.card = ModelCard(chosen["id"], bool(can.get("vision")), bool(can.get("thinking")))

    def _get(self, path: str) -> Any:
        import httpx

        try:
            response = self.client.get(self.url + path)
        except httpx.HTTPError as error:
            raise ChatError(f"cannot reach {self.url}: {error}") from None
        if response.status_code != 200:
            raise ChatError(_error_text(response.status_code, response.read()))
        return response.json()

    def stream(self, body: dict[str, Any], cancelled: threading.Event) -> Iterator[Event]:
        import httpx

        reason, usage = "stop", Usage(0, 0)
        try:
            with self.client.stream("POST", self.url + "/v1/chat/completions", json=body) as response:
                if response.status_code != 200:
                    raise ChatError(_error_text(response.status_code, response.read()))
                for chunk in _sse_chunks(response.iter_lines()):
                    if cancelled.is_set():
                        reason = "cancelled"
                        break  # leaving the block closes the connection: the server cancels
                    if chunk.get("error"):
                        raise ChatError(_described(chunk["error"].get("message", "error"), chunk["error"].get("param")))
                    if chunk.get("usage"):
                        usage = _usage(chunk["usage"])
                    for choice in chunk.get("choices", []):
                        delta = choice.get("delta") or {}
                        if delta.get("reasoning_content"):
                            yield ReasoningDelta(delta["reasoning_content"])
                        if delta.get("content"):
                            yield TextDelta(delta["content"])
                        reason = choice.get("finish_reason") or reason
        except httpx.HTTPError as error:
            raise ChatError(f"the connection to {self.url} failed: {error}") from None
        yield Finish(reason, usage)


def _sse_chunks(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    for line in lines:
        if line.startswith("data:"):
            data = line[5:].strip()
            if data == "[DONE]":
                return
            yield json.loads(data)


def _usage(usage: dict[str, Any]) -> Usage:
    return Usage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0),
                 (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0),
                 (usage.get("completion_tokens_details") or {}).get("reasoning_tokens", 0))


def _error_text(status: int, body: bytes) -> str:
    try:
        error = json.loads(body)["error"]
        return _described(f"{status}: {error['message']}", error.get("param"))
    except (ValueError, KeyError, TypeError):
        return f"{status}: {body[:200].decode(errors='replace')}"


def _described(message: str, param: str | None) -> str:
    return f"{message} (parameter {param})" if param else message


# -- the conversation ------------------------------------------------------------------------------

@dataclass
class Options:
    temperature: float = 0.7
    max_tokens: int = 512
    seed: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # any other request field (--extra-body)


@dataclass
class Conversation:
    """Chat Completions messages, the system prompt, the thinking switch and the images waiting to be sent."""

    system: str | None = None
    thinking: bool = True
    messages: list[dict[str, Any]] = field(default_factory=list)
    images: list[str] = field(default_factory=list)  # data: URLs for the next user message

    def request(self, card: ModelCard, options: Options) -> dict[str, Any]:
        system = [{"role": "system", "content": self.system}] if self.system else []
        body: dict[str, Any] = {"model": card.id, "messages": system + self.messages, "stream": True,
                                "stream_options": {"include_usage": True}, "max_tokens": options.max_tokens,
                                "temperature": options.temperature}
        if options.seed is not None:
            body["seed"] = options.seed
        if card.thinking:
            body["enable_thinking"] = self.thinking
        return {**body, **options.extra}

    def add_user(self, text: str) -> None:
        if self.images:
            parts = [{"type": "text", "text": text}] + [{"type": "image_url", "image_url": {"url": url}}
                                                         for url in self.images]
            self.messages.append({"role": "user", "content": parts})
            self.images = []
        else:
            self.messages.append({"role": "user", "content": text})

    def to_json(self) -> str:
        system = [{"role": "system", "content": self.system}] if self.system else []
        return json.dumps({"messages": system + self.messages, "enable_thinking": self.thinking},
                          ensure_ascii=False, indent=2)

    @classmethod
    def from_json(cls, text: str) -> "Conversation":
        """A /save file, or an export of the page at / (its first conversation, the branch it showed)."""
        data = json.loads(text)
        if isinstance(data, dict) and data.get("format") == "edge-chat":
            return cls._from_page_export(data)
        if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
            raise ValueError('expected {"messages": [...]} or an export of the page')
        system = [m for m in data["messages"] if m.get("role") == "system"]
        rest = [m for m in data["messages"] if m.get("role") in ("user", "assistant", "tool")]
        return cls(system=system[0]["content"] if system else None, thinking=data.get("enable_thinking", True),
                   messages=rest)

    @classmethod
    def _from_page_export(cls, data: dict[str, Any]) -> "Conversation":
        conversations = data.get("conversations") or []
        if not conversations:
            raise ValueError("the export holds no conversation")
        stored = conversations[0]["messages"]
        shown: list[dict[str, Any]] = []
        current = conversations[0].get("leaf")
        while current:
            shown.insert(0, stored[current])
            current = stored[current].get("parent")
        conversation = cls()
        for message in shown:
            if message["role"] == "user":
                conversation.images = list(message.get("images") or [])
                conversation.add_user(message.get("content", ""))
            elif message["role"] == "assistant" and message.get("content"):
                conversation.messages.append({"role": "assistant", "content": message["content"]})
        return conversation


def image_data_url(path: Path) -> str:
    media_type = mimetypes.guess_type(path.name)[0] or "image/png"
    return f"data:{media_type};base64,{base64.b64encode(path.read_bytes()).decode()}"


# -- the terminal ----------------------------------------------------------------------------------

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


_END = object()


def _produce(events: Callable[[], Iterator[Event]], sink: queue.Queue) -> None:
    try:
        for event in events():
            sink.put(event)
    except ChatError as error:
        sink.put(error)
    except Exception as error:  # noqa: BLE001 - shown to the user, the chat goes on
        sink.put(ChatError(f"{type(error).__name__}: {error}"))
    finally:
        sink.put(_END)


class Chat:
    def __init__(self, backend: Backend, terminal: Terminal, conversation: Conversation, options: Options):
        self.backend = backend
        self.terminal = terminal
        self.conversation = conversation
        self.options = options
        if not backend.card.thinking:
            conversation.thinking = False

    def run(self) -> int:
        card = self.backend.card
        abilities = ", ".join(["text"] + [name for name, on in (("vision", card.vision), ("thinking", card.thinking)) if on])
        self.terminal.say(f"edge chat with {card.id} ({abilities}) — /help lists the commands, Ctrl-D leaves")
        try:
            while True:
                line = self.terminal.read()
                if line.startswith("/") and not line.startswith("//"):
                    self.command(line)
                elif line.strip():
                    self.ask(line[1:] if line.startswith("//") else line)
        except (Leave, KeyboardInterrupt):  # a Ctrl-C outside an answer and outside the prompt leaves too
            self.terminal.console.print()
            return 0

    # -- commands ------------------------------------------------------------------------------

    def command(self, line: str) -> None:
        name, _, argument = line.partition(" ")
        argument = argument.strip()
        handler = {"/help": self._help, "/reset": self._reset, "/system": self._system, "/think": self._think,
                   "/image": self._image, "/save": self._save, "/load": self._load,
                   "/exit": self._exit, "/quit": self._exit}.get(name)
        if handler is None:
            self.terminal.say(f"unknown command {name}; /help lists them (//text sends text starting with /)")
        else:
            handler(argument)

    def _help(self, _: str) -> None:
        self.terminal.say(HELP.rstrip(), style="")

    def _reset(self, _: str) -> None:
        count = len(self.conversation.messages)
        if count and not self.terminal.confirm(f"Forget the {count} messages of this conversation?"):
            self.terminal.say("kept")
            return
        self.conversation.messages.clear()
        self.conversation.images.clear()
        self.terminal.say("the conversation starts over")

    def _system(self, text: str) -> None:
        if not text:
            self.terminal.say(f"system prompt: {self.conversation.system!r}" if self.conversation.system
                              else "no system prompt")
        elif text == "clear":
            self.conversation.system = None
            self.terminal.say("system prompt removed")
        else:
            self.conversation.system = text
            self.terminal.say("system prompt set")

    def _think(self, switch: str) -> None:
        if not self.backend.card.thinking:
            self.terminal.say(f"{self.backend.card.id} cannot think")
        elif switch in ("on", "off"):
            self.conversation.thinking = switch == "on"
            self.terminal.say(f"thinking {switch}")
        else:
            self.terminal.say(f"thinking is {'on' if self.conversation.thinking else 'off'}; /think on or /think off")

    def _image(self, argument: str) -> None:
        if not self.backend.card.vision:
            self.terminal.say(f"{self.backend.card.id} has no vision projector: it cannot read images")
            return
        path = Path(argument).expanduser()
        if not argument or not path.is_file():
            self.terminal.say(f"no such file: {argument!r}" if argument else "/image PATH")
            return
        self.conversation.images.append(image_data_url(path))
        self.terminal.say(f"{path.name} ({path.stat().st_size // 1024} KiB) goes with your next message")

    def _save(self, argument: str) -> None:
        if not argument:
            self.terminal.say("/save FILE")
            return
        try:
            Path(argument).expanduser().write_text(self.conversation.to_json())
        except OSError as error:
            self.terminal.say(f"cannot save: {error}")
            return
        self.terminal.say(f"saved {len(self.conversation.messages)} messages to {argument}")

    def _load(self, argument: str) -> None:
        try:
            loaded = Conversation.from_json(Path(argument).expanduser().read_text())
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            self.terminal.say(f"cannot load {argument!r}: {error}")
            return
        loaded.thinking = loaded.thinking and self.backend.card.thinking
        self.conversation = loaded
        for message in loaded.messages:
            self._replay(message)
        self.terminal.say(f"loaded {len(loaded.messages)} messages from {argument}")

    def _replay(self, message: dict[str, Any]) -> None:
        from rich.markdown import Markdown

        content = message.get("content") or ""
        if message["role"] == "user":
            text = content if isinstance(content, str) else " ".join(
                part.get("text", "[image]") if part.get("type") == "text" else "[image]" for part in content)
            self.terminal.console.print(f"you> {text}", markup=False, highlight=False)
        elif message["role"] == "assistant":
            self.terminal.console.print(Markdown(content))

    def _exit(self, _: str) -> None:
        raise Leave

    # -- answering -----------------------------------------------------------------------------

    def ask(self, text: str) -> None:
        self.conversation.add_user(text)
        answer = self.stream(self.conversation.request(self.backend.card, self.options))
        if answer.error and not answer.content:
            self.conversation.messages.pop()  # refused: the conversation is as it was
        elif answer.content:
            self.conversation.messages.append({"role": "assistant", "content": answer.content})

    def stream(self, body: dict[str, Any]) -> Answer:
        """Runs the generation in a thread and shows it here; Ctrl-C stops it, a second one leaves."""
        cancelled = threading.Event()
        events: queue.Queue = queue.Queue()
        worker = threading.Thread(target=_produce, args=(lambda: self.backend.stream(body, cancelled), events),
                                  daemon=True, name="edge-chat-generate")
        answer = Answer()
        worker.start()
        with self._display(answer) as refresh:
            while True:
                try:
                    item = events.get(timeout=0.1)
                    if item is _END:
                        break
                    if isinstance(item, ChatError):
                        answer.error = str(item)
                    else:
                        answer.add(item)
                    refresh()
                except queue.Empty:
                    continue
                except KeyboardInterrupt:
                    if answer.stopped:
                        raise Leave from None
                    answer.stopped = True
                    cancelled.set()
        answer.ended = time.monotonic()
        worker.join()
        self._finished(answer)
        return answer

    def _display(self, answer: Answer):
        if self.terminal.interactive:
            return _LiveAnswer(self.terminal.console, answer)
        return _PlainAnswer(self.terminal.console, answer)

    def _finished(self, answer: Answer) -> None:
        from rich.console import Group
        from rich.markdown import Markdown
        from rich.text import Text

        console = self.terminal.console
        if self.terminal.interactive:
            parts = []
            if answer.reasoning:
                parts.append(Text(answer.reasoning.strip(), style="dim italic"))
            if answer.content:
                parts.append(Markdown(answer.content))
            if parts:
                console.print(Group(*parts))
        notes = [answer.figures()]
        if answer.stopped:
            notes.insert(0, "[stopped]")
        elif answer.finish is not None and answer.finish.reason == "length":
            notes.insert(0, "[max tokens reached]")
        if answer.error:
            console.print(f"[error] {answer.error}", style="red", markup=False)
        if answer.finish is not None or answer.stopped:
            self.terminal.say(" · ".join(notes))


class _LiveAnswer:
    """While an answer streams: its last lines, the thought dimmed, and a status line, redrawn in place.
    The whole answer is printed once it is complete, so the scrollback holds it exactly once."""

    def __init__(self, console, answer: Answer):
        from rich.live import Live

        self.console = console
        self.answer = answer
        self.live = Live(console=console, transient=True, refresh_per_second=12, vertical_overflow="crop",
                         get_renderable=self._renderable)

    def _renderable(self):
        from rich.console import Group
        from rich.markdown import Markdown
        from rich.text import Text

        answer = self.answer
        parts = []
        if answer.reasoning:
            parts.append(Text(answer.reasoning.strip(), style="dim italic"))
        if answer.content:
            parts.append(Markdown(answer.content))
        state = "stopping" if answer.stopped else "thinking" if answer.reasoning and not answer.content else "generating"
        status = Text(f"{state}… {answer.tokens_seen} tokens (Ctrl-C stops)", style="dim")
        return _Tail(Group(*parts), status)

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


class _PlainAnswer:
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


def chat_loop(backend: Backend, *, system: str | None = None, options: Options | None = None, thinking: bool = True,
              history_file: Path | None = None, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout) -> int:
    terminal = Terminal(stdin, stdout, history_file)
    return Chat(backend, terminal, Conversation(system=system, thinking=thinking), options or Options()).run()
