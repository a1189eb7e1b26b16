"""Choose calibration images, record them in a manifest, and load them through the runtime's preprocessing."""

from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from runtime.errors import ToolkitError
from runtime.preprocess import InputSpec, preprocess_file

MANIFEST_VERSION = 1


@dataclass(frozen=True)
class CalibrationItem:
    """One calibration image.

    Attributes:
        file: Path relative to the data root (POSIX separators).
        label: Its class name.
        sha256: Hash of the file's bytes, so a changed file is noticed when the manifest is reused.
    """

    file: str
    label: str
    sha256: str


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def select_calibration(
    samples: Sequence[tuple[Path, str]], count: int, seed: int, root: Path
) -> list[CalibrationItem]:
    """Picks ``count`` images stratified by class (proportional, at least one per class), reproducibly.

    Args:
        samples: (path, label) pairs to choose from: the training images.
        count: How many to pick.
        seed: Seed of the selection; the same samples, count and seed give the same list.
        root: Data root the manifest's paths are relative to.

    Returns:
        The chosen items, ordered by class then by file name.

    Raises:
        ToolkitError: Fewer images than asked for, or fewer than one per class.
    """
    by_label: dict[str, list[Path]] = defaultdict(list)
    for path, label in samples:
        by_label[label].append(path)
    if count > len(samples):
        raise ToolkitError(
            f"{root}: {count} calibration images asked for but only {len(samples)} training images exist; "
            "pass a smaller --calib (CALIB=) or add images"
        )
    if count < len(by_label):
        raise ToolkitError(f"--calib {count} is fewer than the {len(by_label)} classes; use at least one per class")
    rng = random.Random(seed)
    labels = sorted(by_label)
    # Largest-remainder apportionment: shares proportional to class size, summing exactly to count.
    exact = {label: count * len(by_label[label]) / len(samples) for label in labels}
    quota = {label: max(1, int(exact[label])) for label in labels}
    for label in sorted(labels, key=lambda name: exact[name] - int(exact[name]), reverse=True):
        if sum(quota.values()) >= count:
            break
        quota[label] += 1
    while sum(quota.values()) > count:
        largest = max(labels, key=lambda name: quota[name])
        quota[largest] -= 1
    chosen: list[CalibrationItem] = []
    for label in labels:
        paths = sorted(by_label[label])
        picked = sorted(rng.sample(paths, min(quota[label], len(paths))))
        chosen.extend(
            CalibrationItem(file=path.relative_to(root).as_posix(), label=label, sha256=file_sha256(path))
            for path in picked
        )
    return chosen


def write_manifest(items: Iterable[CalibrationItem], path: Path, root: Path, seed: int) -> Path:
    """Writes the manifest JSON (atomically) and returns its path."""
    items = list(items)
    payload = {
        "version": MANIFEST_VERSION,
        "data_root": str(root),
        "seed": seed,
        "count": len(items),
        "items": [asdict(item) for item in items],
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def read_manifest(path: str | Path) -> list[CalibrationItem]:
    """Reads a manifest written by :func:`write_manifest`.

    Raises:
        ToolkitError: Missing or malformed manifest.
    """
    path = Path(path)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        items = [CalibrationItem(**item) for item in payload["items"]]
    except (FileNotFoundError, IsADirectoryError):
        raise ToolkitError(f"{path}: calibration manifest not found; check --calib-manifest") from None
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as error:
        raise ToolkitError(f"{path}: malformed calibration manifest ({error!r}); regenerate it") from None
    if not items:
        raise ToolkitError(f"{path}: calibration manifest lists no images; regenerate it or drop --calib-manifest")
    if not all(isinstance(value, str) for item in items for value in (item.file, item.label, item.sha256)):
        raise ToolkitError(f"{path}: calibration manifest items need string file, label and sha256; regenerate it")
    return items


def load_calibration_images(items: Sequence[CalibrationItem], root: Path, spec: InputSpec,
                            progress: Callable[[Iterable], Iterable] = iter) -> np.ndarray:
    """Loads the manifest's images through the runtime's preprocessing, checking each file's hash.

    Args:
        items: The manifest's items.
        root: Data root the items' paths are relative to.
        spec: The model's input spec.
        progress: Wraps the item iterator (a progress bar); plain iteration by default.

    Returns:
        float32 array (N, H, W, 3) of model inputs.

    Raises:
        ToolkitError: A file is missing or its bytes changed since the manifest was written.
    """
    inputs = []
    for item in progress(items):
        path = root / item.file
        if not path.is_file():
            raise ToolkitError(f"{path}: calibration image in the manifest is missing; restore it or drop --calib-manifest")
        if file_sha256(path) != item.sha256:
            raise ToolkitError(f"{path}: file changed since the calibration manifest was written; regenerate the manifest")
        inputs.append(preprocess_file(path, spec))
    return np.stack(inputs).astype(np.float32)
