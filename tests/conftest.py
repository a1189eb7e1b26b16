"""Shared fixtures: synthetic image trees for fast tests, the shared photo set for slow ones."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests import ROOT

SHARED_DATA = ROOT.parent / "shared" / "datasets" / "cats_vs_dogs"


def pytest_configure(config):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def pytest_collection_modifyitems(config, items):
    """The slow files first, the longest first (by their tests' ``slow(seconds=N)``, measured alone), then
    the rest in file order: on `make test`'s workers (pytest-xdist, a file per worker at a time) the long
    files start at once and the run ends on short ones, not on one worker finishing a long file alone."""
    def file_of(item) -> str:
        return item.nodeid.split("::")[0]

    seconds: dict[str, float] = {}
    for item in items:
        if (mark := item.get_closest_marker("slow")) is not None:
            seconds[file_of(item)] = seconds.get(file_of(item), 0.0) + mark.kwargs.get("seconds", 0.0)
    rank = {path: i for i, path in enumerate(sorted(seconds, key=lambda path: -seconds[path]))}
    items.sort(key=lambda item: rank.get(file_of(item), len(rank)))


def computed_once(tmp_path_factory, name: str, compute: Callable[[], dict[str, np.ndarray]],
                  root: Path | None = None) -> dict[str, np.ndarray]:
    """Arrays that a session fixture computes once per test run, shared by `make test`'s pytest-xdist
    workers: the first worker to ask computes them under a lock and saves them in ``root``, by default the
    run's own temporary folder (new each run, so nothing carries over to the next); the others wait and load
    them. Without workers they are computed in the process."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return compute()
    root = root or tmp_path_factory.getbasetemp().parent  # under xdist: this run's folder, shared by its workers
    path = root / f"{name}.npz"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not path.is_file():
            arrays = compute()
            partial = root / f".{name}.partial.npz"
            np.savez(partial, **arrays)
            partial.replace(path)
            return arrays
    with np.load(path) as saved:
        return {key: saved[key] for key in saved.files}


def write_image(path: Path, rgb: tuple[int, int, int], size=(40, 30), seed=0, fmt=None) -> Path:
    """A noisy solid-colour image: classes differ by colour, images within a class by noise."""
    rng = np.random.default_rng(seed)
    array = np.clip(np.array(rgb, np.int16) + rng.integers(-20, 21, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt)
    return path


COLOURS = {"cat": (200, 60, 40), "dog": (40, 80, 200), "fox": (60, 200, 60)}


def make_tree(root: Path, per_class: dict[str, int], split: str | None = None, start_seed: int = 0) -> Path:
    """class folders (under ``split`` if given) of synthetic JPEGs; returns root."""
    base = root / split if split else root
    seed = start_seed
    for name, count in per_class.items():
        for i in range(count):
            write_image(base / name / f"{name}.{i}.jpg", COLOURS[name], seed=seed)
            seed += 1
    return root


@pytest.fixture
def tiny_tree(tmp_path: Path) -> Path:
    """train/ and test/ with cat and dog folders of synthetic images."""
    root = tmp_path / "data"
    make_tree(root, {"cat": 12, "dog": 8}, "train")
    make_tree(root, {"cat": 4, "dog": 4}, "test", start_seed=100)
    return root


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "train").is_dir():
        pytest.skip(f"shared data set not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def shared_data_optional() -> Path | None:
    """The shared photo set if it is there (tests that also run on synthetic images use it as extra)."""
    return SHARED_DATA if (SHARED_DATA / "test").is_dir() else None


@pytest.fixture(scope="session")
def colour_models(tmp_path_factory) -> dict[str, Path]:
    """The colour model (tests/tiny_models.py) as float, int8-I/O and uint8-I/O TFLite files.

    Each file has the metadata.json a device would get beside it. Keys: "float", "int8", "uint8".
    """
    import json

    from convert.config import IOType
    from convert.tflite.export import ExportContext, Target, export
    from runtime.metadata import METADATA_FILE, ModelMetadata
    from runtime.preprocess import InputSpec
    from tests.tiny_models import COLOUR_LABELS, COLOUR_SIZE, colour_calibration, colour_classifier

    model = colour_classifier()
    metadata = ModelMetadata(labels=COLOUR_LABELS, input=InputSpec(COLOUR_SIZE, COLOUR_SIZE)).to_dict()
    paths = {}
    for io_type in (IOType.INT8, IOType.UINT8):
        out = tmp_path_factory.mktemp(f"colour_{io_type.value}")
        ctx = ExportContext(model=model, out_dir=out, work_dir=out, calibration=colour_calibration(), io_type=io_type)
        written = export(ctx, [Target.TFLITE_FLOAT, Target.TFLITE_INT8])
        (out / METADATA_FILE).write_text(json.dumps(metadata), encoding="utf-8")
        paths[io_type.value] = written[Target.TFLITE_INT8]
        paths.setdefault("float", written[Target.TFLITE_FLOAT])
    return paths
