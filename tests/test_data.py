"""Data set scanning: layouts, stable labels, bad files skipped and counted, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from convert.data import decode_split, limit_per_class, scan_dataset
from runtime.errors import ToolkitError
from runtime.preprocess import InputSpec
from tests.conftest import make_tree


def test_train_test_layout_with_sorted_labels(tiny_tree):
    dataset = scan_dataset(tiny_tree)
    assert dataset.classes == ["cat", "dog"]
    assert len(dataset.train.paths) == 20 and len(dataset.test.paths) == 8
    assert list(np.bincount(dataset.train.labels)) == [12, 8]
    assert dataset.layout == "train/test folders"


def test_single_folder_split_is_seeded_and_stratified(tmp_path):
    root = make_tree(tmp_path / "flat", {"cat": 10, "dog": 10, "fox": 5})
    first, again = scan_dataset(root, 0.2, seed=3), scan_dataset(root, 0.2, seed=3)
    other = scan_dataset(root, 0.2, seed=4)
    assert first.test.paths == again.test.paths
    assert first.test.paths != other.test.paths
    assert list(np.bincount(first.test.labels)) == [2, 2, 1]
    assert not set(first.test.paths) & set(first.train.paths)


def test_fingerprint_changes_with_the_data(tiny_tree):
    before = scan_dataset(tiny_tree).fingerprint()
    (tiny_tree / "train" / "cat" / "cat.0.jpg").write_bytes(b"\xff" * 10)
    assert scan_dataset(tiny_tree).fingerprint() != before


def test_bad_files_are_skipped_and_counted(tiny_tree):
    cat = tiny_tree / "train" / "cat"
    (cat / "empty.jpg").write_bytes(b"")
    (cat / "notes.txt").write_text("not an image")
    (cat / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 garbage")
    truncated = (cat / "cat.1.jpg").read_bytes()
    (cat / "truncated.jpg").write_bytes(truncated[: len(truncated) // 3])
    dataset = scan_dataset(tiny_tree)
    assert dataset.train.skipped == {"zero-byte file": 1, "not an image (suffix)": 1}
    kept, images = decode_split(dataset.train, InputSpec(16, 16), "decode")
    assert kept.skipped["undecodable (corrupt, truncated or refused)"] == 2
    assert images.shape == (20, 16, 16, 3) and len(kept.labels) == 20


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda root: root / "missing", "data folder not found"),
        (lambda root: _remove_class(root, "dog"), "at least two class folders"),
        (lambda root: _empty_class(root / "train" / "dog"), "holds no images"),
        (lambda root: _rename_test_class(root), "differ from train"),
    ],
)
def test_bad_layouts_give_clear_errors(tiny_tree, mutate, message):
    root = mutate(tiny_tree) or tiny_tree
    with pytest.raises(ToolkitError, match=message) as info:
        scan_dataset(root)
    assert "\n" not in str(info.value)


def _remove_class(root, name):
    import shutil

    for split in ("train", "test"):
        shutil.rmtree(root / split / name)


def _empty_class(folder):
    for path in folder.iterdir():
        path.unlink()


def _rename_test_class(root):
    (root / "test" / "dog").rename(root / "test" / "wolf")


def test_limit_per_class(tiny_tree):
    split = limit_per_class(scan_dataset(tiny_tree).train, 3, seed=0)
    assert list(np.bincount(split.labels)) == [3, 3]


def test_offline_public_archive_is_one_line_with_the_cause(monkeypatch):
    """No network: the error names the archive, keeps the cause (keras' message starts with the whole URL)
    and says what to pass instead."""
    import keras

    from convert.data import PUBLIC_ARCHIVE_URL, fetch_public_dataset

    def offline(name, origin, **_):
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -2] Name or service not known")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(ToolkitError) as raised:
        fetch_public_dataset()
    message = str(raised.value)
    assert "\n" not in message and message.startswith(f"cannot download {PUBLIC_ARCHIVE_URL} (")
    assert "[Errno -2] Name or service not known" in message and message.endswith("pass DATA= a local folder")
