"""The K210 variant of the real VGG16 through nncase: compile it, simulate 200 shared test images, and
require the kmodel to agree with its float variant.

The variant is the planner's default for the hed weights' block4-conv classifier (VGG16 blocks 1-4 + a 1x1
conv, x0.25 at 224), initialized from the hed backbone (strongest channels, least-squares refit) with its
dense layer fit on 400 training images (a quick stand-in for `make kmodel`'s distillation: this test is
about nncase's fidelity, not the student's accuracy).
"""

from __future__ import annotations

import numpy as np
import pytest

from convert.k210.compile import KmodelInput, compile_kmodel

pytestmark = pytest.mark.slow

TRAIN_PER_CLASS = 200
TEST_PER_CLASS = 100  # 200 simulated images
CALIBRATION = 50
# kmodel (uint8 KPU) against its own float variant. Issue 4's goal (98%) is judged on the distilled model
# by `make kmodel`'s report; this quick head is near chance (about 58%), so many of its 200 images sit at
# the decision boundary, where one uint8 step flips them. Measured here: 99.0% agreement and 0.016 max
# diff for the earlier five-block student, 97.0% and 0.051 for the current block4 + 1x1-conv student
# (less quantization-friendly; noted in issue 4). A wrong input layout or channel order gives about 0.5.
MIN_AGREEMENT = 0.95
MAX_PROB_DIFF = 0.1


@pytest.mark.slow(seconds=226)  # measured alone
def test_k210_variant_compiles_and_the_simulator_agrees_with_float(toolchain, shared_data, tmp_path):
    import keras

    from convert.backbone import build_backbone
    from convert.config import Arch, HeadKind
    from convert.data import decode_split, limit_per_class, scan_dataset
    from convert.head import BLOCK4_HEAD_WIDTH, assemble, build_head, predict_batched
    from convert.k210.plan import largest_fitting
    from convert.k210.report import simulate_parallel
    from convert.k210.student import LOGITS_LAYER, build_student, init_from_teacher, teacher_layout
    from convert.tflite.drift import compare
    from convert.tflite.export import ExportContext, Target, export
    from runtime.interpreter import TFLiteModel
    from runtime.preprocess import InputSpec
    from tests.tiny_models import fit_logistic

    plan = largest_fitting("vgg16", max_gmacs=1.0, blocks=4, reduce_channels=BLOCK4_HEAD_WIDTH)
    assert plan.fits and plan.input_size == 224
    dataset = scan_dataset(shared_data)
    spec = InputSpec(plan.input_size, plan.input_size)
    train_split, train_rgb = decode_split(limit_per_class(dataset.train, TRAIN_PER_CLASS, 0), spec, "decode train")
    train_labels = train_split.labels
    test_split, test_rgb = decode_split(limit_per_class(dataset.test, TEST_PER_CLASS, 0), spec, "decode test")

    backbone = build_backbone(Arch.VGG16, "hed", 224)
    head = build_head(HeadKind.BLOCK4_CONV, (14, 14, 512), plan.classes, 0.3, 0.0, 0)
    teacher = assemble(backbone, head, 224, "block4_pool")
    student = build_student(plan)
    init_from_teacher(student, teacher_layout(teacher), train_rgb[::len(train_rgb) // 16][:16])
    pooled = predict_batched(keras.Model(student.input, student.get_layer("gap").output), train_rgb.astype(np.float32))
    # Standardized features (the pooled maps share a large offset), the standardization folded into the layer.
    mean, std = pooled.mean(0), pooled.std(0) + 1e-6
    weights, bias = fit_logistic((pooled - mean) / std, train_labels, plan.classes)
    weights, bias = weights / std[:, None], bias - (mean / std) @ weights
    student.get_layer(LOGITS_LAYER).set_weights([weights.astype(np.float32), bias.astype(np.float32)])

    ctx = ExportContext(model=student, out_dir=tmp_path, work_dir=tmp_path)
    float_tflite = export(ctx, [Target.TFLITE_FLOAT])[Target.TFLITE_FLOAT]
    kmodel_input = KmodelInput(plan.input_size, plan.input_size)
    kmodel, details = compile_kmodel(float_tflite, train_rgb[:: len(train_rgb) // CALIBRATION][:CALIBRATION],
                                     kmodel_input, tmp_path / "model_k210.kmodel", tmp_path / "compile", toolchain)
    assert details["kmodel_bytes"] < 1.2 * plan.weight_bytes  # the planner's weight estimate holds

    reference = TFLiteModel(float_tflite)
    float_scores = np.stack([reference.predict(image.astype(np.float32)) for image in test_rgb])
    kmodel_scores = simulate_parallel(kmodel, test_rgb, kmodel_input, tmp_path, toolchain)
    result = compare(float_scores, kmodel_scores, test_split.labels)
    print(f"K210 variant, 200 test images: float accuracy {result['accuracy_reference']:.3f}, kmodel "
          f"{result['accuracy_candidate']:.3f}, agreement {result['top1_agreement']:.3f}, "
          f"max prob diff {result['max_abs_prob_diff']:.3f}, kmodel {details['kmodel_bytes']:,} B, "
          f"nncase memory {details['memory']}")
    assert len(kmodel_scores) == 200
    # The quick head is weak (about 57% here), but its outputs must spread, or agreement would be a coin toss.
    assert result["accuracy_reference"] > 0.5 and float_scores[:, 0].std() > 0.02
    assert result["top1_agreement"] >= MIN_AGREEMENT
    assert result["max_abs_prob_diff"] <= MAX_PROB_DIFF


@pytest.fixture(scope="module")
def small_out(shared_data, tmp_path_factory):
    """A small `make convert` output (64x64, 30 training and 10 test photos per class), shared by the make
    kmodel and make student runs below (each writes its own files into it)."""
    from convert.__main__ import main as convert_main

    out = tmp_path_factory.mktemp("small") / "out"
    assert convert_main(["--data", str(shared_data), "--input-size", "64", "--max-train", "30", "--max-test", "10",
                         "--calib", "10", "--epochs", "2", "--float-tflite-eval", "4", "--debug-images", "2",
                         "--min-agreement", "0", "--weights", "hed", "--out", str(out)]) == 0
    return out


@pytest.mark.slow(seconds=57)
def test_make_kmodel_end_to_end_on_a_small_run(toolchain, small_out, capsys):
    """`python -m convert.k210` on a small `make convert` output: every step and artifact, not the accuracy."""
    import json

    from convert.k210.__main__ import main as kmodel_main
    from convert.k210.distill import training_dtype
    from convert.k210.report import main as report_main
    from convert.schema import K210_LABELS_HEADER as LABELS_HEADER
    from convert.schema import K210_REPORT_JSON as REPORT_JSON
    from convert.schema import K210_REPORT_MD as REPORT_MD
    from convert.schema import KMODEL_FILE, TEACHER_TARGETS_FILE

    out = small_out
    capsys.readouterr()
    assert (out / TEACHER_TARGETS_FILE).is_file()
    # The student at another input size than the teacher's (64): init at 64, distilled at 80 with the
    # teacher's 4x4 maps resized to its 5x5 grid.
    assert kmodel_main(["--artifacts", str(out), "--width", "0.25", "--input-size", "80", "--epochs", "1",
                        "--max-train", "30", "--max-test", "10", "--sim-images", "6",
                        "--toolchain", str(toolchain)]) == 0
    printed = capsys.readouterr().out
    assert "# K210 kmodel report" in printed and "blocks 1-4 + 1x1 conv 128 x0.25 at 80" in printed
    report = json.loads((out / REPORT_JSON).read_text())
    assert report["plan"]["blocks"] == 4 and report["plan"]["reduce_channels"] == 128
    assert report["init"]["dense"] == "copied"  # the student keeps the teacher head's 128 channels
    assert all(e["refit"] <= e["kept_channels"] + 1e-4 for e in report["init"]["relative_error"].values())
    assert [h["epoch"] for h in report["distillation"]["history"]] == [0, 1]  # 0: as initialized
    assert report["init"]["images"] == min(128, report["distillation"]["fit_images"])  # all there are, here
    assert report["distillation"]["warmup_epochs"] == 1.0
    assert report["distillation"]["map_weight"] == 1.0
    # make convert's teacher outputs, checked against the teacher on probe images, instead of its pass
    assert report["distillation"]["teacher_targets"].startswith("make convert's cache")
    assert report["distillation"]["dtype_policy"] == training_dtype("auto")  # bf16 only on a CPU with bf16
    assert report["kmodel"]["calibrate_method"] == "l2"  # the default; its second calibration pass ran
    results = report["results"]
    assert results["test_images"] == 20 and results["simulated_images"] == 6
    # 6 of 20 simulated: the goals are not judged on a sample, either way.
    assert results["meets_accuracy_goal"] is None and results["meets_agreement_goal"] is None
    assert "not judged, 6 of 20 test images simulated" in printed
    low, high = results["top1_agreement_ci95"]  # a sample: where the whole set's agreement may lie
    assert low <= results["top1_agreement_kmodel_vs_float"] <= high and high - low > 0.2  # 6 images say little
    assert "95% interval on this sample" in printed
    assert (out / KMODEL_FILE).read_bytes()[:8] == b"LDMK\x05\x00\x00\x00" and (out / REPORT_MD).is_file()  # V5
    assert "#define K210_INPUT_W 80" in (out / LABELS_HEADER).read_text()
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["k210"]["input"] == {"dtype": "uint8", "layout": "NCHW", "shape": [1, 3, 80, 80],
                                         "color_order": "RGB", "pixel_range": [0, 255], "resize": "squash"}
    assert metadata["artifacts"][KMODEL_FILE]["bytes"] == (out / KMODEL_FILE).stat().st_size

    # make kmodel-report: the same kmodel on every test image, the goals judged, the build's sections kept.
    assert report_main(["--artifacts", str(out), "--toolchain", str(toolchain)]) == 0
    full = json.loads((out / REPORT_JSON).read_text())
    assert full["results"]["simulated_images"] == 20 and isinstance(full["results"]["meets_agreement_goal"], bool)
    assert isinstance(full["results"]["meets_accuracy_goal"], bool)
    assert full["results"]["accuracy_k210_float"] == results["accuracy_k210_float"]  # same float variant
    assert {key: full[key] for key in ("plan", "init", "distillation", "kmodel", "timings_s")} == {
        key: report[key] for key in ("plan", "init", "distillation", "kmodel", "timings_s")}
    assert json.loads((out / "metadata.json").read_text())["k210"]["results"] == full["results"]
    assert full["results"]["top1_agreement_ci95"] is None  # every image simulated: no interval to give
    assert "not judged" not in (out / REPORT_MD).read_text() and "95% interval" not in (out / REPORT_MD).read_text()


@pytest.mark.slow(seconds=45)
def test_make_student_exports_variants_that_need_not_fit_the_k210(small_out, shared_data, capsys):
    """`python -m convert.pi.student` with two variants: each distilled student through make convert's gate
    into its own folder, which the runtime runs like the main model, and both timed again in one pass beside
    the full model; x0.75 (4.3M parameters) would not fit the K210."""
    import json

    from convert.pi.student import STUDENT_JSON, STUDENTS_DIR
    from convert.pi.student import main as student_main
    from runtime.__main__ import main as runtime_main

    capsys.readouterr()
    assert student_main(["--artifacts", str(small_out), "--variant", "0.75@32", "--variant", "0.25@32",
                         "--epochs", "1", "--max-train", "30", "--max-test", "10", "--min-agreement", "0"]) == 0
    printed = capsys.readouterr().out
    folder, narrow = (small_out / STUDENTS_DIR / name for name in ("vgg16_b4c128_x0.75_32", "vgg16_b4c128_x0.25_32"))
    assert f"-> {folder}" in printed and f"-> {narrow}" in printed
    assert {"model_int8.tflite", "model_float.tflite", "metadata.json", "labels.txt", "drift_report.json",
            "drift_report.md", STUDENT_JSON} <= {path.name for path in folder.iterdir()}
    assert not [path for path in folder.parent.iterdir() if path.name.startswith(".")]  # no half-written folder
    summary = json.loads((folder / STUDENT_JSON).read_text())
    assert "does NOT fit" in summary["plan"]["summary"]  # exported all the same: it is for a Pi
    assert summary["gate_passed"] and summary["test_images"] == 20
    assert summary["int8_bytes"] == (folder / "model_int8.tflite").stat().st_size
    assert summary["int8_bytes"] < 0.3 * summary["float_tflite_bytes"]
    latency, other = summary["latency"], json.loads((narrow / STUDENT_JSON).read_text())["latency"]
    assert set(latency["student_int8_ms"]) == {"1", "2"} and latency["ratio_to_full"]["1"] > 0
    # one pass: the same run, the same full-model medians, both variants named in it
    assert latency["run"] == other["run"] and latency["full_int8_ms"] == other["full_int8_ms"]
    assert latency["run"]["variants"] == sorted([folder.name, narrow.name]) and latency["run"]["cpu"].startswith("cpu: ")
    from scripts.student_table import rows

    table = rows(small_out)  # the README's table: make convert's model, then both variants, then the one run
    assert len(table) == 6 and table[-1].startswith("\nLatencies of one pass") and latency["run"]["cpu"] in table[-1]
    drift = json.loads((folder / "drift_report.json").read_text())
    assert drift["test"]["n"] == 20 and drift["int8_model"]["float_ops"] == []  # full integer
    assert summary["top1_agreement"] == drift["test"]["top1_agreement"]
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["labels"] == ["cat", "dog"] and metadata["input"]["height"] == 32
    # the runtime takes the folder like make convert's
    assert runtime_main(["--model", str(folder), "--source", str(shared_data / "test" / "dog"), "--headless",
                         "--max-frames", "3"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert len(lines) == 3 and {line["label"] for line in lines} <= {"cat", "dog"}
