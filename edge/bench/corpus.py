"""The evaluation text: a file the user passes, or a default that every Python installation carries.

Default: the English prose of the Python Language Reference as shipped in the standard library module
``pydoc_data.topics`` (the text ``help("topics")`` shows). It is real, human-written English, present
offline on every machine with Python, and licensed under the PSF License Agreement (Python
Software Foundation License Version 2), the license of the Python documentation. Only prose paragraphs
are kept: indented blocks (code, grammar rules) and heading underlines are dropped. The text differs a
little between Python versions, so a report records the Python version and the corpus' sha256.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

from edge.bench.errors import BenchError

DEFAULT_SOURCE = "Python Language Reference prose (stdlib pydoc_data.topics)"
DEFAULT_LICENSE = "PSF License Agreement (Python Software Foundation License Version 2)"
_HEADING_MARKS = set("*=-~^\"'#")


@dataclass(frozen=True)
class Corpus:
    text: str
    source: str
    license: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    def describe(self) -> dict[str, object]:
        return {"source": self.source, "license": self.license, "sha256": self.sha256, "chars": len(self.text)}


def load_corpus(path: str | Path | None = None) -> Corpus:
    """The user's UTF-8 text file, or the default prose when ``path`` is None."""
    if path is None:
        return default_corpus()
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"--corpus {path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise BenchError(f"--corpus {path}: not UTF-8 text ({exc})") from exc
    if len(text.split()) < 50:
        raise BenchError(f"--corpus {path}: too short to measure anything (fewer than 50 words)")
    return Corpus(text, f"file {path}", "as stated by the file's owner")


def default_corpus() -> Corpus:
    from pydoc_data.topics import topics

    text = "\n\n".join(_prose(topics[key]) for key in sorted(topics))
    version = ".".join(map(str, sys.version_info[:3]))
    return Corpus(text, f"{DEFAULT_SOURCE}, Python {version}", DEFAULT_LICENSE)


def _prose(section: str) -> str:
    """Keep unindented paragraphs that are sentences, not headings, code or grammar."""
    kept = []
    for paragraph in section.split("\n\n"):
        lines = [line for line in paragraph.splitlines() if line.strip()]
        if not lines or any(line.startswith((" ", "\t")) for line in lines):
            continue
        lines = [line for line in lines if not set(line.strip()) <= _HEADING_MARKS]
        text = " ".join(lines)
        if len(text.split()) >= 8:
            kept.append(text)
    return "\n\n".join(kept)
