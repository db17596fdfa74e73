"""Hardware and build facts every report carries, so a number can be traced to the machine that made it."""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import sys
from pathlib import Path


def hardware_info() -> dict[str, object]:
    from edge.runtime.hardware import describe_machine

    info = describe_machine()
    info["memory_total_bytes"] = _memory_total()
    if hasattr(os, "getloadavg"):  # other work on a shared machine shows here and in the spreads
        info["load_average_at_start"] = [round(value, 2) for value in os.getloadavg()]
    return info


def build_info() -> dict[str, object]:
    import llama_cpp
    import numpy

    from edge import __version__

    return {"edge": __version__, "llama_cpp_python": llama_cpp.__version__, "python": platform.python_version(),
            "numpy": numpy.__version__, "gguf": _version("gguf")}


def run_info() -> dict[str, object]:
    return {"created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": shlex.join([*_program(sys.argv[0]), *sys.argv[1:]])}


def _program(arg0: str) -> list[str]:
    """``edge`` whether started as the console script or ``python -m edge.cli``; ``edge bench`` for
    ``python -m edge.bench`` (whose arguments start after ``bench``)."""
    path = Path(arg0)
    if path.name == "__main__.py" and path.parent.name == "bench":
        return ["edge", "bench"]
    return ["edge"] if path.name in ("edge", "cli.py") else [path.name]


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


def _memory_total() -> int:
    try:
        with open("/proc/meminfo", encoding="utf-8") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
