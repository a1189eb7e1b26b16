"""The fragile head of issue 2 on the real VGG16 (hed weights): the drift gate catches it, blames the
dense layer and leaves the blamed ops in float."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from convert.config import FixMode
from convert.tflite.gate import quantize_and_check
from tests.tflite.conftest import BUDGET, hed_float_model

pytestmark = pytest.mark.slow(seconds=280)  # measured alone, the shared features computed


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
    float_model = hed_float_model(hed, model, tail, {"arch": "vgg16", "head": "fragile", "weights": "hed"})
    options = replace(hed["options"], fix=FixMode.AUTO)

    # One gated run in the pipeline's own mode: it measures the full-integer model (the gate fails), blames
    # a layer, and fixes; the report keeps the full-integer model's test agreement beside the fixed one's.
    fixed = quantize_and_check(float_model, hed["prepared"], hed["calibration"], options, tmp_path, tmp_path)
    fix = fixed.report["fix"]
    before, after = fix["test_top1_agreement_before"], fixed.report["test"]["top1_agreement"]
    print(json.dumps({"before": before, "after": after, "fix": fix}, indent=1))
    assert before < BUDGET  # caught: the full-integer model misses the budget
    blamed = fix["blamed"]
    assert blamed["op"] == "FULLY_CONNECTED" and "predictions" in blamed["layer"]
    assert blamed["rmse_over_scale"] > 5 * fixed.report["layers"][1]["rmse_over_scale"]
    # Measured here (50 calibration images): 46.5% -> 100.0% with 4 ops (the dense head, the average pool,
    # block5_pool, block5_conv3) left in float, a set chosen on the 200 held-out images (99.5% on them) that
    # holds on the 200 test images it never saw: the gate passes with the float fallback. (With 100
    # calibration images, before 2026-12-02, 8 ops were needed and the test set missed the budget by one image.)
    # The int8 kernels are exact on every x86 CPU; the float ops differ in the last bits at most.
    assert fix["float_ops"] and fix["bytes_after"] > fix["bytes_before"]
    assert after == fix["test_top1_agreement_after"] >= BUDGET > before
    assert fixed.passed and fixed.report["verdict"] == "PASS with float fallback"
    report_md = (tmp_path / "drift_report.md").read_text()
    assert "Automatic fix" in report_md and f"full-integer model: {before:.2%}; after the fix: {after:.2%}" in report_md
