"""Calibration selection: stratified, seeded, recorded, and checked when reused."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from calibration import load_calibration_images, read_manifest, select_calibration, write_manifest
from convert.data import scan_dataset
from runtime.errors import ToolkitError
from runtime.preprocess import InputSpec, preprocess_file


def _samples(tree):
    dataset = scan_dataset(tree)
    return [(path, dataset.classes[label]) for path, label in zip(dataset.train.paths, dataset.train.labels)]


def test_stratified_and_seeded(tiny_tree):
    samples = _samples(tiny_tree)  # 12 cats, 8 dogs
    chosen = select_calibration(samples, 10, seed=0, root=tiny_tree)
    assert Counter(item.label for item in chosen) == {"cat": 6, "dog": 4}
    assert chosen == select_calibration(samples, 10, seed=0, root=tiny_tree)
    assert chosen != select_calibration(samples, 10, seed=1, root=tiny_tree)
    assert len({item.file for item in chosen}) == 10


def test_every_class_gets_one_even_when_small(tiny_tree):
    chosen = select_calibration(_samples(tiny_tree), 2, seed=0, root=tiny_tree)
    assert Counter(item.label for item in chosen) == {"cat": 1, "dog": 1}


@pytest.mark.parametrize("count, message", [(21, "only 20 training images"), (1, "fewer than the 2 classes")])
def test_too_few_images_is_an_error(tiny_tree, count, message):
    with pytest.raises(ToolkitError, match=message):
        select_calibration(_samples(tiny_tree), count, seed=0, root=tiny_tree)


def test_manifest_round_trip_and_same_preprocessing(tiny_tree, tmp_path):
    chosen = select_calibration(_samples(tiny_tree), 4, seed=0, root=tiny_tree)
    path = write_manifest(chosen, tmp_path / "calib.json", tiny_tree, seed=0)
    assert read_manifest(path) == chosen
    spec = InputSpec(8, 8)
    inputs = load_calibration_images(chosen, tiny_tree, spec)
    assert inputs.shape == (4, 8, 8, 3) and inputs.dtype == np.float32
    np.testing.assert_array_equal(inputs[0], preprocess_file(tiny_tree / chosen[0].file, spec))


def test_changed_file_is_noticed(tiny_tree):
    chosen = select_calibration(_samples(tiny_tree), 2, seed=0, root=tiny_tree)
    (tiny_tree / chosen[0].file).write_bytes(b"changed")
    with pytest.raises(ToolkitError, match="changed since the calibration manifest"):
        load_calibration_images(chosen, tiny_tree, InputSpec(8, 8))


def test_malformed_manifest(tmp_path):
    bad = tmp_path / "m.json"
    bad.write_text("{not json")
    with pytest.raises(ToolkitError, match="malformed calibration manifest"):
        read_manifest(bad)
