"""The harness's one error type: bad input the user can fix (a missing file, not a GGUF, an unreachable URL)."""

from __future__ import annotations


class BenchError(Exception):
    """A benchmark cannot run as asked; the message names the file, URL or flag at fault."""
