"""Class-per-folder image data sets: scan, split, decode, with bad files skipped and counted."""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from runtime.errors import ToolkitError
from runtime.preprocess import InputSpec, load_image_rgb, resize_rgb

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}

# The public archive the Keras tutorials use; only fetched when no local data exists.
PUBLIC_ARCHIVE_URL = "https://storage.googleapis.com/mledu-datasets/cats_and_dogs_filtered.zip"


@dataclass
class Split:
    """One split of a data set: files with integer labels, plus what was skipped."""

    paths: list[Path]
    labels: np.ndarray  # int64 indices into DataSet.classes
    skipped: Counter = field(default_factory=Counter)  # reason -> count


@dataclass
class DataSet:
    """A scanned data set.

    Attributes:
        root: The data root.
        classes: Class names in a stable (sorted) order; output index i is classes[i].
        train: Training split.
        test: Test split.
        layout: "train/test folders" or "single folder split with seed N".
    """

    root: Path
    classes: list[str]
    train: Split
    test: Split
    layout: str

    def fingerprint(self) -> str:
        """SHA-256 over every used file's relative path and size: changes when the data set does."""
        digest = hashlib.sha256()
        for split in (self.train, self.test):
            for path in split.paths:
                digest.update(f"{path.relative_to(self.root).as_posix()}\0{path.stat().st_size}\n".encode())
        return digest.hexdigest()


def _class_folders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _image_files(folder: Path) -> tuple[list[Path], Counter]:
    files, skipped = [], Counter()
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.is_dir():
            continue
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            skipped["not an image (suffix)"] += 1
        elif path.stat().st_size == 0:
            skipped["zero-byte file"] += 1
        else:
            files.append(path)
    return files, skipped


def _scan(folder: Path, classes: list[str]) -> Split:
    paths, labels, skipped = [], [], Counter()
    for index, name in enumerate(classes):
        class_dir = folder / name
        if not class_dir.is_dir():
            raise ToolkitError(f"{class_dir}: class folder missing (other splits have it); add it or remove the class")
        files, class_skipped = _image_files(class_dir)
        skipped.update(class_skipped)
        if not files:
            raise ToolkitError(f"{class_dir}: class folder holds no images; add images or remove the folder")
        paths.extend(files)
        labels.extend([index] * len(files))
    return Split(paths=paths, labels=np.asarray(labels, np.int64), skipped=skipped)


def scan_dataset(root: Path, test_fraction: float = 0.2, seed: int = 0) -> DataSet:
    """Scans a data root: ``train/`` + ``test/`` with class folders, or class folders split with a seed.

    Raises:
        ToolkitError: Missing root, fewer than two classes, or an empty class folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise ToolkitError(f"{root}: data folder not found; pass DATA= (a folder of class folders, or train/ and test/)")
    if (root / "train").is_dir() and (root / "test").is_dir():
        classes = [p.name for p in _class_folders(root / "train")]
        _check_classes(root / "train", classes)
        test_classes = [p.name for p in _class_folders(root / "test")]
        if test_classes != classes:
            raise ToolkitError(
                f"{root / 'test'}: classes {test_classes} differ from train's {classes}; make both hold the same class folders"
            )
        return DataSet(root, classes, _scan(root / "train", classes), _scan(root / "test", classes), "train/test folders")
    classes = [p.name for p in _class_folders(root)]
    _check_classes(root, classes)
    everything = _scan(root, classes)
    rng = random.Random(seed)
    train_idx, test_idx = [], []
    for label in range(len(classes)):
        members = [i for i, value in enumerate(everything.labels) if value == label]
        rng.shuffle(members)
        n_test = max(1, round(len(members) * test_fraction))
        if n_test >= len(members):
            raise ToolkitError(f"{root / classes[label]}: too few images to split off a test set; add images")
        test_idx.extend(sorted(members[:n_test]))
        train_idx.extend(sorted(members[n_test:]))

    def subset(indices: list[int], skipped: Counter) -> Split:
        return Split([everything.paths[i] for i in indices], everything.labels[indices], skipped)

    return DataSet(
        root, classes, subset(train_idx, everything.skipped), subset(test_idx, Counter()),
        f"single folder split with seed {seed} (test fraction {test_fraction})",
    )


def _check_classes(folder: Path, classes: list[str]) -> None:
    if len(classes) < 2:
        raise ToolkitError(
            f"{folder}: found {len(classes)} class folder(s) {classes}; a classifier needs at least two class folders"
        )


def limit_per_class(split: Split, limit: int | None, seed: int) -> Split:
    """Keeps at most ``limit`` files per class, chosen with a seed (for quick runs and tests)."""
    if limit is None:
        return split
    rng = random.Random(seed)
    keep: list[int] = []
    for label in np.unique(split.labels):
        members = list(np.flatnonzero(split.labels == label))
        keep.extend(sorted(rng.sample(members, min(limit, len(members)))))
    keep.sort()
    return Split([split.paths[i] for i in keep], split.labels[keep], split.skipped)


def decode_split(split: Split, spec: InputSpec, desc: str, workers: int = 2) -> tuple[Split, np.ndarray]:
    """Decodes and resizes a split's images to uint8 RGB arrays; undecodable files are skipped and counted.

    Returns:
        The split without the skipped files, and a uint8 array (N, H, W, 3) in RGB order.
    """
    from convert.progress import progress

    def load(path: Path) -> np.ndarray | ToolkitError:
        try:
            return resize_rgb(load_image_rgb(path), spec)
        except ToolkitError as error:
            return error

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(progress(pool.map(load, split.paths), desc, total=len(split.paths)))
    keep = [i for i, result in enumerate(results) if not isinstance(result, ToolkitError)]
    skipped = Counter(split.skipped)
    for result in results:
        if isinstance(result, ToolkitError):
            skipped["undecodable (corrupt, truncated or refused)"] += 1
    if not keep:
        raise ToolkitError(f"{desc}: none of the {len(split.paths)} images could be decoded; check the data folder")
    kept = Split([split.paths[i] for i in keep], split.labels[keep], skipped)
    return kept, np.stack([results[i] for i in keep])


def fetch_public_dataset() -> Path:
    """Downloads and unpacks the Keras tutorial's cats-and-dogs archive (train/ and validation/).

    Returns:
        The data root, laid out as ``train/`` and ``test/`` (``validation/`` linked as ``test``).

    Raises:
        ToolkitError: The archive cannot be downloaded (offline): use the shared set or DATA=.
    """
    import keras

    try:
        archive = keras.utils.get_file("cats_and_dogs_filtered.zip", PUBLIC_ARCHIVE_URL, extract=True)
    except Exception as error:  # get_file raises a bare Exception on download failure
        raise ToolkitError(f"cannot download {PUBLIC_ARCHIVE_URL} ({str(error).splitlines()[0][:120]}); "
                           "pass DATA= a local folder") from None
    root = next(Path(archive).parent.glob("**/cats_and_dogs_filtered"), None)
    if root is None:
        raise ToolkitError(f"{archive}: unexpected archive layout; pass DATA= a local folder")
    test = root / "test"
    if not test.exists():
        test.symlink_to(root / "validation", target_is_directory=True)
    return root
