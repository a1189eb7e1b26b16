"""Shared fixtures of the TFLite target's tests: one synthetic data set, decoded once, and the tiny
classifier trained on it twice (robust, and the fragile trap of issue 2 in miniature); and the real VGG16
(hed weights) on the shared photos for the slow gate tests."""

from __future__ import annotations

import numpy as np
import pytest

from convert.config import Arch, ConvertOptions
from convert.data import Prepared, decode_split, prepare_data, scan_dataset
from convert.float_model import FloatModel
from runtime.preprocess import InputSpec
from tests.conftest import computed_once, make_tree
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


# The real VGG16 on the shared photos (test_gate_vgg16_*_slow.py)
TRAIN_PER_CLASS = 200
TEST_PER_CLASS = 100  # 200 test images: the floor for the slow drift tests
CALIBRATION = 50  # 100 before 2026-12-02: halved for the suite's budget (one calibration is ~0.35 s an image)
BUDGET = 0.995  # top-1 agreement, the converter's default budget
# Accuracy of int8 may differ from float by the disagreements alone; at 99.5% agreement on 200 images
# that is at most 1 image = 0.5 points.
MAX_ACCURACY_DROP = 0.005


@pytest.fixture(scope="session")
def hed(shared_data, tmp_path_factory):
    """The real VGG16 (hed weights) on 400 training and 200 test photos at 224: decoded images, the backbone,
    block1-4 features (computed once per run, whichever worker asks first), the calibration and held-out
    positions. The slow gate tests of this folder use it."""
    from convert.backbone import build_backbone
    from convert.head import extract_features, feature_extractor

    # weights="hed" explicitly: the shared backbone must match what train_float_model would build.
    options = ConvertOptions(weights="hed", data=shared_data, out=tmp_path_factory.mktemp("unused") / "out",
                             max_train=TRAIN_PER_CLASS, max_test=TEST_PER_CLASS, calib=CALIBRATION,
                             float_tflite_eval=20, debug_images=8)
    prepared = prepare_data(options)  # decoding: seconds
    backbone = build_backbone(Arch.VGG16, "hed", 224)

    def features() -> dict[str, np.ndarray]:  # minutes: 600 photos through blocks 1-4
        extractor = feature_extractor(backbone, 224)
        return {"train_b4": extract_features(extractor, prepared.train_rgb, "features train"),
                "test_b4": extract_features(extractor, prepared.test_rgb, "features test")}

    b4 = computed_once(tmp_path_factory, "hed_block4_features", features)
    train_b4, test_b4 = b4["train_b4"], b4["test_b4"]
    rng = np.random.default_rng(0)
    calibration_index = np.sort(rng.permutation(len(prepared.train_rgb))[:CALIBRATION])
    return {"options": options, "prepared": prepared, "backbone": backbone, "train_b4": train_b4,
            "test_b4": test_b4, "calibration_index": calibration_index,
            "calibration": prepared.train_rgb[calibration_index].astype(np.float32),
            "validation_index": np.setdiff1d(np.arange(len(prepared.train_rgb)), calibration_index)}


def hed_float_model(hed, model, tail, description):
    """The fix is chosen on as many held-out training images as the pipeline holds out (VALIDATION_IMAGES)."""
    from convert.float_model import VALIDATION_IMAGES
    from convert.head import predict_batched

    rng = np.random.default_rng(1)
    validation = np.sort(rng.choice(hed["validation_index"], VALIDATION_IMAGES, replace=False))
    return FloatModel(model, hed["prepared"].dataset.classes, predict_batched(tail, hed["test_b4"]), validation,
                      predict_batched(tail, hed["train_b4"][validation]), description)
