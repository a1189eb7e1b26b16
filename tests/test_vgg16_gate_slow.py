"""The real VGG16 (hed weights) through the drift gate on the shared photos: the default head survives full
int8, and the fragile head (issue 2's trap) is caught, blamed and fixed.

Expensive work (decoding, block1-4 features) is done once per session in ``hed``. The two tests are one file
so that ``make test``'s workers (pytest-xdist, ``--dist loadfile``) run them in one process and compute
that fixture once.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from convert.config import Arch, ConvertOptions, FixMode, HeadKind
from convert.data import prepare_data
from convert.float_model import FloatModel
from convert.tflite.gate import quantize_and_check

pytestmark = pytest.mark.slow

TRAIN_PER_CLASS = 200
TEST_PER_CLASS = 100  # 200 test images: the floor for the slow drift tests
CALIBRATION = 100
BUDGET = 0.995  # top-1 agreement, the converter's default budget
# Accuracy of int8 may differ from float by the disagreements alone; at 99.5% agreement on 200 images
# that is at most 1 image = 0.5 points.
MAX_ACCURACY_DROP = 0.005
# The float fallback on the fragile head must bring agreement at least this far back (from ~50%).
FRAGILE_FIX_FLOOR = 0.98


@pytest.fixture(scope="session")
def hed(shared_data, tmp_path_factory):
    from convert.backbone import build_backbone
    from convert.head import extract_features, feature_extractor

    # weights="hed" explicitly: the shared backbone must match what train_float_model would build.
    options = ConvertOptions(weights="hed", data=shared_data, out=tmp_path_factory.mktemp("unused") / "out",
                             max_train=TRAIN_PER_CLASS, max_test=TEST_PER_CLASS, calib=CALIBRATION,
                             float_tflite_eval=20, debug_images=8)
    prepared = prepare_data(options)
    backbone = build_backbone(Arch.VGG16, "hed", 224)
    extractor = feature_extractor(backbone, 224)
    train_b4 = extract_features(extractor, prepared.train_rgb, "features train")
    test_b4 = extract_features(extractor, prepared.test_rgb, "features test")
    rng = np.random.default_rng(0)
    calibration_index = np.sort(rng.permutation(len(prepared.train_rgb))[:CALIBRATION])
    return {"options": options, "prepared": prepared, "backbone": backbone, "train_b4": train_b4,
            "test_b4": test_b4, "calibration_index": calibration_index,
            "calibration": prepared.train_rgb[calibration_index].astype(np.float32),
            "validation_index": np.setdiff1d(np.arange(len(prepared.train_rgb)), calibration_index)}


def _float_model(hed, model, tail, description):
    """The fix is chosen on as many held-out training images as the pipeline holds out (VALIDATION_IMAGES)."""
    from convert.float_model import VALIDATION_IMAGES
    from convert.head import predict_batched

    rng = np.random.default_rng(1)
    validation = np.sort(rng.choice(hed["validation_index"], VALIDATION_IMAGES, replace=False))
    return FloatModel(model, hed["prepared"].dataset.classes, predict_batched(tail, hed["test_b4"]), validation,
                      predict_batched(tail, hed["train_b4"][validation]), description)


def test_default_head_survives_full_int8(hed, tmp_path):
    """The default pipeline's float model (block4-conv head, quantization-aware) through the drift gate."""
    from convert.float_model import train_float_model

    options = hed["options"]
    options.fix = FixMode.NONE
    float_model = train_float_model(options, hed["prepared"], set(hed["calibration_index"].tolist()),
                                    hed["calibration"], backbone=hed["backbone"],
                                    features=(hed["train_b4"], hed["test_b4"]))
    assert float_model.description["head"] == HeadKind.BLOCK4_CONV.value
    assert float_model.description["quant_aware_head"] is True
    outcome = quantize_and_check(float_model, hed["prepared"], hed["calibration"], options, tmp_path, tmp_path)
    test = outcome.report["test"]
    assert outcome.report["int8_model"]["float_ops"] == []
    assert test["n"] == 2 * TEST_PER_CLASS
    assert test["top1_agreement"] >= BUDGET, outcome.report["worst_disagreements"][:3]
    assert test["accuracy_float"] - test["accuracy_int8"] <= MAX_ACCURACY_DROP
    assert test["accuracy_float"] > 0.75  # a head that learned something, not chance
    ft = outcome.report["float_tflite"]
    assert ft["top1_agreement"] == 1.0 and ft["max_abs_prob_diff"] < 1e-3  # the float TFLite is the Keras model


def _fragile_head(train_b5_pooled: np.ndarray, labels: np.ndarray):
    """The trap of issue 2: logistic regression on standardized global-average-pooled block5 features,
    deployed as one dense layer with the standardization folded in."""
    import keras

    from tests.tiny_models import fit_logistic

    mean, std = train_b5_pooled.mean(0), train_b5_pooled.std(0) + 1e-6
    weights, bias = fit_logistic((train_b5_pooled - mean) / std, labels, 2)
    features = keras.Input((None, None, 512), name="features")
    dense = keras.layers.Dense(2, activation="softmax", name="predictions")
    head = keras.Model(features, dense(keras.layers.GlobalAveragePooling2D(name="gap")(features)), name="head")
    dense.set_weights([(weights / std[:, None]).astype(np.float32), (bias - (mean / std) @ weights).astype(np.float32)])
    return head


def test_fragile_head_is_caught_blamed_and_fixed(hed, tmp_path):
    import keras

    from convert.head import assemble, predict_batched

    backbone = hed["backbone"].model
    b4 = keras.Input(hed["train_b4"].shape[1:])
    x = b4
    for name in ("block5_conv1", "block5_conv2", "block5_conv3", "block5_pool"):
        x = backbone.get_layer(name)(x)
    block5 = keras.Model(b4, x)
    pooled = predict_batched(block5, hed["train_b4"]).mean(axis=(1, 2))
    head = _fragile_head(pooled, hed["prepared"].dataset.train.labels)
    tail = keras.Model(b4, head(block5(b4)))
    model = assemble(hed["backbone"], head, 224)
    float_model = _float_model(hed, model, tail, {"arch": "vgg16", "head": "fragile", "weights": "hed"})
    options = hed["options"]

    # One gated run in the pipeline's own mode: it measures the full-integer model (the gate fails), blames
    # a layer, and fixes; the report keeps the full-integer model's test agreement beside the fixed one's.
    options.fix = FixMode.AUTO
    fixed = quantize_and_check(float_model, hed["prepared"], hed["calibration"], options, tmp_path, tmp_path)
    fix = fixed.report["fix"]
    before, after = fix["test_top1_agreement_before"], fixed.report["test"]["top1_agreement"]
    print(json.dumps({"before": before, "after": after, "fix": fix}, indent=1))
    assert before < BUDGET  # caught: the full-integer model misses the budget
    blamed = fix["blamed"]
    assert blamed["op"] == "FULLY_CONNECTED" and "predictions" in blamed["layer"]
    assert blamed["rmse_over_scale"] > 5 * fixed.report["layers"][1]["rmse_over_scale"]
    # Measured here: 46.5% -> 99.0% with 8 ops (block4_conv3 .. the dense head) left in float. The set
    # passes the budget on the 200 held-out images it was chosen on, and on the 200 test images it never
    # saw it repairs most of the damage but misses the budget by one image: the gate says FAIL and why.
    # (The int8 kernels are exact on every x86 CPU; the float ops differ in the last bits at most.)
    assert fix["float_ops"] and fix["bytes_after"] > fix["bytes_before"]
    assert after == fix["test_top1_agreement_after"] and BUDGET > after >= FRAGILE_FIX_FLOOR > before
    assert not fixed.passed and fixed.report["verdict"] == "FAIL"
    assert "still below it" in fix["summary"]
    report_md = (tmp_path / "drift_report.md").read_text()
    assert "Automatic fix" in report_md and f"full-integer model: {before:.2%}; after the fix: {after:.2%}" in report_md
