"""``make student`` (``python -m convert.pi.student``): a Pi-sized VGG16, the K210 path's distilled student,
exported as a full-integer int8 TFLite through ``make convert``'s gate and drift report.

A full VGG16 at 224x224 is 15.5 GMAC: a few frames per second on a Pi at best. The K210 path already plans
and distills narrower VGG16s from ``OUT``'s float model (``convert/k210``: strongest channels refit by least
squares, then distillation on the training set); here the same student, of any ``--width`` and
``--input-size`` (it need not fit the K210), is quantized like the main model (``convert/tflite/gate.py``:
int8 against its float on the test set, per-layer blame, the float-fallback fix) into its own folder,
``OUT/students/<variant>/``, which ``python -m runtime --model`` runs like the main model. Its int8 latency is
measured at 1 and 2 threads beside the full model's, in the same run.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from convert.artifacts import write_json_atomic, write_text_atomic
from convert.config import ConvertOptions
from convert.data import Prepared
from convert.float_model import FloatModel, runtime_metadata
from convert.head import predict_batched
from convert.k210.options import KmodelOptions
from convert.k210.pipeline import distill, options_section
from convert.schema import LABELS_FILE, METADATA_FILE
from runtime.preprocess import InputSpec, Normalization, resize_rgb

log = logging.getLogger(__name__)

STUDENTS_DIR = "students"  # inside OUT: one folder per variant
STUDENT_JSON = "student.json"  # in a variant's folder: its plan, distillation, drift summary, latency
LATENCY_RUNS = 30  # timed invokes per model and thread count (median), after runtime.timing's warm-up


def variant_dir_name(plan) -> str:
    """``vgg16_b4c128_x0.375_224``: the variant's folder name (arch, blocks + 1x1 conv, width, size)."""
    blocks = f"_b{plan.blocks}" if plan.blocks < 5 else ""
    reduce = f"c{plan.reduce_channels}" if plan.reduce_channels else ""
    return re.sub(r"[^A-Za-z0-9_.]+", "_", f"{plan.arch}{blocks}{reduce}_x{plan.width:g}_{plan.input_size}")


def median_latency_ms(model_path: Path, metadata, image_rgb: np.ndarray, threads: int) -> float:
    """Median invoke time of ``model_path`` (preprocess excluded: the same for every model of one size)."""
    from runtime.interpreter import Classifier
    from runtime.timing import time_calls

    classifier = Classifier(model_path, metadata, num_threads=threads)
    tensor = classifier.input_tensor_rgb(image_rgb)
    return time_calls(lambda: classifier.invoke(tensor), LATENCY_RUNS).median_ms


def export_student(options: KmodelOptions, convert_options: ConvertOptions | None = None) -> dict:
    """Distills the variant and exports it through the gate into ``OUT/students/<variant>/``; returns its
    summary (also written there as ``student.json``).

    Args:
        options: The variant and its distillation (``make kmodel``'s options; the kmodel ones are unused).
        convert_options: The gate's budget and fix (``make convert``'s defaults when None).

    Raises:
        ToolkitError: bad input (as ``make kmodel``), or a failed export.
    """
    from convert.tflite.gate import quantize_and_check
    from runtime.metadata import locate_model

    started_all = time.perf_counter()
    distilled = distill(options, for_kpu=False)
    options, inputs, plan = distilled.options, distilled.inputs, distilled.plan
    artifacts = Path(options.artifacts)
    labels = list(distilled.metadata.labels)

    started = time.perf_counter()
    student = distilled.student
    spec = InputSpec(plan.input_size, plan.input_size, distilled.metadata.input.resize, Normalization.RAW)
    validation_index = inputs.held_out
    float_model = FloatModel(
        model=student, labels=labels, test_scores=predict_batched(student, inputs.test_rgb),
        validation_index=validation_index,
        validation_scores=lambda: predict_batched(student, inputs.train_rgb[validation_index]),
        description={"arch": plan.name, "head": "distilled student's GAP + dense",
                     "weights": f"distilled from {distilled.teacher_path.name}"},
        top_k=distilled.metadata.top_k, normalization=plan.normalization)
    prepared = Prepared(inputs.dataset, spec, inputs.train_rgb, inputs.test_rgb)
    gate_options = convert_options or ConvertOptions(data=Path(inputs.dataset.root), out=artifacts)
    final = artifacts / STUDENTS_DIR / variant_dir_name(plan)
    final.parent.mkdir(parents=True, exist_ok=True)
    # Written into a sibling temporary folder, then moved into place: never half a variant folder.
    with tempfile.TemporaryDirectory(prefix=f".{final.name}-", dir=final.parent) as tmp:
        out = Path(tmp) / "out"
        out.mkdir()
        outcome = quantize_and_check(float_model, prepared, inputs.calibration.astype(np.float32), gate_options,
                                     out, Path(tmp))
        metadata = runtime_metadata(float_model, spec)
        write_json_atomic(out / METADATA_FILE, metadata.to_dict())
        write_text_atomic(out / LABELS_FILE, "\n".join(labels) + "\n")
        options.timings_s["export and gate"] = round(time.perf_counter() - started, 1)

        started = time.perf_counter()
        image = inputs.test_rgb[0]
        full_path, full_metadata = locate_model(artifacts)
        full_image = resize_rgb(image, full_metadata.input) if full_metadata.input.height != plan.input_size else image
        latency = {"student_int8_ms": {}, "full_int8_ms": {}}
        for threads in (1, 2):
            latency["student_int8_ms"][str(threads)] = round(
                median_latency_ms(outcome.int8_path, metadata, image, threads), 2)
            latency["full_int8_ms"][str(threads)] = round(
                median_latency_ms(full_path, full_metadata, full_image, threads), 2)
        latency["ratio_to_full"] = {key: round(latency["student_int8_ms"][key] / latency["full_int8_ms"][key], 3)
                                    for key in ("1", "2")}
        options.timings_s["latency"] = round(time.perf_counter() - started, 1)

        test = outcome.report["test"]
        summary = {
            "variant": plan.name,
            "folder": str(final),
            "gmacs": round(plan.macs / 1e9, 3),
            "params": int(plan.params),
            "int8_bytes": outcome.int8_path.stat().st_size,
            "float_tflite_bytes": outcome.float_path.stat().st_size,
            "test_images": test.get("n"),
            "accuracy_float": test.get("accuracy_float"),
            "accuracy_int8": test.get("accuracy_int8"),
            "top1_agreement": test.get("top1_agreement"),
            "gate_passed": outcome.passed,
            "teacher_accuracy": None if distilled.conversion.results is None
            else distilled.conversion.results.accuracy_float,
            "latency": latency,
            **distilled.sections,
            "options": options_section(options),
            "timings_s": {**options.timings_s, "total": round(time.perf_counter() - started_all, 1)},
        }
        write_json_atomic(out / STUDENT_JSON, summary)
        if final.exists():
            shutil.rmtree(final)
        out.rename(final)
    return summary


def summary_line(summary: dict) -> str:
    latency = summary["latency"]
    accuracy = summary["accuracy_float"], summary["accuracy_int8"]
    return (f"student {summary['variant']}: {summary['gmacs']:.2f} GMAC, {summary['params'] / 1e6:.2f}M params, "
            f"int8 {summary['int8_bytes'] / 1e6:.2f} MB; test float "
            + (f"{accuracy[0]:.2%} int8 {accuracy[1]:.2%}, " if accuracy[0] is not None else "")
            + f"agreement {summary['top1_agreement']:.2%} ({'PASS' if summary['gate_passed'] else 'FAIL'}); "
            f"int8 {latency['student_int8_ms']['1']:.1f} / {latency['student_int8_ms']['2']:.1f} ms at 1 / 2 "
            f"threads = {latency['ratio_to_full']['1']:.3f} / {latency['ratio_to_full']['2']:.3f} of the full "
            f"model's -> {summary['folder']}")


def build_parser():
    import argparse

    from convert.k210.__main__ import add_distillation_arguments
    from convert.schema import DEFAULT_ARTIFACTS
    from runtime.argtypes import fraction, positive_count_or_all, positive_float, positive_int

    parser = argparse.ArgumentParser(prog="python -m convert.pi.student", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--artifacts", type=Path, default=DEFAULT_ARTIFACTS,
                        help="the make convert folder (teacher, calibration list); the variant goes to "
                             f"ARTIFACTS/{STUDENTS_DIR}/")
    parser.add_argument("--data", type=Path, default=None, help="data root; None = the one recorded in metadata.json")
    parser.add_argument("--width", type=positive_float, required=True, help="width multiplier of VGG16's channels")
    parser.add_argument("--input-size", type=positive_int, required=True, help="square input size")
    parser.add_argument("--calib-images", type=positive_count_or_all, default=None,
                        help="int8 calibration images: this many of make convert's, evenly spaced (N or all)")
    parser.add_argument("--min-agreement", type=fraction, default=ConvertOptions.min_agreement,
                        help="drift budget: least top-1 agreement of int8 with the student's float on the test set")
    add_distillation_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    import sys

    from runtime.cli import run_main

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from convert.k210.__main__ import distillation_options

    options = KmodelOptions(artifacts=args.artifacts, data=args.data, width=args.width, input_size=args.input_size,
                            calibration_images=args.calib_images, **distillation_options(args))

    def body() -> int:
        gate = ConvertOptions(data=args.data or Path("."), out=args.artifacts, min_agreement=args.min_agreement)
        summary = export_student(options, gate)
        print(summary_line(summary), file=sys.stdout, flush=True)
        return 0 if summary["gate_passed"] else 3

    return run_main(body, "the artifacts folder keeps what make convert wrote")


if __name__ == "__main__":
    import sys

    sys.exit(main())
