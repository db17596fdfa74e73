"""Named API keys and the usage ledger: per key and day, successful messages and their tokens.

As the hosted API bills "per successful message", a message is counted when its generation finished
(any finish reason but a cancellation) and its answer was delivered as a 2xx. The ledger is SQLite in the
cache folder, written from one thread so the event loop never waits on the disk; losing it (deleted,
unwritable, corrupt) is logged and never stops serving: the next write reopens or recreates it.
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
import os
import re
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("edge.server")

LEDGER_NAME = "usage.sqlite3"
ANONYMOUS = "anonymous"  # the key name of requests to a server that needs no key
DEFAULT_KEY_NAME = "default"  # the name of a key given with --api-key or EDGE_API_KEY
_KEY_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


class KeysFileError(ValueError):
    pass


@dataclass(frozen=True)
class ApiKeys:
    """name -> key. Matching compares against every key in constant time, so timing tells nothing."""

    keys: dict[str, str]

    def name_for(self, presented: bytes) -> str | None:
        found = None
        for name, key in self.keys.items():
            if hmac.compare_digest(presented, key.encode()):
                found = name
        return found

    def __bool__(self) -> bool:
        return bool(self.keys)


def parse_keys_file(text: str, source: str) -> dict[str, str]:
    """``name=key`` lines; blank lines and ``#`` comments are skipped. Names label metrics and the ledger."""
    keys: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, separator, key = line.partition("=")
        name, key = name.strip(), key.strip()
        where = f"{source} line {number}"
        if not separator or not key:
            raise KeysFileError(f"{where}: expected name=key")
        if not _KEY_NAME.match(name):
            raise KeysFileError(f"{where}: a key name is 1-64 letters, digits or _.@-, got {name!r}")
        if name in keys:
            raise KeysFileError(f"{where}: the name {name!r} is used twice")
        if key in keys.values():
            raise KeysFileError(f"{where}: the key of {name!r} is also another name's key")
        keys[name] = key
    return keys


def load_keys(api_key: str | None, keys_file: Path | None) -> ApiKeys:
    keys = {}
    if keys_file is not None:
        try:
            keys = parse_keys_file(keys_file.read_text(encoding="utf-8"), str(keys_file))
        except (OSError, UnicodeDecodeError) as error:
            raise KeysFileError(f"cannot read the keys file {keys_file}: {error}") from None
        if not keys:
            raise KeysFileError(f"the keys file {keys_file} holds no key")
    if api_key:
        if DEFAULT_KEY_NAME in keys and keys[DEFAULT_KEY_NAME] != api_key:
            raise KeysFileError(f"the keys file names a key {DEFAULT_KEY_NAME!r}; --api-key would replace it")
        keys[DEFAULT_KEY_NAME] = api_key
    return ApiKeys(keys)


def utc_day(now: dt.datetime | None = None) -> str:
    return (now or dt.datetime.now(dt.timezone.utc)).date().isoformat()


_SCHEMA = """CREATE TABLE IF NOT EXISTS usage (
    day TEXT NOT NULL, key TEXT NOT NULL, messages INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, PRIMARY KEY (day, key))"""
_UPSERT = """INSERT INTO usage VALUES (?, ?, 1, ?, ?) ON CONFLICT (day, key) DO UPDATE SET
    messages = messages + 1, prompt_tokens = prompt_tokens + excluded.prompt_tokens,
    completion_tokens = completion_tokens + excluded.completion_tokens"""


class Ledger:
    def __init__(self, path: Path):
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edge-ledger")
        self._connection: sqlite3.Connection | None = None
        self._inode: tuple[int, int] | None = None
        self._failing = False

    def record(self, key: str, prompt_tokens: int, completion_tokens: int, day: str | None = None) -> None:
        """Queued to the ledger's thread; returns at once."""
        self._executor.submit(self._write, day or utc_day(), key, prompt_tokens, completion_tokens)

    def flush(self) -> None:
        """Waits for every queued write (tests, shutdown)."""
        self._executor.submit(lambda: None).result()

    def close(self) -> None:
        self._executor.submit(self._close)
        self._executor.shutdown(wait=True)

    def _write(self, day: str, key: str, prompt_tokens: int, completion_tokens: int) -> None:
        try:
            connection = self._open()
            with connection:
                connection.execute(_UPSERT, (day, key, prompt_tokens, completion_tokens))
        except (sqlite3.Error, OSError) as error:
            self._close()
            if not self._failing:  # one line per outage, not one per request
                log.warning("usage ledger %s cannot be written (%s); serving goes on, usage is kept in /metrics",
                            self.path, error)
            self._failing = True
            return
        if self._failing:
            log.info("usage ledger %s is written again", self.path)
            self._failing = False

    def _open(self) -> sqlite3.Connection:
        """The open connection while its file is still there; else the file is (re)created."""
        if self._connection is not None and self._inode == _inode(self.path):
            return self._connection
        self._close()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, check_same_thread=False)
        try:
            connection.execute(_SCHEMA)
        except sqlite3.Error:
            connection.close()
            raise
        self._connection, self._inode = connection, _inode(self.path)
        return connection

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
        self._connection, self._inode = None, None


def _inode(path: Path) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


@dataclass(frozen=True)
class UsageRow:
    day: str
    key: str
    messages: int
    prompt_tokens: int
    completion_tokens: int


def read_usage(path: Path, since: str | None = None) -> list[UsageRow]:
    """Rows by day then key; a ledger that does not exist yet has none."""
    if not path.exists():
        return []
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = connection.execute(
            "SELECT day, key, messages, prompt_tokens, completion_tokens FROM usage WHERE day >= ? "
            "ORDER BY day, key", (since or "",)).fetchall()
    finally:
        connection.close()
    return [UsageRow(*row) for row in rows]
