"""tqdm progress bars on stderr for the long steps, silent when asked (tests, pipes)."""

from __future__ import annotations

from typing import Iterable, TypeVar

T = TypeVar("T")


def bar(items: Iterable[T], enabled: bool, description: str, unit: str = "it") -> Iterable[T]:
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=description, unit=unit, leave=False)
