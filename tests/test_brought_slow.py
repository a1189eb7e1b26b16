"""A real brought model: the Keras tutorial's whole VGG16 (hed conv weights, 150x150, rescale 1/255,
Flatten-Dense head with one sigmoid unit) saved by Keras 2, trained briefly on the shared photos, then
converted to int8 and measured on 400 test images (issue 16)."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow(seconds=313)  # measured alone

TRAIN_PER_CLASS = 150  # 300: 50 calibrate, 200 of the others are held out for the fix
TEST_PER_CLASS = 200  # 400 test images: the floor for this test
BUDGET = 0.995


def test_a_keras2_tutorial_vgg16_converts_to_int8_within_the_budget(shared_data, tmp_path, capsys):
    from convert.__main__ import main
    from convert.artifacts import rejected_path
    from scripts.tutorial_models import whole_model

    made = whole_model(shared_data, tmp_path / "models", max_train=TRAIN_PER_CLASS, keras3=False)
    capsys.readouterr()
    out = tmp_path / "out"
    code = main(["--model", str(tmp_path / "models" / "whole_keras2.h5"), "--preprocess", "rescale",
                 "--data", str(shared_data), "--max-train", str(TRAIN_PER_CLASS), "--max-test", str(TEST_PER_CLASS),
                 "--calib", "50", "--float-tflite-eval", "20", "--out", str(out)])
    summary = capsys.readouterr().out
    print(summary)
    out = out if code == 0 else rejected_path(out)  # a failed gate keeps its artifacts there
    metadata = json.loads((out / "metadata.json").read_text())
    results, provenance = metadata["results"], metadata["provenance"]
    print(json.dumps({"made": made, "results": results}, indent=1))
    assert provenance["model_format"] == "Keras 2.21.0 .h5, config rebuilt for Keras 3"
    assert provenance["keras2_max_abs_diff"] <= 1e-4 and provenance["output"] == "sigmoid"
    assert metadata["input"]["height"] == 150 and results["n"] == 2 * TEST_PER_CLASS
    # The budget holds, or the gate says it does not and the report gives the fix's result: issue 16 names
    # both, and which one a run gets depends on the few images this weak model scores near 0.5. Before the
    # head was seeded, three runs here gave 98.75% (FAIL, fix not attempted: int8 met the budget on the
    # held-out images), 98.75% -> 99.50% with 8 float ops (PASS with float fallback) and 99.00% (FAIL).
    # Seeded (scripts/tutorial_models.py), both runs measured on this AVX2 CPU gave 96.75% -> 98.00% with
    # the two dense layers in float, FAIL, reported. The float training's last bits differ on a CPU with
    # other kernels (AVX-512), and with them those boundary images, so the test checks that the gate's
    # verdict, exit code, float ops and report agree with the measured agreement, whichever it is.
    drift = json.loads((out / "drift_report.json").read_text())
    fix = drift["fix"]
    if results["verdict"] == "PASS":
        assert code == 0 and results["top1_agreement"] >= BUDGET and fix is None
        assert metadata["models"]["model_int8.tflite"]["float_ops"] == []
    else:  # the gate failed the full-integer model, and the report gives the fix's result
        before = fix.get("test_top1_agreement_before") or drift["test"]["top1_agreement"]
        assert before < BUDGET and fix["summary"] in (out / "drift_report.md").read_text()
        after = fix.get("test_top1_agreement_after")
        if results["verdict"] == "PASS with float fallback":
            assert code == 0 and after >= BUDGET
            assert metadata["models"]["model_int8.tflite"]["float_ops"] == fix["float_ops"] != []
        else:
            assert code == 3 and results["verdict"] == "FAIL" and (after is None or after < BUDGET)
            assert drift["int8_model"]["float_ops"] == []  # a fallback that does not pass is not kept
    # Trained, if weakly: the hed conv weights expect caffe-normalized pixels, and on x/255 their features
    # separate cats from dogs badly (measured 58.50% to 60.00%; 400 test images put chance, 50%, 2 standard
    # deviations below 55%).
    assert results["accuracy_float"] > 0.55
