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

import queue
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, TextIO

from edge.chat.backends import Backend, ChatError, LocalBackend, ModelCard, RemoteBackend
from edge.chat.conversation import Conversation, Options, image_data_url
from edge.chat.terminal import Answer, Leave, LiveAnswer, PlainAnswer, Terminal, rendered
from edge.core.events import Event

__all__ = ["Backend", "Chat", "ChatError", "LocalBackend", "ModelCard", "Options", "RemoteBackend", "chat_loop"]

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
            return LiveAnswer(self.terminal.console, answer)
        return PlainAnswer(self.terminal.console, answer)

    def _finished(self, answer: Answer) -> None:
        console = self.terminal.console
        if self.terminal.interactive and (answer.reasoning or answer.content):
            console.print(rendered(answer))  # once, complete: the scrollback holds each answer once
        notes = [answer.figures()]
        if answer.stopped:
            notes.insert(0, "[stopped]")
        elif answer.finish is not None and answer.finish.reason == "length":
            notes.insert(0, "[max tokens reached]")
        if answer.error:
            console.print(f"[error] {answer.error}", style="red", markup=False)
        if answer.finish is not None or answer.stopped:
            self.terminal.say(" · ".join(notes))


def chat_loop(backend: Backend, *, system: str | None = None, options: Options | None = None, thinking: bool = True,
              history_file: Path | None = None, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout) -> int:
    terminal = Terminal(stdin, stdout, history_file)
    return Chat(backend, terminal, Conversation(system=system, thinking=thinking), options or Options()).run()
