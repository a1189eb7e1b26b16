"""The suite's own machinery: arrays shared by the pytest-xdist workers of one run."""

from __future__ import annotations

import numpy as np

from tests.conftest import computed_once


def test_computed_once_computes_for_the_first_worker_and_loads_for_the_others(tmp_path_factory, tmp_path,
                                                                             monkeypatch):
    calls = []

    def compute():
        calls.append(1)
        return {"features": np.arange(6, dtype=np.float32).reshape(2, 3)}

    # In tmp_path, not the default folder: without real workers that default would be the folder of all runs.
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    first = computed_once(tmp_path_factory, "shared", compute, tmp_path)
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    second = computed_once(tmp_path_factory, "shared", compute, tmp_path)
    assert calls == [1]  # computed once, loaded the second time
    assert second["features"].dtype == np.float32 and np.array_equal(first["features"], second["features"])
    assert (tmp_path / "shared.npz").is_file() and not list(tmp_path.glob(".*partial*"))


def test_without_workers_nothing_is_shared(tmp_path_factory, monkeypatch):
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    calls = []
    for _ in range(2):
        computed_once(tmp_path_factory, "test_unshared", lambda: calls.append(1) or {"x": np.zeros(1)})
    assert calls == [1, 1]
