"""``python -m convert.k210`` (``make kmodel``): the float VGG + head in OUT -> a K210 kmodel, measured.

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

import argparse
import logging
import math
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from calibration.select import read_manifest
from convert.k210_compile import (
    DEFAULT_TOOLCHAIN,
    KmodelInput,
    compile_kmodel,
    simulate_kmodel,
    toolchain_python,
    toolchain_route,
)
from convert.k210_plan import Deployment, Plan, largest_fitting, plan_vgg
from convert.k210_report import (  # noqa: F401 (KMODEL_FILE and the report's names: make kmodel's outputs)
    K210_FLOAT_TFLITE_FILE,
    KMODEL_FILE,
    LABELS_HEADER,
    MAX_ACCURACY_GAP,
    MIN_AGREEMENT,
    REPORT_JSON,
    REPORT_MD,
    checked_dataset,
    decode_checked,
    float_test_scores,
    measure,
    render_markdown,
    sha256,
    sim_images_arg,
    write_report,
)
from runtime.argtypes import non_negative_float, positive_float, positive_int
from runtime.errors import ToolkitError
from runtime.metadata import read_metadata
from runtime.preprocess import InputSpec, load_image_rgb, resize_rgb

log = logging.getLogger(__name__)

K210_FLOAT_KERAS_FILE = "model_k210_float.keras"
# make kmodel's own simulator check; all 2000 test images take 12-33 min more (make kmodel-report).
QUICK_CHECK_IMAGES = 100
DEFAULT_MAX_GMACS = 2.0  # the planner's pick: x0.375 at 224 for the hed block4-conv model, 1.99 GMAC
CALIBRATE_METHODS = ("l2", "no_clip", "kld_m0", "kld_m1", "kld_m2", "cdf")  # nncase 1.x PTQTensorOptions
PRECISIONS = ("auto", "bfloat16", "float32")
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclass
class KmodelOptions:
    """A ``make kmodel`` run.

    Attributes:
        artifacts: The ``make convert`` folder: its float model is the teacher, its calibration list is used.
        data: Data root; None = the one recorded in the artifacts' metadata.
        width: Width multiplier; None = the planner's choice.
        input_size: Square input size; None = the planner's choice.
        deployment: Budget the plan must fit (with room to spare).
        max_gmacs: Compute cap for the planner's choice (keeps the distillation inside ``make kmodel``'s time).
        epochs: Distillation epochs (the last one is kept; the learning rate decays to 0 along a cosine).
        temperature: Distillation temperature.
        hard_label_weight: Weight of the true-label loss beside the distillation loss.
        learning_rate: Adam's peak learning rate (low: the reconstruction init is already close).
        warmup_epochs: Epochs over which the learning rate rises linearly from 0 to ``learning_rate`` before
            the cosine decay (Adam's first steps at full rate knock the refit student off its init).
        batch_size: Training batch size.
        reconstruct: Refit each narrowed layer by least squares to the teacher's (False: plain strongest channels).
        init_images: Training images (seeded sample) the initialization is fit on; each gives thousands of
            positions. 128 instead of 32 costs ~35 s here and lifts the initialized student's test accuracy
            about 2 points (77.6 -> 79.5% and 76.4 -> 78.7% at seeds 0 and 1).
        precision: Distillation arithmetic: "bfloat16" (Keras mixed_bfloat16: bf16 convolutions, float32
            weights), "float32", or "auto" = bfloat16 where the CPU has bf16 instructions (avx512_bf16 or
            amx_bf16), else float32. The initialization, export and all measurements are float32.
        calibrate_method: nncase's activation-range method for the uint8 PTQ: "l2" (the clipping range that
            minimizes the squared error of each histogram; a second calibration pass), "no_clip" (min/max),
            "kld_m0", "kld_m1", "kld_m2", "cdf".
        map_weight: Weight of the loss pulling the student's 1x1-conv maps to the teacher's (0 = logits only;
            used when the student has the teacher head's 1x1 conv; at another input size than the teacher's,
            the teacher's maps are area-resized to the student's grid).
        sim_images: Test images (seeded sample) run through the simulator; None = all. The default keeps
            ``make kmodel`` inside its time; ``make kmodel-report`` (convert/k210_report.py) runs them all.
        max_train: Training images per class (None = all): for quick runs and tests.
        max_test: Test images per class (None = all).
        layout: Input layout the board feeds ("NCHW": planar, as the K210 camera's AI buffer).
        toolchain: The ``make k210-toolchain`` folder.
        seed: Everything random.
    """

    artifacts: Path
    data: Path | None = None
    width: float | None = None
    input_size: int | None = None
    deployment: Deployment = Deployment.STANDALONE_SDK
    max_gmacs: float = DEFAULT_MAX_GMACS
    epochs: int = 8
    temperature: float = 2.0
    hard_label_weight: float = 0.3
    learning_rate: float = 1.5e-4
    warmup_epochs: float = 1.0
    batch_size: int = 32
    reconstruct: bool = True
    init_images: int = 128
    precision: str = "auto"
    calibrate_method: str = "l2"
    map_weight: float = 1.0
    sim_images: int | None = QUICK_CHECK_IMAGES
    max_train: int | None = None
    max_test: int | None = None
    layout: str = "NCHW"
    toolchain: Path = DEFAULT_TOOLCHAIN
    seed: int = 0
    timings_s: dict = field(default_factory=dict)


@dataclass(frozen=True)
class StudentShape:
    """The teacher's shape a student mirrors: which VGG, how many conv blocks, the head's 1x1 conv."""

    arch: str = "vgg16"
    blocks: int | None = None  # None = all
    reduce_channels: int = 0


def student_shape(provenance: dict) -> StudentShape:
    """The shape of the ``make convert`` model recorded in its metadata (read before any model is loaded).

    Raises:
        ToolkitError: The model has no trained head (VGG's own ImageNet top) to distill.
    """
    from convert.config import HeadKind
    from convert.head import BLOCK4_HEAD_WIDTH, head_input

    arch = provenance.get("arch", "vgg16")
    head = provenance.get("head")
    if head is None:
        return StudentShape(arch)
    kind = HeadKind(head)
    if kind is HeadKind.IMAGENET:
        raise ToolkitError("the make convert model is VGG's own ImageNet top, with no cats/dogs head to distill; "
                           "rerun make convert with --head gap, flatten-mlp or block4-conv")
    if head_input(kind) == "block4_pool":
        return StudentShape(arch, 4, BLOCK4_HEAD_WIDTH if kind is HeadKind.BLOCK4_CONV else 0)
    return StudentShape(arch)


def choose_plan(options: KmodelOptions, classes: int, shape: StudentShape = StudentShape()) -> Plan:
    """The planned variant; a variant that cannot fit is refused with the planner's reasons, before any work.

    Raises:
        ToolkitError: Nothing fits, or the asked-for variant does not.
    """
    if options.width is not None and options.input_size is not None:
        plan = plan_vgg(shape.arch, options.width, options.input_size, classes, options.deployment, shape.blocks,
                        shape.reduce_channels)
    else:
        plan = largest_fitting(shape.arch, classes, options.deployment, options.max_gmacs, shape.blocks,
                               shape.reduce_channels)
        if plan is None:
            raise ToolkitError(f"no {shape.arch} variant fits the {options.deployment.value} budget under "
                               f"{options.max_gmacs} GMAC; raise --max-gmacs or pick --deployment")
    if not plan.fits:
        raise ToolkitError(f"{plan.name} does not fit the K210: "
                           f"{'; '.join(plan.problems)}; see `python -m convert.k210_plan`")
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
    fit_index: np.ndarray
    held_out: np.ndarray
    test_rgb: np.ndarray
    test_labels: np.ndarray
    calibration: np.ndarray


def load_inputs(options: KmodelOptions, provenance: dict, size: int, teacher_size: int) -> Inputs:
    """The same data set, calibration list and held-out images as ``make convert`` used."""
    from convert.pipeline import held_out_index

    artifacts = Path(options.artifacts)
    dataset = checked_dataset(artifacts, provenance, options.data, options.max_train, options.max_test, options.seed)
    train_rgb = decode_checked(dataset.train.paths, size, "decode train (student size)")
    teacher_rgb = train_rgb if size == teacher_size else decode_checked(dataset.train.paths, teacher_size,
                                                                        "decode train (teacher size)")
    items = read_manifest(artifacts / provenance.get("calibration", {}).get("manifest", "calibration_manifest.json"))
    calibration = np.stack([resize_rgb(load_image_rgb(dataset.root / item.file), InputSpec(size, size))
                            for item in items])
    position = {p.relative_to(dataset.root).as_posix(): i for i, p in enumerate(dataset.train.paths)}
    held_out = held_out_index(dataset.train.labels, {position[i.file] for i in items if i.file in position},
                              options.seed)
    return Inputs(train_rgb=train_rgb, teacher_rgb=teacher_rgb, train_labels=dataset.train.labels,
                  fit_index=np.setdiff1d(np.arange(len(train_rgb)), held_out), held_out=held_out,
                  test_rgb=decode_checked(dataset.test.paths, size, "decode test"), test_labels=dataset.test.labels,
                  calibration=calibration)


def distill(student, train_rgb: np.ndarray, teacher_logits: np.ndarray, labels: np.ndarray, val_rgb: np.ndarray,
            val_labels: np.ndarray, options: KmodelOptions, teacher_maps: np.ndarray | None = None) -> list[dict]:
    """Trains ``student`` on the teacher's softened outputs (and the true labels), with horizontal flips.

    With ``teacher_maps`` (the teacher head's 1x1-conv feature maps of ``train_rgb``, see
    :func:`teacher_outputs`) and ``options.map_weight`` > 0, the student's own ``reduce`` maps are also
    pulled towards them (mean squared error, both divided by the teacher maps' RMS): the same layer in both
    nets, so no adapter is needed, and each image then teaches 14x14x128 numbers (at 224) instead of one
    margin. The maps must be on the student's grid (:func:`resize_maps`).
    Adam with :func:`learning_rate_schedule` (warm-up, then cosine to 0); the last epoch's weights are kept. The
    held-out accuracy is measured as initialized and after each epoch, for the report. Returns that history
    (epoch 0 = as initialized).
    """
    import keras
    import tensorflow as tf

    from convert.head import predict_batched
    from convert.k210_student import LOGITS_LAYER, REDUCE_LAYER
    from convert.progress import progress

    classes = teacher_logits.shape[1]
    temperature, alpha = options.temperature, options.hard_label_weight
    use_maps = teacher_maps is not None and options.map_weight > 0
    outputs = [student.get_layer(LOGITS_LAYER).output]
    if use_maps:
        rms = float(np.sqrt(np.mean(np.square(teacher_maps[:64].astype(np.float32))))) or 1.0
        outputs.append(keras.layers.Rescaling(1.0 / rms, name="map_scale", dtype="float32")(
            student.get_layer(REDUCE_LAYER).output))
        teacher_maps = (teacher_maps.astype(np.float32) / rms).astype(np.float16)
    trainer = keras.Model(student.input, outputs)

    def distillation_loss(y_true, y_pred):
        soft_teacher = tf.nn.softmax(y_true[:, :classes] / temperature)
        kd = -tf.reduce_sum(soft_teacher * tf.nn.log_softmax(y_pred / temperature), axis=1) * temperature ** 2
        hard = -tf.reduce_sum(y_true[:, classes:] * tf.nn.log_softmax(y_pred), axis=1)
        return (1 - alpha) * kd + alpha * hard

    targets = np.concatenate([teacher_logits, np.eye(classes, dtype=np.float32)[labels]], axis=1).astype(np.float32)

    def flip(image, target, *maps):
        # One coin per image flips the pixels and, with them, the teacher's maps (axis 1 = width).
        flipped = tf.random.uniform([], seed=options.seed) < 0.5
        image = tf.cast(image, tf.float32)
        image = tf.cond(flipped, lambda: tf.reverse(image, [1]), lambda: image)
        if not maps:
            return image, target
        fmap = tf.cast(maps[0], tf.float32)
        return image, (target, tf.cond(flipped, lambda: tf.reverse(fmap, [1]), lambda: fmap))

    tensors = (train_rgb, targets, teacher_maps) if use_maps else (train_rgb, targets)
    dataset = (tf.data.Dataset.from_tensor_slices(tensors)
               .shuffle(len(train_rgb), seed=options.seed, reshuffle_each_iteration=True)
               .map(flip)
               .batch(options.batch_size)
               .prefetch(2))
    schedule = learning_rate_schedule(options, math.ceil(len(train_rgb) / options.batch_size))
    trainer.compile(optimizer=keras.optimizers.Adam(schedule),
                    loss=[distillation_loss, "mse"] if use_maps else distillation_loss,
                    loss_weights=[1.0, options.map_weight] if use_maps else None)
    def held_out_accuracy() -> float:
        return float(np.mean(predict_batched(student, val_rgb.astype(np.float32)).argmax(1) == val_labels))

    history = [{"epoch": 0, "loss": None, "val_accuracy": held_out_accuracy()}]  # as initialized
    log.info("initialized: held-out accuracy %.4f", history[0]["val_accuracy"])
    for epoch in progress(range(options.epochs), "distill", total=options.epochs, unit="epoch"):
        fit = trainer.fit(dataset, epochs=1, verbose=0)
        history.append({"epoch": epoch + 1, "loss": float(fit.history["loss"][-1]), "val_accuracy": held_out_accuracy()})
        log.info("epoch %d: loss %.4f, held-out accuracy %.4f", epoch + 1, history[-1]["loss"],
                 history[-1]["val_accuracy"])
    return history


def learning_rate_schedule(options: KmodelOptions, steps_per_epoch: int):
    """Linear warm-up from 0 to ``options.learning_rate`` over ``options.warmup_epochs``, then a cosine decay to
    0 at the end of the last epoch (Keras ``CosineDecay``; without warm-up it starts at the peak)."""
    import keras

    steps = options.epochs * steps_per_epoch
    warmup = min(round(options.warmup_epochs * steps_per_epoch), steps - 1)
    if not warmup:
        return keras.optimizers.schedules.CosineDecay(options.learning_rate, decay_steps=steps)
    return keras.optimizers.schedules.CosineDecay(0.0, decay_steps=steps - warmup,
                                                  warmup_target=options.learning_rate, warmup_steps=warmup)


def teacher_outputs(teacher, layout, images_rgb: np.ndarray, maps: bool,
                    dtype: str = "float32") -> tuple[np.ndarray, np.ndarray | None]:
    """The teacher's log-probabilities and, with ``maps``, its head's 1x1-conv maps (float16), in one pass.

    ``dtype`` is the Keras dtype policy the teacher's conv trunk runs in (its head stays float32): with
    "mixed_bfloat16" the pass takes half the time on a CPU with bf16 instructions, and the targets move
    little (on 125 training images: the same top-1 for all, max probability difference 0.004).
    """
    import keras

    from convert.k210_student import REDUCE_LAYER

    trunk = layout.trunk if dtype == "float32" else in_dtype(layout.trunk, dtype)
    pixels = keras.Input(teacher.input.shape[1:])
    features = trunk(layout.normalize(pixels))
    if maps:
        reduced = layout.head.get_layer(REDUCE_LAYER)(features)
        both = keras.Model(pixels, [layout.head.get_layer("predictions")(layout.head.get_layer("gap")(reduced)),
                                    reduced])
    else:
        both = keras.Model(pixels, [layout.head(features)])
    parts = [both.predict_on_batch(images_rgb[i:i + 32].astype(np.float32)) for i in range(0, len(images_rgb), 32)]
    parts = [part if isinstance(part, (list, tuple)) else [part] for part in parts]
    probs = np.concatenate([np.asarray(p[0], np.float32) for p in parts])
    fmaps = np.concatenate([np.asarray(p[1], np.float16) for p in parts]) if maps else None
    return np.log(np.clip(probs, 1e-7, 1.0)).astype(np.float32), fmaps


def in_dtype(model, dtype: str):
    """A copy of a Keras functional model whose layers run in the dtype policy ``dtype`` (same weights)."""
    import keras

    def clone(layer):
        return layer.__class__.from_config({**layer.get_config(), "dtype": dtype})

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def load_teacher(path: Path, plan: Plan):
    """The ``make convert`` float model and its parts, checked against the shape the plan mirrors."""
    import keras

    from convert.k210_student import teacher_layout

    teacher = keras.models.load_model(path)
    layout = teacher_layout(teacher)
    if (layout.arch, layout.blocks, layout.reduce_channels) != (plan.arch, plan.blocks, plan.reduce_channels):
        raise ToolkitError(f"{path}: its layers ({layout.arch}, blocks 1-{layout.blocks}, 1x1 conv "
                           f"{layout.reduce_channels}) differ from what metadata.json says; rerun `make convert`")
    return teacher, layout


def train_student(plan: Plan, layout, inputs: Inputs, teacher_logits: np.ndarray, teacher_maps: np.ndarray | None,
                  options: KmodelOptions, dtype: str = "float32"):
    """Builds the variant, initializes it from the teacher and distills it; returns (student, init, history).

    The student is built for any input size: its layers are fit to the teacher's at the teacher's input size
    (the same pixels give both nets the same positions), then it is distilled at its own size, in the
    Keras dtype policy ``dtype`` (:func:`training_dtype`).
    """
    from convert.k210_student import build_student, init_from_teacher

    student = build_student(plan, seed=options.seed, any_size=True)  # float32: the refit needs the precision
    rng = np.random.default_rng(options.seed)
    sample = np.sort(rng.choice(inputs.fit_index, min(options.init_images, len(inputs.fit_index)), replace=False))
    init = init_from_teacher(student, layout, inputs.teacher_rgb[sample], teacher_logits[sample],
                             reconstruct=options.reconstruct, seed=options.seed)
    inputs.teacher_rgb = inputs.train_rgb  # free the teacher-size copy
    for name, (before, after) in init.relative_error.items():
        log.info("init %s: relative error %.3f (kept channels) -> %.3f (refit)", name, before, after)
    fit, held = inputs.fit_index, inputs.held_out
    trainee = student if dtype == "float32" else rebuilt(student, plan, any_size=True, dtype=dtype, seed=options.seed)
    log.info("distillation in %s", dtype)
    history = distill(trainee, inputs.train_rgb[fit], teacher_logits[fit], inputs.train_labels[fit],
                      inputs.train_rgb[held], inputs.train_labels[held], options,
                      None if teacher_maps is None else teacher_maps[fit])
    student.set_weights(trainee.get_weights())
    return student, init, history


def training_dtype(precision: str, cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The Keras dtype policy the distillation runs in (see :attr:`KmodelOptions.precision`)."""
    if precision == "float32":
        return "float32"
    if precision == "bfloat16":
        return "mixed_bfloat16"
    try:
        flags = set(cpuinfo.read_text(errors="replace").split())
    except OSError:
        flags = set()
    return "mixed_bfloat16" if flags & set(BF16_CPU_FLAGS) else "float32"


def rebuilt(student, plan: Plan, *, any_size: bool = False, dtype: str | None = None, seed: int = 0):
    """The student's weights in another build of the plan: by default the fixed-size float32 model TFLite and
    nncase need; with ``dtype`` a mixed-precision copy to train (its variables are float32 too)."""
    from convert.k210_student import build_student

    copy = build_student(plan, seed=seed, any_size=any_size, dtype=dtype)
    copy.set_weights(student.get_weights())
    return copy


def resize_maps(maps: np.ndarray, side: int) -> np.ndarray:
    """Teacher feature maps (N, H, W, C) averaged onto the student's ``side`` x ``side`` grid (area resize)."""
    import tensorflow as tf

    if maps.shape[1:3] == (side, side):
        return maps
    return np.concatenate([np.asarray(tf.image.resize(maps[i:i + 256].astype(np.float32), (side, side), method="area"),
                                      np.float16) for i in range(0, len(maps), 256)])


def export_float(student, artifacts: Path) -> Path:
    """Float Keras + TFLite of the variant into ``artifacts``; returns the float TFLite nncase starts from."""
    from convert.export import ExportContext, Target, export

    # Staged inside the artifacts folder: os.replace cannot move a file across file systems (EXDEV), and /tmp
    # is often another one.
    with tempfile.TemporaryDirectory(prefix=".kmodel-export-", dir=artifacts) as tmp:
        ctx = ExportContext(model=student, out_dir=Path(tmp), work_dir=Path(tmp))
        written = export(ctx, [Target.KERAS, Target.TFLITE_FLOAT])
        float_tflite = artifacts / K210_FLOAT_TFLITE_FILE
        os.replace(written[Target.TFLITE_FLOAT], float_tflite)
        os.replace(written[Target.KERAS], artifacts / K210_FLOAT_KERAS_FILE)
    return float_tflite


def run(options: KmodelOptions) -> dict:
    """The whole ``make kmodel``; returns the report. Raises ToolkitError on bad input or a tool failure."""
    import keras

    started_all = time.perf_counter()
    artifacts = Path(options.artifacts)
    teacher_path = artifacts / "model_float.keras"
    if not teacher_path.is_file():
        raise ToolkitError(f"{teacher_path}: no float model; run `make convert` first (make kmodel starts from it)")
    metadata = read_metadata(artifacts)
    provenance = metadata.extra.get("provenance", {})
    plan = choose_plan(options, len(metadata.labels), student_shape(provenance))
    toolchain_python(options.toolchain)  # fail before the long part if nncase is not there
    log.info(plan.summary())

    started = time.perf_counter()
    size = plan.input_size
    inputs = load_inputs(options, provenance, size, metadata.input.height)
    _timed(options, "decode", started)

    started = time.perf_counter()
    keras.utils.set_random_seed(options.seed)
    dtype = training_dtype(options.precision)
    teacher, layout = load_teacher(teacher_path, plan)
    use_maps = options.map_weight > 0 and plan.reduce_channels > 0
    if options.map_weight > 0 and not use_maps:
        log.info("feature-map loss off: the student has no 1x1 head conv to match the teacher's")
    teacher_logits, teacher_maps = teacher_outputs(teacher, layout, inputs.teacher_rgb, use_maps, dtype)
    if teacher_maps is not None:
        teacher_maps = resize_maps(teacher_maps, plan.feature_side)
    _timed(options, "teacher outputs", started)

    started = time.perf_counter()
    student, init, history = train_student(plan, layout, inputs, teacher_logits, teacher_maps, options, dtype)
    del teacher, layout
    student = rebuilt(student, plan)
    _timed(options, "init and distill", started)

    started = time.perf_counter()
    kmodel_input = KmodelInput(size, size, layout=options.layout)
    float_tflite = export_float(student, artifacts)
    with ThreadPoolExecutor(1) as pool:
        compiling = pool.submit(compile_kmodel, float_tflite, inputs.calibration, kmodel_input,
                                artifacts / KMODEL_FILE, artifacts / "k210_work" / "compile", options.toolchain,
                                options.calibrate_method)
        # nncase compiles on one core; the float variant's test scores take the other meanwhile.
        float_scores = float_test_scores(float_tflite, metadata.labels, inputs.test_rgb, threads=1)
        kmodel, compiled = compiling.result()
    _timed(options, "export and compile", started)

    report = {
        "plan": {"arch": plan.arch, "width": plan.width, "input_size": plan.input_size, "blocks": plan.blocks,
                 "reduce_channels": plan.reduce_channels, "params": plan.params,
                 "gmacs": round(plan.macs / 1e9, 3), "deployment": plan.deployment.value,
                 "budget_bytes": plan.budget_bytes, "planned_main_memory_bytes": plan.main_memory_bytes,
                 "peak_kpu_bytes": plan.peak_kpu_bytes, "peak_kpu_layer": plan.peak_kpu_layer.name,
                 "summary": plan.summary()},
        "init": {"method": "strongest channels + least-squares refit" if options.reconstruct else "strongest channels",
                 "images": init.images, "kept_l1_share": init.kept_l1_share,
                 "relative_error": {name: {"kept_channels": round(before, 4), "refit": round(after, 4)}
                                    for name, (before, after) in init.relative_error.items()},
                 "dense": init.head},
        "distillation": {"epochs": options.epochs, "temperature": options.temperature,
                         "hard_label_weight": options.hard_label_weight, "learning_rate": options.learning_rate,
                         "map_weight": options.map_weight if use_maps else 0.0,
                         "dtype_policy": dtype, "teacher_dtype_policy": dtype,
                         "warmup_epochs": options.warmup_epochs,
                         "schedule": "linear warm-up, cosine decay to 0, last epoch kept" if options.warmup_epochs
                         else "cosine decay to 0, last epoch kept",
                         "fit_images": int(len(inputs.fit_index)), "held_out_images": int(len(inputs.held_out)),
                         "history": history, "teacher": str(teacher_path.name)},
        "kmodel": {"file": KMODEL_FILE, "bytes": kmodel.stat().st_size, "sha256": sha256(kmodel), "version": 5,
                   "nncase_memory_bytes": compiled["memory"], "compile_s": compiled["compile_s"],
                   "calibration_images": int(len(inputs.calibration)),
                   "calibrate_method": options.calibrate_method, "toolchain": toolchain_route(options.toolchain),
                   "input": {"dtype": "uint8", "layout": kmodel_input.layout, "shape": kmodel_input.shape,
                             "color_order": "RGB", "pixel_range": [0, 255], "resize": "squash"},
                   "output": {"dtype": "float32", "shape": [1, len(metadata.labels)], "activation": "softmax"}},
        "options": {key: (value.value if isinstance(value, Deployment) else str(value) if isinstance(value, Path)
                          else value)
                    for key, value in asdict(options).items() if key != "timings_s"},
    }
    started = time.perf_counter()
    report["results"] = measure(kmodel, float_scores, inputs.test_rgb, inputs.test_labels, kmodel_input,
                                options.sim_images, options.seed, artifacts / "k210_work", options.toolchain,
                                metadata.extra.get("results", {}).get("accuracy_float"))
    _timed(options, "simulator check", started)
    report["timings_s"] = {**options.timings_s, "total": round(time.perf_counter() - started_all, 1)}
    write_report(artifacts, report, metadata.labels)
    return report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m convert.k210", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts/vgg16_cats_dogs"),
                        help="the make convert folder (teacher, calibration list); the kmodel is written there")
    parser.add_argument("--data", type=Path, default=None, help="data root; None = the one recorded in metadata.json")
    parser.add_argument("--width", type=float, default=None, help="width multiplier; None = planner's choice")
    parser.add_argument("--input-size", type=positive_int, default=None, help="input size; None = planner's choice")
    parser.add_argument("--deployment", type=str, default=Deployment.STANDALONE_SDK.value,
                        choices=[d.value for d in Deployment], help="memory budget to fit")
    parser.add_argument("--max-gmacs", type=positive_float, default=KmodelOptions.max_gmacs,
                        help="compute cap for the planner's choice")
    parser.add_argument("--epochs", type=positive_int, default=KmodelOptions.epochs, help="distillation epochs")
    parser.add_argument("--learning-rate", type=positive_float, default=KmodelOptions.learning_rate,
                        help="Adam's peak learning rate (cosine decay to 0)")
    parser.add_argument("--warmup-epochs", type=non_negative_float, default=KmodelOptions.warmup_epochs,
                        help="epochs of linear learning-rate warm-up from 0 before the cosine decay")
    parser.add_argument("--temperature", type=positive_float, default=KmodelOptions.temperature,
                        help="distillation temperature")
    parser.add_argument("--map-weight", type=non_negative_float, default=KmodelOptions.map_weight,
                        help="weight of the loss on the head's 1x1-conv feature maps (0 = logits only)")
    parser.add_argument("--precision", type=str, default=KmodelOptions.precision,
                        choices=list(PRECISIONS),
                        help="distillation arithmetic (auto = bfloat16 where the CPU has bf16 instructions)")
    parser.add_argument("--calibrate-method", type=str, default=KmodelOptions.calibrate_method,
                        choices=list(CALIBRATE_METHODS), help="nncase's activation-range method for the uint8 PTQ")
    parser.add_argument("--no-reconstruct", dest="reconstruct", action="store_false",
                        help="initialize with the plain strongest channels (no least-squares refit)")
    parser.add_argument("--init-images", type=positive_int, default=KmodelOptions.init_images,
                        help="training images the initialization is fit on")
    parser.add_argument("--sim-images", type=sim_images_arg, default=KmodelOptions.sim_images,
                        help="test images run in the simulator (N or all); make kmodel-report runs all")
    parser.add_argument("--max-train", type=positive_int, default=None, help="training images per class (quick runs)")
    parser.add_argument("--max-test", type=positive_int, default=None, help="test images per class (quick runs)")
    parser.add_argument("--layout", type=str, default="NCHW", choices=["NCHW", "NHWC"], help="kmodel input layout")
    parser.add_argument("--toolchain", type=Path, default=DEFAULT_TOOLCHAIN, help="make k210-toolchain's folder")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    options = KmodelOptions(
        artifacts=args.artifacts, data=args.data, width=args.width, input_size=args.input_size,
        deployment=Deployment(args.deployment), max_gmacs=args.max_gmacs, epochs=args.epochs,
        learning_rate=args.learning_rate, warmup_epochs=args.warmup_epochs, temperature=args.temperature,
        reconstruct=args.reconstruct, init_images=args.init_images,
        precision=args.precision, calibrate_method=args.calibrate_method, map_weight=args.map_weight,
        sim_images=args.sim_images,
        max_train=args.max_train, max_test=args.max_test, layout=args.layout, toolchain=args.toolchain,
        seed=args.seed,
    )
    try:
        report = run(options)
    except ToolkitError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(render_markdown(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
