"""The converter end to end on the shared photos: the CLI's artifacts and their determinism, VGG16's own
ImageNet top, VGG19 from a weights file. The drift gate on the real VGG16 is tested in
tests/tflite/test_gate_vgg16_*_slow.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripts.compare_artifacts import compare as compare_artifacts

pytestmark = pytest.mark.slow

GOLDEN_KEYS = Path(__file__).with_name("golden") / "metadata_keys.json"


@pytest.mark.slow(seconds=60)  # measured alone
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
                "drift_prob_diff.png", "drift_layers.png", "teacher_targets.npz"}
    assert {p.name for p in a.iterdir()} == expected
    assert compare_artifacts(a, b) == []  # same model bytes, same metadata.json apart from timings
    assert (a / "teacher_targets.npz").read_bytes() == (b / "teacher_targets.npz").read_bytes()  # for make kmodel
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
    from runtime.cpu import this_cpu  # the CPU line with its int8 features (tests/runtime/test_cpu.py: the parsing)

    assert bench["machine"]["cpu"] == this_cpu().to_dict() and this_cpu().notice() in capsys.readouterr().out


def _key_tree(value):
    """The keys of a JSON value, nested; a list of objects by its first item's keys."""
    if isinstance(value, dict):
        return {key: _key_tree(item) for key, item in value.items()}
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return [_key_tree(value[0])]
    return None


@pytest.mark.slow(seconds=156)
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


@pytest.mark.slow(seconds=44)
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
