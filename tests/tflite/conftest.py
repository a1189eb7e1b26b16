"""Shared tiny-model fixtures of the TFLite target's tests: one synthetic data set, decoded once, and the
tiny classifier trained on it twice (robust, and the fragile trap of issue 2 in miniature)."""

from __future__ import annotations

import numpy as np
import pytest

from convert.data import Prepared, decode_split, scan_dataset
from convert.float_model import FloatModel
from runtime.preprocess import InputSpec
from tests.conftest import make_tree
from tests.tiny_models import SIZE, keras_scores, tiny_classifier


@pytest.fixture(scope="session")
def prepared(tmp_path_factory) -> Prepared:
    """200 training (the held-out set of the gate) and 200 test images: at the 99.5% budget one flip is
    allowed, as in the real pipeline."""
    tree = make_tree(tmp_path_factory.mktemp("gate") / "data", {"cat": 100, "dog": 100}, "train")
    make_tree(tree, {"cat": 100, "dog": 100}, "test", start_seed=500)
    dataset = scan_dataset(tree)
    spec = InputSpec(SIZE, SIZE)
    dataset.train, train_rgb = decode_split(dataset.train, spec, "decode")
    dataset.test, test_rgb = decode_split(dataset.test, spec, "decode")
    return Prepared(dataset, spec, train_rgb, test_rgb)


def _float_model(prepared: Prepared, fragile: bool) -> FloatModel:
    model = tiny_classifier(fragile=fragile, train_pixels=prepared.train_rgb.astype(np.float32),
                            train_labels=prepared.dataset.train.labels)
    validation = np.arange(len(prepared.train_rgb))
    return FloatModel(model, ["cat", "dog"], keras_scores(model, prepared.test_rgb.astype(np.float32)), validation,
                      keras_scores(model, prepared.train_rgb.astype(np.float32)), {"arch": "tiny", "head": "test"})


@pytest.fixture(scope="session")
def fragile_model(prepared) -> FloatModel:
    return _float_model(prepared, fragile=True)


@pytest.fixture(scope="session")
def robust_model(prepared) -> FloatModel:
    return _float_model(prepared, fragile=False)


@pytest.fixture(scope="session")
def tiny_model():
    """The tiny classifier with seed 0 and untrained weights (export tests that do not mutate it)."""
    return tiny_classifier()
