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
from convert.schema import INT8_TFLITE_FILE, LABELS_FILE, METADATA_FILE
from runtime.errors import ToolkitError
from runtime.preprocess import InputSpec, Normalization, load_image_rgb

log = logging.getLogger(__name__)

STUDENTS_DIR = "students"  # inside OUT: one folder per variant
STUDENT_JSON = "student.json"  # in a variant's folder: its plan, distillation, drift summary, latency
# The drift report's advice when no float fallback meets the budget: narrow layers quantize with more noise.
STUDENT_REMEDY = "a wider --variant, or more --epochs; see README's limits of the Pi-sized variants"
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


def measure_latency(artifacts: Path, students: dict[str, Path], image_rgb: np.ndarray) -> dict[str, dict]:
    """Int8 latency of each student and of ``artifacts``' own model at 1 and 2 threads, all in this one pass
    (for each thread count: the full model, then every student, on ``image_rgb``).

    Args:
        artifacts: The make convert folder (its int8 model is the reference).
        students: Variant folder name -> its int8 model (``metadata.json`` beside it).
        image_rgb: The photo every model is timed on (each resizes it to its input).

    Returns:
        Variant folder name -> its ``latency`` section: its and the full model's medians, the ratios, and the
        run they were measured in (time, CPU, the variants measured together).
    """
    from runtime.cpu import this_cpu
    from runtime.metadata import locate_model, read_metadata

    full_path, full_metadata = locate_model(artifacts)
    metadatas = {name: read_metadata(path.parent) for name, path in students.items()}
    full_ms, student_ms = {}, {name: {} for name in students}
    for threads in ("1", "2"):
        full_ms[threads] = round(median_latency_ms(full_path, full_metadata, image_rgb, int(threads)), 2)
        for name, path in students.items():
            student_ms[name][threads] = round(median_latency_ms(path, metadatas[name], image_rgb, int(threads)), 2)
    run = {"measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cpu": this_cpu().notice(),
           "variants": sorted(students)}
    return {name: {"student_int8_ms": ms, "full_int8_ms": full_ms,
                   "ratio_to_full": {key: round(ms[key] / full_ms[key], 3) for key in ms}, "run": run}
            for name, ms in student_ms.items()}


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
        top_k=distilled.metadata.top_k, normalization=plan.normalization, remedy=STUDENT_REMEDY)
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
        probe = Path(inputs.dataset.test.paths[0])
        latency = measure_latency(artifacts, {final.name: outcome.int8_path}, load_image_rgb(probe))[final.name]
        latency["image"] = str(probe)
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
            "verdict": outcome.report["verdict"],
            "float_ops": len(outcome.report["int8_model"]["float_ops"]),
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


def export_students(variants: list[KmodelOptions], convert_options: ConvertOptions | None = None) -> list[dict]:
    """:func:`export_student` for each variant, then (for more than one) their latencies measured again all in
    one pass beside ``OUT``'s model, so that the table's rows come from one run; each ``student.json``'s
    ``latency`` is rewritten with them. Every variant is planned first, so that a bad one fails before any
    distillation. Returns the summaries.

    Raises:
        ToolkitError: bad input (as ``make kmodel``), two variants with one folder, or a failed export.
    """
    from convert.k210.pipeline import plan_from_artifacts
    from convert.schema import KERAS_FILE

    folders = [variant_dir_name(plan_from_artifacts(options, Path(options.artifacts) / KERAS_FILE, for_kpu=False)[2])
               for options in variants]
    if len(set(folders)) < len(folders):
        raise ToolkitError(f"two variants would share one folder ({', '.join(folders)}); give distinct ones")
    summaries = [export_student(options, convert_options) for options in variants]
    if len(summaries) > 1:
        folders = {Path(summary["folder"]).name: Path(summary["folder"]) for summary in summaries}
        image = Path(summaries[0]["latency"]["image"])
        log.info("latency of %d variants and the full model, in one pass", len(folders))
        together = measure_latency(Path(variants[0].artifacts),
                                   {name: folder / INT8_TFLITE_FILE for name, folder in folders.items()},
                                   load_image_rgb(image))
        for summary in summaries:
            summary["latency"] = {**together[Path(summary["folder"]).name], "image": str(image)}
            write_json_atomic(Path(summary["folder"]) / STUDENT_JSON, summary)
    return summaries


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


def width_at_size(text: str) -> tuple[float, int]:
    """``WIDTH@SIZE`` (e.g. ``0.375@224``) -> (width multiplier, square input size)."""
    import argparse

    from runtime.argtypes import positive_float, positive_int

    try:
        width, size = text.split("@")
        return positive_float(width), positive_int(size)
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError(f"expected WIDTH@SIZE, e.g. 0.375@224, got {text!r}") from None


def build_parser():
    import argparse

    from convert.k210.__main__ import add_distillation_arguments
    from convert.schema import DEFAULT_ARTIFACTS
    from runtime.argtypes import OneLineParser, fraction, positive_count_or_all, positive_float, positive_int

    parser = OneLineParser(prog="python -m convert.pi.student", description=__doc__.splitlines()[0],
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--artifacts", type=Path, default=DEFAULT_ARTIFACTS,
                        help="the make convert folder (teacher, calibration list); the variant goes to "
                             f"ARTIFACTS/{STUDENTS_DIR}/")
    parser.add_argument("--data", type=Path, default=None, help="data root; None = the one recorded in metadata.json")
    parser.add_argument("--variant", type=width_at_size, action="append", default=None, metavar="WIDTH@SIZE",
                        help="a variant (repeat for several, built one after the other, their latencies then "
                             "measured again in one pass): width multiplier of VGG16's channels @ square input size")
    parser.add_argument("--width", type=positive_float, default=None,
                        help="one variant's width multiplier (with --input-size; or use --variant)")
    parser.add_argument("--input-size", type=positive_int, default=None, help="one variant's square input size")
    parser.add_argument("--calib-images", type=positive_count_or_all, default=None,
                        help="int8 calibration images: this many of make convert's, evenly spaced (N or all)")
    parser.add_argument("--min-agreement", type=fraction, default=ConvertOptions.min_agreement,
                        help="drift budget: least top-1 agreement of int8 with the student's float on the test set")
    add_distillation_arguments(parser)
    return parser


def variants_asked(parser, args) -> list[tuple[float, int]]:
    """The (width, size) pairs of the command line, in order, each once; a usage error otherwise."""
    if (args.width is None) != (args.input_size is None):
        parser.error("--width and --input-size go together (or use --variant WIDTH@SIZE)")
    variants = list(args.variant or []) + ([(args.width, args.input_size)] if args.width is not None else [])
    if not variants:
        parser.error("no variant: give --variant WIDTH@SIZE (repeatable) or --width and --input-size")
    repeated = sorted({f"{w:g}@{s}" for w, s in variants if variants.count((w, s)) > 1})
    if repeated:
        parser.error(f"variant {', '.join(repeated)} asked more than once")
    return variants


def main(argv: list[str] | None = None) -> int:
    import sys

    from runtime.cli import run_main

    parser = build_parser()
    args = parser.parse_args(argv)
    variants = variants_asked(parser, args)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from convert.k210.__main__ import distillation_options

    options = [KmodelOptions(artifacts=args.artifacts, data=args.data, width=width, input_size=size,
                             calibration_images=args.calib_images, **distillation_options(args))
               for width, size in variants]

    def body() -> int:
        gate = ConvertOptions(data=args.data or Path("."), out=args.artifacts, min_agreement=args.min_agreement)
        summaries = export_students(options, gate)
        for summary in summaries:
            print(summary_line(summary), file=sys.stdout, flush=True)
        return 0 if all(summary["gate_passed"] for summary in summaries) else 3

    return run_main(body, "the artifacts folder keeps what make convert wrote")


if __name__ == "__main__":
    import sys

    sys.exit(main())
