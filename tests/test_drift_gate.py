"""The drift gate and its automatic fix, through the real pipeline code, on tiny models in seconds."""

from __future__ import annotations

import numpy as np
import pytest

from convert.config import ConvertOptions, FixMode
from convert.data import Prepared, scan_dataset
from convert.float_model import FloatModel
from convert.tflite.drift import compare, confusion_matrix, worst_disagreements
from convert.tflite.gate import quantize_and_check
from convert.tflite.ops import inspect_tflite
from runtime.preprocess import InputSpec
from tests.tiny_models import SIZE, keras_scores, tiny_classifier


def _prepared(tree) -> Prepared:
    from convert.data import decode_split

    dataset = scan_dataset(tree)
    spec = InputSpec(SIZE, SIZE)
    dataset.train, train_rgb = decode_split(dataset.train, spec, "decode")
    dataset.test, test_rgb = decode_split(dataset.test, spec, "decode")
    return Prepared(dataset, spec, train_rgb, test_rgb)


def _float_model(model, prepared: Prepared) -> FloatModel:
    validation = np.arange(len(prepared.train_rgb))
    return FloatModel(model, ["cat", "dog"], keras_scores(model, prepared.test_rgb.astype(np.float32)), validation,
                      keras_scores(model, prepared.train_rgb.astype(np.float32)), {"arch": "tiny", "head": "test"})


def _options(tmp_path, fix: FixMode) -> ConvertOptions:
    return ConvertOptions(data=tmp_path, out=tmp_path / "out", fix=fix, float_tflite_eval=8, debug_images=8)


def _trained(prepared: Prepared, fragile: bool):
    return tiny_classifier(fragile=fragile, train_pixels=prepared.train_rgb.astype(np.float32),
                           train_labels=prepared.dataset.train.labels)


@pytest.fixture
def fragile_setup(tmp_path):
    from tests.conftest import make_tree

    # 200 validation and 200 test images: at the 99.5% budget one flip is allowed, as in the real pipeline.
    tree = make_tree(tmp_path / "data", {"cat": 100, "dog": 100}, "train")
    make_tree(tree, {"cat": 100, "dog": 100}, "test", start_seed=500)
    prepared = _prepared(tree)
    return prepared, _float_model(_trained(prepared, fragile=True), prepared)


def test_gate_fails_on_a_fragile_head_and_blames_it(tmp_path, fragile_setup):
    prepared, float_model = fragile_setup
    (tmp_path / "a").mkdir()
    outcome = quantize_and_check(float_model, prepared, prepared.train_rgb[:16].astype(np.float32),
                                 _options(tmp_path, FixMode.NONE), tmp_path / "a", tmp_path / "a")
    assert not outcome.passed
    assert outcome.report["test"]["top1_agreement"] < 0.995
    assert outcome.report["worst_layer"]["op"] == "FULLY_CONNECTED"
    assert "predictions" in outcome.report["worst_layer"]["layer"]
    assert outcome.report["fix"] is None
    assert (tmp_path / "a" / "drift_report.md").read_text().count("FAIL") >= 1


def test_auto_fix_restores_agreement_with_reported_cost(tmp_path, fragile_setup):
    prepared, float_model = fragile_setup
    (tmp_path / "b").mkdir()
    outcome = quantize_and_check(float_model, prepared, prepared.train_rgb[:16].astype(np.float32),
                                 _options(tmp_path, FixMode.AUTO), tmp_path / "b", tmp_path / "b")
    fix = outcome.report["fix"]
    assert fix is not None and fix["float_layers"], fix
    assert outcome.passed, fix["summary"]
    assert outcome.report["verdict"] == "PASS with float fallback"
    assert outcome.report["test"]["top1_agreement"] >= 0.995
    assert inspect_tflite(outcome.int8_path).float_ops == fix["float_ops"] != []
    assert fix["bytes_after"] > fix["bytes_before"]  # float weights in place of int8 ones
    assert fix["test_top1_agreement_before"] < 0.995 <= fix["test_top1_agreement_after"]


def test_a_robust_model_passes_without_a_fix(tmp_path, fragile_setup):
    prepared, _ = fragile_setup
    float_model = _float_model(_trained(prepared, fragile=False), prepared)
    (tmp_path / "c").mkdir()
    outcome = quantize_and_check(float_model, prepared, prepared.train_rgb[:16].astype(np.float32),
                                 _options(tmp_path, FixMode.AUTO), tmp_path / "c", tmp_path / "c")
    assert outcome.report["verdict"] == "PASS", outcome.report["test"]
    assert outcome.report["fix"] is None
    assert inspect_tflite(outcome.int8_path).float_ops == []


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


@pytest.mark.parametrize("budget", [0.995, 0.5, 0.0])
def test_check_budget_answers_as_a_full_run_would(tmp_path, fragile_setup, budget):
    from convert.float_model import runtime_metadata
    from convert.tflite.drift import check_budget, run_classifier
    from convert.tflite.export import ExportContext, Target, export

    prepared, float_model = fragile_setup
    ctx = ExportContext(model=float_model.model, out_dir=tmp_path, work_dir=tmp_path,
                        calibration=prepared.train_rgb[:16].astype(np.float32))
    int8_path = export(ctx, [Target.TFLITE_INT8])[Target.TFLITE_INT8]
    metadata = runtime_metadata(float_model, prepared.spec)
    full = compare(float_model.validation_scores, run_classifier(int8_path, metadata, prepared.train_rgb, "all"), None)
    check = check_budget(int8_path, metadata, prepared.train_rgb, float_model.validation_scores, budget, "budget")
    assert check.passed == (full["top1_agreement"] >= budget)
    assert check.n == len(prepared.train_rgb)
    if check.passed:
        assert check.seen == check.n and check.agreement == pytest.approx(full["top1_agreement"])
    else:  # stopped at the first disagreement over the budget's allowance, and said so
        assert check.disagreements == check.allowed + 1 and check.seen < check.n and check.agreement is None
        assert f"first {check.seen} of {check.n}" in check.describe()
