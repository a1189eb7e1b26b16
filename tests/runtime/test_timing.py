"""runtime/timing.py: the one latency loop of every benchmark (behaviour only; no timed assertions)."""

from __future__ import annotations

import pytest

from runtime.timing import WARMUP_CALLS, time_calls


def test_warm_up_calls_are_made_and_not_timed():
    calls = []
    latency = time_calls(lambda: calls.append(1), runs=5)
    assert len(calls) == WARMUP_CALLS + 5 and latency.runs == 5
    assert latency.median_ms <= latency.p90_ms <= latency.p95_ms


def test_no_timed_run_is_refused():
    with pytest.raises(ValueError, match="at least one timed run"):
        time_calls(lambda: None, runs=0)
