"""``edge usage``: the usage ledger by API key and day, as a table or JSON."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TextIO

from edge.server.metering import LEDGER_NAME, UsageRow, read_usage


class UsageError(ValueError):
    pass


def checked_day(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise UsageError(f"--since takes a date as YYYY-MM-DD, got {text!r}") from None


def format_table(rows: list[UsageRow]) -> str:
    header = ("day", "key", "messages", "prompt_tokens", "completion_tokens")
    cells = [header] + [(row.day, row.key, str(row.messages), str(row.prompt_tokens), str(row.completion_tokens))
                        for row in rows]
    widths = [max(len(line[column]) for line in cells) for column in range(len(header))]
    lines = ["  ".join(cell.ljust(width) if column < 2 else cell.rjust(width)
                       for column, (cell, width) in enumerate(zip(line, widths))) for line in cells]
    return "\n".join(lines)


def print_usage(cache_dir: Path, since: str | None, as_json: bool, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    ledger = cache_dir / LEDGER_NAME
    try:
        rows = read_usage(ledger, checked_day(since))
    except UsageError as error:
        print(f"edge: error: {error}", file=sys.stderr)
        return 2
    except sqlite3.Error as error:
        print(f"edge: error: cannot read the usage ledger {ledger}: {error}", file=sys.stderr)
        return 2
    if as_json:
        print(json.dumps([asdict(row) for row in rows], indent=2), file=out)
    elif rows:
        print(format_table(rows), file=out)
    else:
        print(f"no usage recorded in {ledger}" + (f" since {since}" if since else ""), file=out)
    return 0
