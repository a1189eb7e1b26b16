"""The default pipeline's float model on the real VGG16 (hed weights, 400 training and 200 test photos at
224) survives full int8: the drift gate passes (issue 2)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from convert.config import FixMode, HeadKind
from convert.tflite.gate import quantize_and_check
from tests.tflite.conftest import BUDGET, MAX_ACCURACY_DROP, TEST_PER_CLASS

pytestmark = pytest.mark.slow(seconds=450)  # measured alone, with the shared features (182 s)


def test_default_head_survives_full_int8(hed, tmp_path):
    """The default pipeline's float model (block4-conv head, quantization-aware) through the drift gate."""
    from convert.float_model import train_float_model

    # No fix, and no per-layer report: this test asserts on neither (the fragile-head test does), and the
    # QuantizationDebugger's runs at 224x224 are seconds an image.
    options = replace(hed["options"], fix=FixMode.NONE, debug_images=0)
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
