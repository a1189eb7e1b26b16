"""``make kmodel``: the float VGG + head in OUT -> a K210 kmodel, measured.

Steps: plan a narrowed copy of OUT's float model that fits the K210 (convert/k210_plan.py) -> build it and
initialize it from that model's layers (strongest channels, refit by least squares: convert/k210_student.py)
-> distill it from OUT's float model on the training set -> float TFLite ->
nncase uint8 PTQ with OUT's calibration images -> ``model_k210.kmodel`` (uint8 RGB in, planar) -> run a
seeded sample of the test set through nncase's K210 simulator (``--sim-images``; the float variant runs on
all of it) -> ``k210_report.json`` / ``.md`` and a ``k210`` section in ``metadata.json``. The simulator is too
slow for all 2000 test images inside make kmodel's 30 minutes: ``make kmodel-report``
(convert/k210_report.py) runs them all and rewrites the report.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from enum import Enum
from pathlib import Path

import numpy as np

from calibration.select import load_calibration_images, read_manifest
from convert.artifacts import sha256_file
from convert.k210 import teacher_cache
from convert.k210.compile import KmodelInput, compile_kmodel, toolchain_python, toolchain_route
from convert.k210.distill import (
    frozen_blocks,
    load_teacher,
    rebuilt,
    resize_maps,
    teacher_outputs,
    train_student,
    training_dtype,
)
from convert.k210.options import KmodelOptions
from convert.k210.plan import VGG_BLOCKS, Plan, largest_fitting, plan_vgg
from convert.k210.report import checked_dataset, decode_checked, float_test_scores, measure, write_report
from convert.schema import (
    BROUGHT_HEADS,
    K210_FLOAT_KERAS_FILE,
    K210_FLOAT_TFLITE_FILE,
    K210_WORK_DIR,
    KERAS_FILE,
    KMODEL_FILE,
    TEACHER_TARGETS_FILE,
    KmodelRecord,
    Provenance,
    read_conversion,
)
from runtime.errors import ToolkitError
from runtime.preprocess import InputSpec, ResizeMode

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StudentShape:
    """The teacher's shape a student mirrors: which VGG, how many conv blocks, the head's 1x1 conv."""

    arch: str = "vgg16"
    blocks: int | None = None  # None = all
    reduce_channels: int = 0


def student_shape(provenance: Provenance) -> StudentShape:
    """The shape of the ``make convert`` model recorded in its metadata (read before any model is loaded).

    Raises:
        ToolkitError: The model has no trained head (VGG's own ImageNet top) to distill.
    """
    from convert.config import HeadKind
    from convert.head import BLOCK4_HEAD_WIDTH, head_input

    arch, head = provenance.arch, provenance.head
    if head is None:
        return StudentShape(arch)
    if head in BROUGHT_HEADS:  # a brought model: a pooled head of our own on all five blocks
        return StudentShape(arch if arch in VGG_BLOCKS else "vgg16")
    kind = HeadKind(head)
    if kind is HeadKind.IMAGENET:
        raise ToolkitError("the make convert model is VGG's own ImageNet top, with no cats/dogs head to distill; "
                           "rerun make convert with --head gap, flatten-mlp or block4-conv")
    if head_input(kind) == "block4_pool":
        return StudentShape(arch, 4, BLOCK4_HEAD_WIDTH if kind is HeadKind.BLOCK4_CONV else 0)
    return StudentShape(arch)


def choose_plan(options: KmodelOptions, classes: int, shape: StudentShape = StudentShape(),
                prefer_size: int | None = None, for_kpu: bool = True) -> Plan:
    """The planned variant; with ``for_kpu``, a variant that cannot fit the K210 is refused with the planner's
    reasons, before any work (a variant for a Pi, ``make student``, need not fit it when its width and size
    are given).

    With ``prefer_size`` (a brought teacher's input size) and no ``--input-size``, the largest variant at that
    size is chosen if one fits.

    Raises:
        ToolkitError: Nothing fits, or the asked-for variant does not.
    """
    size = options.input_size
    if size is None and prefer_size is not None and largest_fitting(
            shape.arch, classes, options.deployment, options.max_gmacs, shape.blocks, shape.reduce_channels,
            sizes=(prefer_size,)) is not None:
        size = prefer_size
    if options.width is not None and size is not None:
        plan = plan_vgg(shape.arch, options.width, size, classes, options.deployment, shape.blocks,
                        shape.reduce_channels)
    else:
        plan = largest_fitting(shape.arch, classes, options.deployment, options.max_gmacs, shape.blocks,
                               shape.reduce_channels, sizes=None if size is None else (size,))
        if plan is None:
            raise ToolkitError(f"no {shape.arch} variant fits the {options.deployment.value} budget under "
                               f"{options.max_gmacs} GMAC; raise --max-gmacs or pick --deployment")
    if for_kpu and not plan.fits:
        raise ToolkitError(f"{plan.name} does not fit the K210: "
                           f"{'; '.join(plan.problems)}; see `python -m convert.k210.plan`")
    return plan


def _timed(options: KmodelOptions, name: str, started: float) -> None:
    options.timings_s[name] = round(time.perf_counter() - started, 1)
    log.info("%s: %.1f s", name, options.timings_s[name])


@dataclass
class Inputs:
    """Decoded images of a run: training (fit + held out), test, calibration."""

    train_rgb: np.ndarray  # at the student's size
    teacher_rgb: np.ndarray  # at the teacher's size (the same array when the sizes agree)
    train_labels: np.ndarray
    train_files: list[str]  # paths relative to the data root, in the rows' order
    fit_index: np.ndarray
    held_out: np.ndarray
    test_rgb: np.ndarray
    test_labels: np.ndarray
    calibration: np.ndarray
    dataset: object = None  # the checked data set (convert.data.DataSet) the arrays were decoded from


def spread(items: list, count: int | None) -> list:
    """``count`` items evenly spaced over ``items`` (all of them if None or more): over a class-sorted list
    the classes keep their shares."""
    if count is None or count >= len(items):
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, count).round().astype(int)]


def load_inputs(options: KmodelOptions, provenance: Provenance, size: int, teacher_size: int,
                resize: ResizeMode = ResizeMode.SQUASH) -> Inputs:
    """The same data set, calibration list (each file checked against its hash) and held-out images as
    ``make convert`` used, fitted to the input the way the model was trained (``resize``, from metadata.json)."""
    from convert.float_model import held_out_index

    artifacts = Path(options.artifacts)
    dataset = checked_dataset(artifacts, provenance, options.data, options.max_train, options.max_test, options.seed)
    spec, teacher_spec = InputSpec(size, size, resize), InputSpec(teacher_size, teacher_size, resize)
    train_rgb = decode_checked(dataset.train.paths, spec, "decode train (student size)")
    teacher_rgb = train_rgb if size == teacher_size else decode_checked(dataset.train.paths, teacher_spec,
                                                                        "decode train (teacher size)")
    items = spread(read_manifest(artifacts / provenance.calibration.manifest), options.calibration_images)
    # RGB 0..255 (raw normalization), as uint8: the kmodel's input type
    calibration = load_calibration_images(items, dataset.root, spec).astype(np.uint8)
    train_files = [path.relative_to(dataset.root).as_posix() for path in dataset.train.paths]
    position = {file: i for i, file in enumerate(train_files)}
    held_out = held_out_index(dataset.train.labels, {position[i.file] for i in items if i.file in position},
                              options.seed, trained_here=provenance.head not in BROUGHT_HEADS
                              or provenance.retrained_head is not None)
    return Inputs(train_rgb=train_rgb, teacher_rgb=teacher_rgb, train_labels=dataset.train.labels,
                  train_files=train_files,
                  fit_index=np.setdiff1d(np.arange(len(train_rgb)), held_out), held_out=held_out,
                  test_rgb=decode_checked(dataset.test.paths, spec, "decode test"), test_labels=dataset.test.labels,
                  calibration=calibration, dataset=dataset)


def export_float(student, artifacts: Path) -> Path:
    """Float Keras + TFLite of the variant into ``artifacts``; returns the float TFLite nncase starts from."""
    from convert.tflite.export import ExportContext, Target, export

    # Staged inside the artifacts folder: os.replace cannot move a file across file systems (EXDEV), and /tmp
    # is often another one.
    with tempfile.TemporaryDirectory(prefix=".kmodel-export-", dir=artifacts) as tmp:
        ctx = ExportContext(model=student, out_dir=Path(tmp), work_dir=Path(tmp))
        written = export(ctx, [Target.KERAS, Target.TFLITE_FLOAT])
        float_tflite = artifacts / K210_FLOAT_TFLITE_FILE
        os.replace(written[Target.TFLITE_FLOAT], float_tflite)
        os.replace(written[Target.KERAS], artifacts / K210_FLOAT_KERAS_FILE)
    return float_tflite


@dataclass
class Distilled:
    """Steps 1-4 of a run: the student distilled from ``make convert``'s float model, with what it came from.

    Attributes:
        student: The float32 Keras student (RGB 0..255 in, probabilities out).
        plan: Its planned shape.
        inputs: The decoded data set and calibration images.
        metadata: ``make convert``'s device metadata (labels, input).
        conversion: ``make convert``'s conversion sections (provenance, results).
        sections: The report's ``plan``, ``init`` and ``distillation`` sections.
        options: The run's options (``freeze_blocks`` resolved; ``timings_s`` filled so far).
        teacher_path: The teacher's Keras file.
    """

    student: object
    plan: Plan
    inputs: Inputs
    metadata: object
    conversion: object
    sections: dict
    options: KmodelOptions
    teacher_path: Path


def distill(options: KmodelOptions, for_kpu: bool = True) -> Distilled:
    """Steps 1-4: plan the variant from metadata.json (before any model is loaded; with ``for_kpu``, it must
    fit the K210 and nncase must be there); decode the data set and the calibration list; the teacher's
    outputs; initialize and distill the student."""
    import keras

    artifacts = Path(options.artifacts)
    teacher_path = artifacts / KERAS_FILE
    metadata, conversion, plan, brought = plan_from_artifacts(options, teacher_path, for_kpu)

    started = time.perf_counter()
    inputs = load_inputs(options, conversion.provenance, plan.input_size, metadata.input.height,
                         metadata.input.resize)
    _timed(options, "decode", started)

    started = time.perf_counter()
    keras.utils.set_random_seed(options.seed)
    dtype = training_dtype(options.precision)
    teacher, layout = load_teacher(teacher_path, plan, brought)
    frozen = frozen_blocks(options.freeze_blocks, dtype, plan.blocks, initialized=layout.trunk is not None)
    options = replace(options, freeze_blocks=frozen)
    use_maps = options.map_weight > 0 and plan.reduce_channels > 0
    if options.map_weight > 0 and not use_maps:
        log.info("feature-map loss off: the student has no 1x1 head conv to match the teacher's")
    teacher_logits, teacher_maps, targets_from = _teacher_targets(teacher, layout, inputs, use_maps, dtype,
                                                                  plan.feature_side, artifacts)
    _timed(options, "teacher outputs", started)

    started = time.perf_counter()
    student, init, history = train_student(plan, layout, inputs, teacher_logits, teacher_maps, options, dtype)
    del teacher, layout
    student = rebuilt(student, plan)
    _timed(options, "init and distill", started)
    sections = {
        "plan": _plan_section(plan),
        "init": _init_section(init, options),
        "distillation": _distillation_section(options, use_maps, dtype, inputs, history, teacher_path,
                                              targets_from),
    }
    return Distilled(student, plan, inputs, metadata, conversion, sections, options, teacher_path)


def run(options: KmodelOptions) -> dict:
    """The whole ``make kmodel``; returns the report. Raises ToolkitError on bad input or a tool failure.

    Steps: 1-4. :func:`distill`; 5. export the student and compile the kmodel; 6. check the kmodel in the
    simulator and write the report.
    """
    started_all = time.perf_counter()
    distilled = distill(options)
    options, inputs, metadata = distilled.options, distilled.inputs, distilled.metadata
    artifacts = Path(options.artifacts)

    started = time.perf_counter()
    kmodel_input = KmodelInput(distilled.plan.input_size, distilled.plan.input_size, layout=options.layout.value)
    kmodel, compiled, float_scores = _export_and_compile(distilled.student, inputs, kmodel_input, metadata.labels,
                                                         options)
    _timed(options, "export and compile", started)

    report = {
        **distilled.sections,
        "kmodel": _kmodel_section(kmodel, compiled, inputs, kmodel_input, metadata, options),
        "options": options_section(options),
    }
    started = time.perf_counter()
    conversion = distilled.conversion
    report["results"] = measure(kmodel, float_scores, inputs.test_rgb, inputs.test_labels, kmodel_input,
                                options.sim_images, options.seed, artifacts / K210_WORK_DIR, options.toolchain,
                                None if conversion.results is None else conversion.results.accuracy_float)
    _timed(options, "simulator check", started)
    report["timings_s"] = {**options.timings_s, "total": round(time.perf_counter() - started_all, 1)}
    write_report(artifacts, report, metadata.labels)
    return report


def options_section(options: KmodelOptions) -> dict:
    """The run's options as JSON values (enums by value, paths as text)."""
    return {key: (value.value if isinstance(value, Enum) else str(value) if isinstance(value, Path) else value)
            for key, value in asdict(options).items() if key != "timings_s"}


TEACHER_PASS = "the teacher's pass"  # the report's teacher_targets when no cache was used


def _teacher_targets(teacher, layout, inputs: Inputs, use_maps: bool, dtype: str, side: int,
                     artifacts: Path) -> tuple[np.ndarray, np.ndarray | None, str]:
    """The teacher's outputs (and maps, on the student's grid) for the images the student is fit on: the
    ones ``make convert`` cached (convert/k210/teacher_cache.py) when they match the teacher's own outputs on
    a few probe images, else a pass of the teacher. The held-out images are only scored by their labels, so
    the pass skips them (a tenth of it). Rows of held-out images are NaN (logits) and 0 (maps): the arrays
    keep the training set's positions.

    Returns:
        (logits, maps or None, where they came from: a line for the report).
    """
    fit = inputs.fit_index
    cached = teacher_cache.read(artifacts, [inputs.train_files[i] for i in fit], use_maps)
    targets_from = TEACHER_PASS
    if cached is not None:
        probe = np.array(spread(list(range(len(fit))), teacher_cache.PROBE_IMAGES))
        fresh = teacher_outputs(teacher, layout, inputs.teacher_rgb[fit[probe]], use_maps, tflite=False)
        mismatch = teacher_cache.check((cached[0][probe], None if cached[1] is None else cached[1][probe]), fresh)
        if mismatch is None:
            logits, maps = cached
            targets_from = (f"make convert's cache ({TEACHER_TARGETS_FILE}), checked against the teacher on "
                            f"{len(probe)} images")
        else:
            log.info("%s: %s on %d probe images: not used; the teacher runs on the training images",
                     artifacts / TEACHER_TARGETS_FILE, mismatch, len(probe))
            cached = None
    if cached is None:
        logits, maps = teacher_outputs(teacher, layout, inputs.teacher_rgb[fit], use_maps, dtype)
    log.info("teacher targets: %s", targets_from)
    all_logits = np.full((len(inputs.teacher_rgb), logits.shape[1]), np.nan, np.float32)
    all_logits[fit] = logits
    if maps is None:
        return all_logits, None, targets_from
    maps = resize_maps(maps, side)
    all_maps = np.zeros((len(inputs.teacher_rgb), *maps.shape[1:]), maps.dtype)
    all_maps[fit] = maps
    return all_logits, all_maps, targets_from


def plan_from_artifacts(options: KmodelOptions, teacher_path: Path, for_kpu: bool = True):
    """Step 1: ``make convert``'s metadata read, the variant planned for it, the toolchain checked (with
    ``for_kpu``); nothing loaded yet, so that bad input fails in seconds. Returns (metadata, conversion, plan,
    brought)."""
    if not teacher_path.is_file():
        raise ToolkitError(f"{teacher_path}: no float model; run `make convert` first (make kmodel starts from it)")
    metadata, conversion = read_conversion(teacher_path.parent)
    brought = conversion.provenance.head in BROUGHT_HEADS
    plan = choose_plan(options, len(metadata.labels), student_shape(conversion.provenance),
                       metadata.input.height if brought else None, for_kpu)
    plan = replace(plan, normalization=metadata.in_model_normalization if brought else "caffe")
    if for_kpu:
        toolchain_python(options.toolchain)  # fail before the long part if nncase is not there
    log.info(plan.summary())
    return metadata, conversion, plan, brought


def _export_and_compile(student, inputs: Inputs, kmodel_input: KmodelInput, labels: list[str],
                        options: KmodelOptions) -> tuple[Path, dict, np.ndarray]:
    """The student's float TFLite, compiled by nncase; meanwhile its test scores (the kmodel's reference).

    Returns:
        (the kmodel, nncase's compile details, the float variant's test scores).
    """
    artifacts = Path(options.artifacts)
    float_tflite = export_float(student, artifacts)
    with ThreadPoolExecutor(1) as pool:
        compiling = pool.submit(compile_kmodel, float_tflite, inputs.calibration, kmodel_input,
                                artifacts / KMODEL_FILE, artifacts / K210_WORK_DIR / "compile", options.toolchain,
                                options.calibrate_method.value)
        # nncase compiles on one core; the float variant's test scores take the other meanwhile.
        float_scores = float_test_scores(float_tflite, labels, inputs.test_rgb, threads=1)
        kmodel, compiled = compiling.result()
    return kmodel, compiled, float_scores


def _plan_section(plan: Plan) -> dict:
    return {"arch": plan.arch, "width": plan.width, "input_size": plan.input_size, "blocks": plan.blocks,
            "reduce_channels": plan.reduce_channels, "params": plan.params,
            "gmacs": round(plan.macs / 1e9, 3), "deployment": plan.deployment.value,
            "budget_bytes": plan.budget_bytes, "planned_main_memory_bytes": plan.main_memory_bytes,
            "peak_kpu_bytes": plan.peak_kpu_bytes, "peak_kpu_layer": plan.peak_kpu_layer.name,
            "summary": plan.summary()}


def _init_section(init, options: KmodelOptions) -> dict:
    return {"method": "strongest channels + least-squares refit" if options.reconstruct else "strongest channels",
            "images": init.images, "kept_l1_share": init.kept_l1_share,
            "relative_error": {name: {"kept_channels": round(before, 4), "refit": round(after, 4)}
                               for name, (before, after) in init.relative_error.items()},
            "dense": init.head}


def _distillation_section(options: KmodelOptions, use_maps: bool, dtype: str, inputs: Inputs, history: list[dict],
                          teacher_path: Path, targets_from: str) -> dict:
    return {"epochs": options.epochs, "temperature": options.temperature,
            "hard_label_weight": options.hard_label_weight, "learning_rate": options.learning_rate,
            "map_weight": options.map_weight if use_maps else 0.0,
            "dtype_policy": dtype, "teacher_dtype_policy": dtype if targets_from == TEACHER_PASS else "float32",
            "teacher_targets": targets_from,
            "warmup_epochs": options.warmup_epochs, "frozen_blocks": options.freeze_blocks,
            "schedule": "linear warm-up, cosine decay to 0, last epoch kept" if options.warmup_epochs
            else "cosine decay to 0, last epoch kept",
            "fit_images": int(len(inputs.fit_index)), "held_out_images": int(len(inputs.held_out)),
            "history": history, "teacher": str(teacher_path.name)}


def _kmodel_section(kmodel: Path, compiled: dict, inputs: Inputs, kmodel_input: KmodelInput, metadata,
                    options: KmodelOptions) -> dict:
    """What the board program must know: the kmodel file, nncase's memory table, its input and output."""
    return KmodelRecord(
        file=KMODEL_FILE, bytes=kmodel.stat().st_size, sha256=sha256_file(kmodel), version=5,
        nncase_memory_bytes=compiled["memory"], compile_s=compiled["compile_s"],
        calibration_images=int(len(inputs.calibration)), calibrate_method=options.calibrate_method.value,
        toolchain=toolchain_route(options.toolchain),
        input={"dtype": "uint8", "layout": kmodel_input.layout, "shape": kmodel_input.shape, "color_order": "RGB",
               "pixel_range": [0, 255], "resize": metadata.input.resize.value},
        output={"dtype": "float32", "shape": [1, len(metadata.labels)], "activation": "softmax"}).to_dict()
