"""Real VGG16 (hed weights) on the shared photos: int8 drift, the fragile-head trap, end-to-end CLI.

Expensive work (decoding, block1-4 features) is done once per session in ``hed``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from convert.config import Arch, ConvertOptions, FixMode, HeadKind
from convert.data import prepare_data
from convert.float_model import FloatModel
from convert.tflite.gate import quantize_and_check
from scripts.compare_artifacts import compare as compare_artifacts

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
GOLDEN_KEYS = Path(__file__).with_name("golden") / "metadata_keys.json"


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


# The tests that use the session fixture ``hed`` run on one pytest-xdist worker (--dist loadgroup), so that
# its three minutes of features are computed once, not once per worker.
@pytest.mark.xdist_group("hed")
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


@pytest.mark.xdist_group("hed")
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



def test_end_to_end_cli_is_deterministic(shared_data, tmp_path, capsys):
    from convert.__main__ import main

    common = ["--data", str(shared_data), "--input-size", "32", "--max-train", "20", "--max-test", "10",
              "--calib", "10", "--epochs", "3", "--float-tflite-eval", "4", "--debug-images", "2",
              "--min-agreement", "0", "--weights", "hed"]
    assert main(common + ["--out", str(tmp_path / "a")]) == 0
    assert main(common + ["--out", str(tmp_path / "b")]) == 0
    summary = capsys.readouterr().out
    assert "convert summary: PASS" in summary and "top-1 agreement" in summary
    a, b = tmp_path / "a", tmp_path / "b"
    expected = {"model_float.keras", "model_float.tflite", "model_int8.tflite", "labels.txt", "metadata.json",
                "calibration_manifest.json", "drift_report.json", "drift_report.md", "drift_confusion.png",
                "drift_prob_diff.png", "drift_layers.png"}
    assert {p.name for p in a.iterdir()} == expected
    assert compare_artifacts(a, b) == []  # same model bytes, same metadata.json apart from timings
    assert (a / "labels.txt").read_text() == "cat\ndog\n"
    metadata = json.loads((a / "metadata.json").read_text())
    assert metadata["input"] == {"height": 32, "width": 32, "channels": 3, "color_order": "RGB", "pixel_range": [0, 255],
                                 "resize": "squash", "normalization": "raw", "in_model_normalization": "caffe"}
    int8 = metadata["models"]["model_int8.tflite"]
    assert int8["input_dtype"] == "int8" and int8["float_ops"] == []
    assert int8["input_quantization"]["scale"] == pytest.approx(1.0, abs=0.01)
    assert metadata["provenance"]["weights"] == "hed"
    assert len(metadata["provenance"]["dataset_sha256"]) == 64
    for name, info in metadata["artifacts"].items():
        from convert.artifacts import sha256_file

        assert sha256_file(a / name) == info["sha256"]
    manifest = json.loads((a / "calibration_manifest.json").read_text())
    assert manifest["count"] == 10 and {item["label"] for item in manifest["items"]} == {"cat", "dog"}
    # The key tree of metadata.json as the converter wrote it before convert/ was split into stages and
    # targets (commit 5e831eb): a writer that drops, renames or adds a key fails here.
    metadata["provenance"].pop("versions")  # the installed packages, not the converter's
    assert _key_tree(metadata) == json.loads(GOLDEN_KEYS.read_text())

    # make bench on the same artifacts: every case measured in its own process, at the model's input size.
    from convert.bench import CASES, run_bench

    bench = run_bench(a, runs=2)
    assert set(bench["results"]) == {name for name, _, _ in CASES} and bench["input"].startswith("one 32x32 ")
    assert all(case["latency_ms_median"] > 0 and case["runs"] == 2 for case in bench["results"].values())
    assert bench["ratios"]["int8_vs_float_tflite_size"] < 0.5  # int8 weights: a quarter of float's, plus the graph


def _key_tree(value):
    """The keys of a JSON value, nested; a list of objects by its first item's keys."""
    if isinstance(value, dict):
        return {key: _key_tree(item) for key, item in value.items()}
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return [_key_tree(value[0])]
    return None


def test_imagenet_head_pipeline_with_seeded_random_weights(shared_data, tmp_path, capsys, monkeypatch):
    """The 1000-class VGG16 top, converted the same way with its offline fallback: seeded random weights.
    This checks the pipeline (shapes, int8 ops, top-5 metadata), not predictions. The download is made to
    fail, as it does here, so that the outcome is the same on a machine that is online or has them cached."""
    from keras.src.utils import file_utils

    from convert.__main__ import main

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: offline (the test's stand-in for no internet)")

    monkeypatch.setattr(file_utils, "get_file", offline)

    code = main(["--data", str(shared_data), "--head", "imagenet", "--max-train", "4", "--max-test", "3",
                 "--calib", "4", "--float-tflite-eval", "0", "--debug-images", "0", "--min-agreement", "0",
                 "--fix", "none", "--out", str(tmp_path / "imagenet")])
    out = capsys.readouterr().out
    assert code == 0
    metadata = json.loads((tmp_path / "imagenet" / "metadata.json").read_text())
    assert len(metadata["labels"]) == 1000 and metadata["output"]["top_k"] == 5
    assert metadata["models"]["model_int8.tflite"]["float_ops"] == []
    # --debug-images 0: no per-layer debugger (for this model it holds a float and an int8 copy of 138M weights)
    drift_report = json.loads((tmp_path / "imagenet" / "drift_report.json").read_text())
    assert drift_report["layers"] == [] and drift_report["layers_measured_on"] == 0
    assert "Not measured (`--debug-images 0`)" in (tmp_path / "imagenet" / "drift_report.md").read_text()
    assert metadata["provenance"]["weights"] == "random(seed=0)"
    assert "ImageNet vgg16 weights unreachable (URL fetch failure: offline" in out and "seeded random weights" in out


def test_vgg19_from_a_weights_file(shared_data, tmp_path, capsys):
    """--arch vgg19 with --weights PATH (offline there are no VGG19 weights to download), block5 fine-tuned:
    VGG19's block5 has four convs, which the tail must follow."""
    import keras

    from convert.__main__ import main

    keras.utils.set_random_seed(0)
    weights = tmp_path / "vgg19_notop.weights.h5"
    keras.applications.VGG19(weights=None, include_top=False, input_shape=(32, 32, 3)).save_weights(weights)
    out = tmp_path / "vgg19"
    code = main(["--data", str(shared_data), "--arch", "vgg19", "--weights", str(weights), "--head", "gap",
                 "--fine-tune", "on", "--input-size", "32", "--max-train", "10", "--max-test", "5",
                 "--calib", "6", "--epochs", "1", "--float-tflite-eval", "2", "--debug-images", "1",
                 "--min-agreement", "0", "--fix", "none", "--out", str(out)])
    capsys.readouterr()
    assert code == 0
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["provenance"]["arch"] == "vgg19" and metadata["provenance"]["weights"] == f"file:{weights}"
    assert metadata["provenance"]["fine_tune"] is True
    assert metadata["models"]["model_int8.tflite"]["float_ops"] == []
