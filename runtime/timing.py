"""One latency measurement for every benchmark: warm-up calls, then timed calls, median and tail."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

WARMUP_CALLS = 3  # the first invokes allocate buffers and pack weights; they are not what a device sees later


@dataclass(frozen=True)
class Latency:
    """Wall-clock time of one call (``time.perf_counter``), over ``runs`` calls after the warm-up."""

    median_ms: float
    p90_ms: float
    p95_ms: float
    runs: int


def time_calls(call: Callable[[], object], runs: int, warmup: int = WARMUP_CALLS) -> Latency:
    """Calls ``call`` ``warmup`` times untimed, then ``runs`` times timed.

    Raises:
        ValueError: ``runs`` < 1.
    """
    if runs < 1:
        raise ValueError("time_calls needs at least one timed run")
    for _ in range(warmup):
        call()
    times_ms = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times_ms.append((time.perf_counter() - start) * 1000.0)
    return Latency(float(np.median(times_ms)), float(np.percentile(times_ms, 90)), float(np.percentile(times_ms, 95)),
                   runs)
