"""``python -m convert.k210.report`` (``make kmodel-report``): the kmodel's drift report on the whole test set.

``make kmodel`` builds ``OUT/model_k210.kmodel`` and, to stay inside its 30-minute budget, checks it in nncase's
K210 simulator on a seeded sample of the test set only (``--sim-images``). The simulator is slow (on this
machine 0.7 s per image per core at 0.9 GMAC, 1.6 s at 2 GMAC), so all 2000 shared test images take 12-27
minutes on 2 cores. This command runs the kmodel that ``make kmodel`` wrote on every test image (or
``--sim-images N``) and rewrites ``k210_report.json`` / ``.md`` and the ``k210`` section of ``metadata.json``.
The issue's goals (accuracy within 3 points of the full float model, agreement >= 98%) are judged only on
the whole test set; on a sample the report gives the numbers and says "not judged".
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np

from convert.artifacts import sha256_file, write_json_atomic, write_text_atomic
from convert.k210.compile import DEFAULT_TOOLCHAIN, KmodelInput, simulate_kmodel
from convert.schema import (
    DEFAULT_ARTIFACTS,
    K210_FLOAT_TFLITE_FILE,
    K210_LABELS_HEADER,
    K210_REPORT_JSON,
    K210_REPORT_MD,
    K210_WORK_DIR,
    KMODEL_FILE,
    METADATA_FILE,
    ArtifactRecord,
    FirmwareRecord,
    K210Record,
    KmodelRecord,
    ModelMetadata,
    Provenance,
    metadata_dict,
    read_conversion,
)
from runtime.cli import run_main
from runtime.errors import ToolkitError
from runtime.preprocess import InputSpec

log = logging.getLogger(__name__)

# Goals of issue 4.
MAX_ACCURACY_GAP = 0.03  # kmodel (simulator) within 3 points of the full float VGG16 + head
MIN_AGREEMENT = 0.98  # kmodel vs its own float variant, top-1


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The 95% Wilson score interval of a proportion measured on ``n`` samples (Wilson 1927).

    A few hundred images cannot settle a 98% agreement goal: 14 differing of 500 gives 95.4% to 98.3%. The
    report puts this interval beside an agreement measured on a sample, so it is not read as the whole set's.
    """
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def simulate_parallel(kmodel: Path, images_rgb: np.ndarray, kmodel_input: KmodelInput, work: Path,
                      toolchain: Path) -> np.ndarray:
    """The simulator in one process per core this process may use, each on its share of the images (nncase's
    simulator is single-threaded)."""
    processes = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    chunks = [chunk for chunk in np.array_split(np.arange(len(images_rgb)), processes) if len(chunk)]
    with ThreadPoolExecutor(len(chunks) or 1) as pool:
        parts = pool.map(lambda item: simulate_kmodel(kmodel, images_rgb[item[1]], kmodel_input,
                                                      work / f"simulate_{item[0]}", toolchain)[0],
                         enumerate(chunks))
        return np.concatenate(list(parts))


def checked_dataset(artifacts: Path, provenance: Provenance, data: Path | None, max_train: int | None,
                    max_test: int | None, seed: int):
    """The data set ``make convert`` made ``artifacts`` from (same root, limits and seed), checked by its hash.

    Raises:
        ToolkitError: The images differ from those recorded in the metadata.
    """
    from convert.data import limit_per_class, scan_dataset

    data_root = Path(data or provenance.data_root)
    dataset = scan_dataset(data_root)
    dataset.train = limit_per_class(dataset.train, max_train, seed)
    dataset.test = limit_per_class(dataset.test, max_test, seed)
    if provenance.dataset_sha256 and dataset.fingerprint() != provenance.dataset_sha256:
        raise ToolkitError(f"{data_root}: not the images {artifacts} was made from (SHA-256 differs); pass the same "
                           "DATA=, --max-train and --max-test as for `make convert`, or rerun it")
    return dataset


def decode_checked(paths, spec: InputSpec, desc: str) -> np.ndarray:
    """Decoded images fitted to ``spec``; every one must decode (they all did when OUT was made)."""
    from convert.data import Split, decode_split

    split = Split(paths=list(paths), labels=np.zeros(len(paths), np.int64))
    kept, images = decode_split(split, spec, desc)
    if len(kept.paths) != len(paths):
        raise ToolkitError(f"{len(paths) - len(kept.paths)} images could not be decoded now but could be when OUT was "
                           "made; the data set changed: rerun `make convert`")
    return images


def float_test_scores(float_tflite: Path, labels: list[str], test_rgb: np.ndarray, threads: int | None = None):
    """The K210 variant's float TFLite on the test images, through the runtime's own path."""
    from convert.tflite.drift import run_classifier

    size = test_rgb.shape[1]
    meta = ModelMetadata(labels=labels, input=InputSpec(size, size))
    return run_classifier(float_tflite, meta, test_rgb, "K210 variant float TFLite on test", threads=threads)


def simulated_positions(test_images: int, sim_images: int | None, seed: int) -> np.ndarray:
    """Which test images a run on ``sim_images`` of them simulates (None = all): a seeded sample, sorted.
    ``make kmodel-riscv-check`` takes the same ones."""
    count = test_images if sim_images is None else min(sim_images, test_images)
    if count < test_images:
        return np.sort(np.random.default_rng(seed).permutation(test_images)[:count])
    return np.arange(test_images)


def measure(kmodel: Path, float_scores: np.ndarray, test_rgb: np.ndarray, test_labels: np.ndarray,
            kmodel_input: KmodelInput, sim_images: int | None, seed: int, work: Path, toolchain: Path,
            teacher_accuracy: float | None) -> dict:
    """The kmodel in the simulator on ``sim_images`` seeded test images (None = all) against its float scores.

    Returns the report's ``results`` section. The goals are judged (True/False) only when every test image
    was simulated; on a sample they are None.
    """
    from convert.tflite.drift import compare

    started = time.perf_counter()
    chosen = simulated_positions(len(test_rgb), sim_images, seed)
    count = len(chosen)
    kmodel_scores = simulate_parallel(kmodel, test_rgb[chosen], kmodel_input, work, toolchain)
    everything = compare(float_scores, float_scores, test_labels)
    simulated = compare(float_scores[chosen], kmodel_scores, test_labels[chosen])
    whole = count == len(test_rgb)
    kmodel_accuracy, agreement = simulated["accuracy_candidate"], simulated["top1_agreement"]
    agreeing = int(round(agreement * count))
    return {
        "test_images": int(len(test_rgb)),
        "simulated_images": int(count),
        "accuracy_full_float_vgg": teacher_accuracy,
        "accuracy_k210_float": everything["accuracy_reference"],
        "accuracy_k210_float_on_simulated": simulated["accuracy_reference"],
        "accuracy_kmodel_simulator": kmodel_accuracy,
        "top1_agreement_kmodel_vs_float": agreement,
        "top1_disagreements": count - agreeing,
        # On a sample, where the whole test set's agreement may lie (95%); None when every image was simulated.
        "top1_agreement_ci95": None if whole else [round(bound, 4) for bound in wilson_interval(agreeing, count)],
        "mean_abs_prob_diff": simulated["mean_abs_prob_diff"],
        "max_abs_prob_diff": simulated["max_abs_prob_diff"],
        "goal_accuracy_gap": MAX_ACCURACY_GAP,
        "goal_agreement": MIN_AGREEMENT,
        "meets_accuracy_goal": (None if not whole or teacher_accuracy is None
                                else teacher_accuracy - kmodel_accuracy <= MAX_ACCURACY_GAP),
        "meets_agreement_goal": None if not whole else agreement >= MIN_AGREEMENT,
        "simulate_s": round(time.perf_counter() - started, 1),
    }


def write_report(artifacts: Path, report: dict, labels: list[str]) -> None:
    """``k210_report.json`` / ``.md``, the board program's labels header, and ``metadata.json``'s k210 section."""
    artifacts = Path(artifacts)
    size = report["plan"]["input_size"]
    write_json_atomic(artifacts / K210_REPORT_JSON, report)
    write_text_atomic(artifacts / K210_REPORT_MD, render_markdown(report))
    write_text_atomic(artifacts / K210_LABELS_HEADER, labels_header(labels, size, size))
    metadata, conversion = read_conversion(artifacts)
    kmodel = KmodelRecord.from_dict(report["kmodel"], str(artifacts / K210_REPORT_JSON))
    firmware = report.get("firmware")  # make firmware's image of this kmodel (make kmodel-report keeps it)
    conversion.k210 = K210Record(**asdict(kmodel), plan=report["plan"]["summary"], results=report["results"],
                                 firmware=None if firmware is None else FirmwareRecord.from_dict(firmware))
    for name in (KMODEL_FILE, K210_FLOAT_TFLITE_FILE):
        conversion.artifacts[name] = ArtifactRecord((artifacts / name).stat().st_size, sha256_file(artifacts / name))
    write_json_atomic(artifacts / METADATA_FILE, metadata_dict(metadata, conversion))


def labels_header(labels: list[str], width: int, height: int) -> str:
    """A C header with the labels and input size, for the board program."""
    quoted = ", ".join(json.dumps(label) for label in labels)
    return (f"/* Written by `make kmodel`: what model_k210.kmodel expects and answers. */\n#pragma once\n"
            f"#define K210_NUM_CLASSES {len(labels)}\n#define K210_INPUT_W {width}\n#define K210_INPUT_H {height}\n"
            f"static const char *const K210_LABELS[K210_NUM_CLASSES] = {{{quoted}}};\n")


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def _verdict(meets: bool | None, results: dict) -> str:
    if meets is None:
        return (f"not judged, {results['simulated_images']} of {results['test_images']} test images simulated "
                "(`make kmodel-report` runs them all)")
    return "met" if meets else "MISSED"


def _sample_note(results: dict) -> str:
    """How many images differ, and on a sample the 95% interval of the whole set's agreement."""
    note = f", {results['top1_disagreements']} of {results['simulated_images']} differ"
    interval = results["top1_agreement_ci95"]
    if interval:
        note += f"; 95% interval on this sample {_pct(interval[0])} to {_pct(interval[1])}"
    return note


def render_markdown(report: dict) -> str:
    r, k, d = report["results"], report["kmodel"], report["distillation"]
    memory = k["nncase_memory_bytes"]
    lines = [
        "# K210 kmodel report", "",
        f"Plan: {report['plan']['summary']}", "",
        "| | accuracy |", "|---|---|",
        f"| full float VGG + head (make convert) | {_pct(r['accuracy_full_float_vgg'])} |",
        f"| K210 variant, float ({r['test_images']} test images) | {_pct(r['accuracy_k210_float'])} |",
        f"| kmodel in nncase's simulator ({r['simulated_images']} test images) | {_pct(r['accuracy_kmodel_simulator'])} |",
        "",
        f"Top-1 agreement kmodel vs its float variant: {_pct(r['top1_agreement_kmodel_vs_float'])}"
        f"{_sample_note(r)} (goal >= {_pct(r['goal_agreement'])}: {_verdict(r['meets_agreement_goal'], r)}); mean/max abs "
        f"prob diff {r['mean_abs_prob_diff']:.4f} / {r['max_abs_prob_diff']:.4f}.",
        f"Accuracy gap to the full float model: goal <= {100 * r['goal_accuracy_gap']:.0f} points: "
        f"{_verdict(r['meets_accuracy_goal'], r)}.", "",
        f"Initialization: {report['init']['method']} (dense layer {report['init']['dense']}). Distillation: "
        f"{d['epochs']} epochs in {d['dtype_policy']}"
        + (f", blocks 1-{d['frozen_blocks']} frozen as initialized" if d.get("frozen_blocks") else "")
        + (f"; teacher targets: {d['teacher_targets']}" if d.get("teacher_targets") else "")
        + ". Held-out accuracy "
        f"({d['held_out_images']} training images) by epoch: "
        + ", ".join(f"{h['epoch']}: {_pct(h['val_accuracy'])}" for h in d["history"]) + ".", "",
        f"kmodel: {k['bytes']:,} bytes (V5), uint8 PTQ on {k['calibration_images']} calibration images "
        f"({k['calibrate_method']}), input {k['input']['dtype']} {k['input']['layout']} {k['input']['shape']} "
        f"{k['input']['color_order']}; nncase memory: " + ", ".join(f"{n} {v:,} B" for n, v in memory.items()), "",
        f"Toolchain: {k['toolchain']}. Build timings (s): "
        + ", ".join(f"{n} {v}" for n, v in report["timings_s"].items())
        + f". Simulator: {r['simulate_s']} s.",
    ]
    return "\n".join(lines) + "\n"


def checked_kmodel(artifacts: Path):
    """What ``make kmodel`` left in ``artifacts``, checked: its report, the kmodel's record (the file's SHA-256
    must match it), the metadata and the data set it was made from (same root, limits, seed and hash).

    Returns:
        (the report dict, KmodelRecord, ModelMetadata, the checked DataSet).

    Raises:
        ToolkitError: No report or kmodel, a kmodel that is not the one the report describes, or other images.
    """
    artifacts = Path(artifacts)
    report_path, kmodel = artifacts / K210_REPORT_JSON, artifacts / KMODEL_FILE
    if not report_path.is_file() or not kmodel.is_file():
        raise ToolkitError(f"{artifacts}: no {KMODEL_FILE} with its {K210_REPORT_JSON}; run `make kmodel` first")
    report = json.loads(report_path.read_text(encoding="utf-8"))
    record = KmodelRecord.from_dict(report.get("kmodel"), str(report_path))
    if sha256_file(kmodel) != record.sha256:
        raise ToolkitError(f"{kmodel}: not the kmodel {report_path.name} describes (SHA-256 differs); rerun "
                           "`make kmodel`")
    metadata, conversion = read_conversion(artifacts)
    options = report["options"]
    dataset = checked_dataset(artifacts, conversion.provenance, options.get("data") or None,
                              options.get("max_train"), options.get("max_test"), options.get("seed", 0))
    return report, record, metadata, dataset


def refresh(artifacts: Path, sim_images: int | None, toolchain: Path = DEFAULT_TOOLCHAIN) -> dict:
    """Re-measures the kmodel ``make kmodel`` wrote in ``artifacts`` on ``sim_images`` test images (None = all),
    with the data set, limits and seed of its build; rewrites the report. Returns it.

    Raises:
        ToolkitError: No report or kmodel, or the kmodel is not the one the report describes.
    """
    artifacts = Path(artifacts)
    kmodel = artifacts / KMODEL_FILE
    report, record, metadata, dataset = checked_kmodel(artifacts)
    options = report["options"]
    size = report["plan"]["input_size"]
    test_rgb = decode_checked(dataset.test.paths, InputSpec(size, size, metadata.input.resize), "decode test")
    float_scores = float_test_scores(artifacts / K210_FLOAT_TFLITE_FILE, metadata.labels, test_rgb)
    kmodel_input = KmodelInput(size, size, layout=record.input["layout"])
    report["results"] = measure(kmodel, float_scores, test_rgb, dataset.test.labels, kmodel_input, sim_images,
                                options.get("seed", 0), artifacts / K210_WORK_DIR, toolchain,
                                report["results"]["accuracy_full_float_vgg"])
    write_report(artifacts, report, metadata.labels)
    return report


def sim_images_arg(text: str) -> int | None:
    """``--sim-images``: a positive count or "all" (None)."""
    if text == "all":
        return None
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a positive number of test images or 'all'")
    return count


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m convert.k210.report", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--artifacts", type=Path, default=DEFAULT_ARTIFACTS,
                        help="the folder make kmodel wrote model_k210.kmodel and k210_report.json into")
    parser.add_argument("--sim-images", type=sim_images_arg, default=None,
                        help="test images run in the simulator (N or all; default all)")
    parser.add_argument("--toolchain", type=Path, default=DEFAULT_TOOLCHAIN, help="make k210-toolchain's folder")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    def body() -> int:
        print(render_markdown(refresh(args.artifacts, args.sim_images, args.toolchain)), flush=True)
        return 0

    return run_main(body)


if __name__ == "__main__":
    sys.exit(main())
