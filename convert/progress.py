"""Progress bars: live on a terminal, a line every few seconds in a log file (CI)."""

from __future__ import annotations

import sys
from typing import Iterable, Iterator, TypeVar

from runtime.cli import check_interrupted

T = TypeVar("T")
_LOG_INTERVAL_S = 15.0  # seconds between updates when stderr is not a terminal


def progress(iterable: Iterable[T], desc: str, total: int | None = None, unit: str = "img") -> Iterator[T]:
    """Iterates with a progress bar; each step is also a point where a swallowed interrupt is raised again."""
    from tqdm import tqdm

    interactive = sys.stderr.isatty()
    for item in tqdm(iterable, desc=desc, total=total, unit=unit, mininterval=0.1 if interactive else _LOG_INTERVAL_S,
                     ascii=not interactive):
        check_interrupted()
        yield item
