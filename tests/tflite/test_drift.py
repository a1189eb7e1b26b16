"""convert/tflite/drift.py: the float-vs-int8 metrics and the budget check the gate and the fix use."""

from __future__ import annotations

import numpy as np
import pytest

from convert.tflite.drift import compare, confusion_matrix, worst_disagreements


def test_compare_and_confusion():
    reference = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], np.float32)
    candidate = np.array([[0.8, 0.2], [0.3, 0.7], [0.4, 0.6]], np.float32)
    result = compare(reference, candidate, np.array([0, 1, 1]))
    assert result["top1_agreement"] == pytest.approx(2 / 3)
    assert result["max_abs_prob_diff"] == pytest.approx(0.2)
    assert result["accuracy_reference"] == pytest.approx(2 / 3) and result["accuracy_candidate"] == 1.0
    assert confusion_matrix(np.array([0, 1, 1]), np.array([0, 1, 0]), 2) == [[1, 0], [1, 1]]
    worst = worst_disagreements(["a", "b", "c"], reference, candidate, ["cat", "dog"], limit=1)
    assert worst[0]["file"] == "c" and worst[0]["float"] == "cat" and worst[0]["quantized"] == "dog"


@pytest.mark.parametrize("n, budget, allowed", [(200, 0.995, 1), (200, 0.99, 2), (100, 0.995, 0), (7, 0.0, 7),
                                                (10, 1.0, 0), (3, 2 / 3, 1)])
def test_allowed_disagreements_is_the_budget_in_images(n, budget, allowed):
    from convert.tflite.drift import allowed_disagreements

    assert allowed_disagreements(n, budget) == allowed
    # the definition: one more disagreement than allowed misses the budget, as the gate compares it
    assert (n - allowed) / n >= budget and (allowed == n or (n - allowed - 1) / n < budget)


@pytest.fixture(scope="module")
def fragile_int8(tmp_path_factory, prepared, fragile_model):
    from convert.float_model import runtime_metadata
    from convert.tflite.drift import run_classifier
    from convert.tflite.export import ExportContext, Target, export

    out = tmp_path_factory.mktemp("fragile_int8")
    ctx = ExportContext(model=fragile_model.model, out_dir=out, work_dir=out,
                        calibration=prepared.train_rgb[:16].astype(np.float32))
    int8_path = export(ctx, [Target.TFLITE_INT8])[Target.TFLITE_INT8]
    metadata = runtime_metadata(fragile_model, prepared.spec)
    full = compare(fragile_model.held_out_scores(), run_classifier(int8_path, metadata, prepared.train_rgb, "all"), None)
    return int8_path, metadata, full


# The fragile tiny model's full-integer agreement on its 200 held-out images is between 50% and 99.5%
# (measured 63.5%): the first budget stops early, the others run every image.
@pytest.mark.parametrize("budget, passes", [(0.995, False), (0.5, True), (0.0, True)])
def test_check_budget_answers_as_a_full_run_would(prepared, fragile_model, fragile_int8, budget, passes):
    from convert.tflite.drift import check_budget

    int8_path, metadata, full = fragile_int8
    check = check_budget(int8_path, metadata, prepared.train_rgb, fragile_model.held_out_scores(), budget, "budget")
    assert check.passed is passes is (full["top1_agreement"] >= budget)
    assert check.n == len(prepared.train_rgb)
    if passes:
        assert check.seen == check.n and check.agreement == pytest.approx(full["top1_agreement"])
    else:  # stopped at the first disagreement over the budget's allowance, and said so
        assert check.disagreements == check.allowed + 1 and check.seen < check.n and check.agreement is None
        assert f"first {check.seen} of {check.n}" in check.describe()
