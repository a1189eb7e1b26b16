"""Class-per-folder image data sets: scan, split, decode, with bad files skipped and counted."""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from convert.config import ConvertOptions
from runtime.errors import ToolkitError, download_failure
from runtime.preprocess import InputSpec, Normalization, load_image_rgb, resize_rgb
from runtime.sources import IMAGE_SUFFIXES  # one list of image suffixes, the camera loop's

UNDECODABLE = "undecodable (corrupt, truncated or refused)"
TRAIN_TEST_LAYOUT = "train/test folders"
MIN_TRAIN_PER_CLASS = 2  # after decoding: one for the held-out validation set, at least one to train on
SKIPPED_LISTED = 20  # skipped files named per split in metadata.json and the drift reports (all are counted)
MIN_TEST_PER_CLASS = 1  # after decoding: a class the test set lacks cannot be measured

# The public archive the Keras tutorials use; only fetched when no local data exists.
PUBLIC_ARCHIVE_URL = "https://storage.googleapis.com/mledu-datasets/cats_and_dogs_filtered.zip"


@dataclass(frozen=True)
class SkippedFile:
    """A file left out of a split, and why."""

    path: Path
    label: int  # index into DataSet.classes: the class folder it was in
    reason: str


@dataclass
class Split:
    """One split of a data set: files with integer labels, plus the files that were skipped."""

    paths: list[Path]
    labels: np.ndarray  # int64 indices into DataSet.classes
    skipped_files: list[SkippedFile] = field(default_factory=list)

    @property
    def skipped(self) -> Counter:
        """reason -> how many files were skipped for it."""
        return Counter(item.reason for item in self.skipped_files)


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


def image_files(folder: Path, label: int) -> tuple[list[Path], list[SkippedFile]]:
    """The image files directly in ``folder`` (sorted), and the files skipped there (suffix, zero bytes)."""
    files, skipped = [], []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.is_dir():
            continue
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            skipped.append(SkippedFile(path, label, "not an image (suffix)"))
        elif path.stat().st_size == 0:
            skipped.append(SkippedFile(path, label, "zero-byte file"))
        else:
            files.append(path)
    return files, skipped


def _scan(folder: Path, classes: list[str]) -> Split:
    paths, labels, skipped = [], [], []
    for index, name in enumerate(classes):
        class_dir = folder / name
        if not class_dir.is_dir():
            raise ToolkitError(f"{class_dir}: class folder missing (other splits have it); add it or remove the class")
        files, class_skipped = image_files(class_dir, index)
        skipped.extend(class_skipped)
        if not files:
            raise ToolkitError(f"{class_dir}: class folder holds no images; add images or remove the folder")
        paths.extend(files)
        labels.extend([index] * len(files))
    return Split(paths=paths, labels=np.asarray(labels, np.int64), skipped_files=skipped)


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
        return DataSet(root, classes, _scan(root / "train", classes), _scan(root / "test", classes), TRAIN_TEST_LAYOUT)
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

    def subset(indices: list[int], skipped: list[SkippedFile]) -> Split:
        return Split([everything.paths[i] for i in indices], everything.labels[indices], skipped)

    return DataSet(
        root, classes, subset(train_idx, everything.skipped_files), subset(test_idx, []),
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
    return Split([split.paths[i] for i in keep], split.labels[keep], split.skipped_files)


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

    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        results = list(progress(pool.map(load, split.paths), desc, total=len(split.paths)))
    finally:  # on an interrupt, drop the queued files instead of decoding them all first
        pool.shutdown(wait=True, cancel_futures=True)
    keep = [i for i, result in enumerate(results) if not isinstance(result, ToolkitError)]
    skipped = list(split.skipped_files) + [SkippedFile(split.paths[i], int(split.labels[i]), UNDECODABLE)
                                           for i, result in enumerate(results) if isinstance(result, ToolkitError)]
    if not keep:
        raise ToolkitError(f"{desc}: none of the {len(split.paths)} images could be decoded; check the data folder")
    kept = Split([split.paths[i] for i in keep], split.labels[keep], skipped)
    return kept, np.stack([results[i] for i in keep])


def check_class_counts(dataset: DataSet) -> None:
    """Refuses a data set in which, after the skipped files, a class has too few usable images.

    Every class needs ``MIN_TRAIN_PER_CLASS`` decodable training images (one held out for validation and
    calibration, at least one to train on) and ``MIN_TEST_PER_CLASS`` test images.

    Raises:
        ToolkitError: One line naming the class folder, how many of its files were usable and why the rest
            were skipped.
    """
    for split, name, least in ((dataset.train, "train", MIN_TRAIN_PER_CLASS), (dataset.test, "test", MIN_TEST_PER_CLASS)):
        for index, label in enumerate(dataset.classes):
            usable = int(np.sum(split.labels == index))
            if usable >= least:
                continue
            skipped = [item for item in split.skipped_files if item.label == index]
            reasons = ", ".join(f"{count} {reason}" for reason, count in Counter(i.reason for i in skipped).items())
            folder = (dataset.root / name if dataset.layout == TRAIN_TEST_LAYOUT else dataset.root) / label
            raise ToolkitError(
                f"{folder}: class {label!r} has {usable} usable {name} image(s) of {usable + len(skipped)}"
                f"{f' ({reasons})' if reasons else ''}; it needs at least {least}: replace the bad files, "
                "add images or remove the class")


def skipped_listing(split: Split, root: Path, limit: int) -> list[dict[str, str]]:
    """The first ``limit`` skipped files of a split, as ``{"file": path relative to root, "reason": ...}``."""
    return [{"file": relative_path(item.path, root), "reason": item.reason} for item in split.skipped_files[:limit]]


def relative_path(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` in POSIX form, or as it is when it lies outside."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


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
        raise ToolkitError(f"cannot download {PUBLIC_ARCHIVE_URL} ({download_failure(error)}); "
                           "pass DATA= a local folder") from None
    root = next(Path(archive).parent.glob("**/cats_and_dogs_filtered"), None)
    if root is None:
        raise ToolkitError(f"{archive}: unexpected archive layout; pass DATA= a local folder")
    test = root / "test"
    if not test.exists():
        test.symlink_to(root / "validation", target_is_directory=True)
    return root


@dataclass
class Prepared:
    """Decoded data, ready for the float model and the quantizer."""

    dataset: DataSet
    spec: InputSpec
    train_rgb: np.ndarray
    test_rgb: np.ndarray


def prepare_data(options: ConvertOptions) -> Prepared:
    """The run's data set, split, limited and decoded at its input size; every class checked after decoding."""
    dataset = scan_dataset(options.data, options.test_fraction, options.seed)
    dataset.train = limit_per_class(dataset.train, options.max_train, options.seed)
    dataset.test = limit_per_class(dataset.test, options.max_test, options.seed)
    spec = InputSpec(options.input_size, options.input_size, options.resize, Normalization.RAW)
    dataset.train, train_rgb = decode_split(dataset.train, spec, "decode train")
    dataset.test, test_rgb = decode_split(dataset.test, spec, "decode test")
    check_class_counts(dataset)
    return Prepared(dataset, spec, train_rgb, test_rgb)
