"""The student learns from the teacher: the teacher's pass, the distillation and its schedule, dtype copies."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np

from convert.k210.options import KmodelOptions, Precision
from convert.k210.plan import Plan
from runtime.errors import ToolkitError

log = logging.getLogger(__name__)

BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
FROZEN_BLOCKS_WITHOUT_BF16 = 3  # --freeze-blocks auto in float32 (README: the AVX2 make kmodel run)


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

    from convert.head import predict_batched
    from convert.progress import progress

    use_maps = teacher_maps is not None and options.map_weight > 0
    cut = f"block{options.freeze_blocks}_pool" if options.freeze_blocks else None
    trainer, teacher_maps = _trainer(student, teacher_maps if use_maps else None, options, teacher_logits.shape[1],
                                     math.ceil(len(train_rgb) / options.batch_size), cut)
    if cut is None:
        dataset = _distillation_dataset(train_rgb, teacher_logits, labels, teacher_maps, options)
        scored, val_inputs = student, val_rgb
    else:  # the frozen blocks' outputs, of each image, of its mirror image and of the held-out images, once
        started = time.perf_counter()
        *inputs, val_inputs = frozen_outputs(student, cut, [train_rgb, train_rgb[:, :, ::-1], val_rgb])
        log.info("blocks 1-%d frozen: their outputs computed once in %.0f s (%s each, of %d images, their mirror "
                 "images and %d held-out images)", options.freeze_blocks, time.perf_counter() - started,
                 "x".join(str(d) for d in inputs[0].shape[1:]), len(train_rgb), len(val_rgb))
        dataset = _distillation_dataset(inputs, teacher_logits, labels, teacher_maps, options)
        scored = keras.Model(trainer.input, trainer.outputs[0])  # the layers after the cut, to the logits

    def held_out_accuracy() -> float:
        return float(np.mean(predict_batched(scored, val_inputs).argmax(1) == val_labels))

    history = [{"epoch": 0, "loss": None, "val_accuracy": held_out_accuracy()}]  # as initialized
    log.info("initialized: held-out accuracy %.4f", history[0]["val_accuracy"])
    for epoch in progress(range(options.epochs), "distill", total=options.epochs, unit="epoch"):
        started = time.perf_counter()
        fit = trainer.fit(dataset, epochs=1, verbose=0)
        history.append({"epoch": epoch + 1, "loss": float(fit.history["loss"][-1]), "val_accuracy": held_out_accuracy(),
                        "seconds": round(time.perf_counter() - started, 1)})
        log.info("epoch %d: loss %.4f, held-out accuracy %.4f, %.0f s", epoch + 1, history[-1]["loss"],
                 history[-1]["val_accuracy"], history[-1]["seconds"])
    return history


def frozen_outputs(student, cut: str, image_sets: list[np.ndarray]) -> list[np.ndarray]:
    """The outputs (float16) of ``student``'s layers up to ``cut`` on each set of images, as the frozen
    blocks' inputs to the layers that train.

    A float32 student runs them as a fixed-size float32 TFLite copy of those layers (the same weights and
    graph): XNNPACK's kernels took about half Keras' time for the x0.375 variant's blocks 1-3 on the AVX2
    EPYC (40 against 77 ms an image, a probe outside the repository, 2026-12-03; in make kmodel there: 66 s
    for 3800 images, README). A student in another dtype policy (bf16) keeps Keras, which is fast where
    bf16 is native.
    """
    import keras

    from convert.head import join_outputs, predict_batched

    if student.get_layer(cut).dtype_policy.compute_dtype != "float32":
        prefix = keras.Model(student.input, student.get_layer(cut).output)
        return [predict_batched(prefix, images, dtype=np.float16) for images in image_sets]
    names = [layer.name for layer in student.layers]
    start, tensors = _rewired(student.layers[1:names.index(cut) + 1], image_sets[0].shape[1:], student.layers[0].name)
    return [join_outputs(parts, (np.float16,))[0]
            for parts in _float_tflite_outputs(keras.Model(start, tensors[cut]), image_sets, "frozen blocks")]


def _rewired(layers: list, input_shape: tuple, name: str):
    """Layers of a chain model called again, in order, on a new input of ``input_shape`` (the same weights):
    returns (that input, each layer's output by name)."""
    import keras

    start = x = keras.Input(input_shape, name=name)
    tensors = {}
    for layer in layers:
        x = tensors[layer.name] = layer(x)
    return start, tensors


def _trainer(student, teacher_maps: np.ndarray | None, options: KmodelOptions, classes: int, steps_per_epoch: int,
             cut: str | None = None):
    """The student compiled for distillation: Adam on the distillation loss (and, given teacher maps, the
    map loss on its 1x1-conv maps), with :func:`learning_rate_schedule`. With ``cut`` (a pooling layer's name)
    only the layers after it train, on its outputs as inputs (the layers are the student's own, shared).

    Returns:
        (the compiled trainer model, the teacher maps divided by their RMS as float16, or None).
    """
    import keras
    import tensorflow as tf

    from convert.k210.student import LOGITS_LAYER, REDUCE_LAYER

    temperature, alpha = options.temperature, options.hard_label_weight
    start, tensors = student.input, {layer.name: layer.output for layer in student.layers}
    if cut is not None:  # the layers after the cut, called again on a new input: the same weights
        names = [layer.name for layer in student.layers]
        start, after = _rewired(student.layers[names.index(cut) + 1:], student.get_layer(cut).output.shape[1:],
                                f"{cut}_outputs")
        tensors.update(after)
    outputs = [tensors[LOGITS_LAYER]]
    if teacher_maps is not None:
        rms = float(np.sqrt(np.mean(np.square(teacher_maps[:64].astype(np.float32))))) or 1.0
        outputs.append(keras.layers.Rescaling(1.0 / rms, name="map_scale", dtype="float32")(tensors[REDUCE_LAYER]))
        teacher_maps = (teacher_maps.astype(np.float32) / rms).astype(np.float16)
    trainer = keras.Model(start, outputs)

    def distillation_loss(y_true, y_pred):
        soft_teacher = tf.nn.softmax(y_true[:, :classes] / temperature)
        kd = -tf.reduce_sum(soft_teacher * tf.nn.log_softmax(y_pred / temperature), axis=1) * temperature ** 2
        hard = -tf.reduce_sum(y_true[:, classes:] * tf.nn.log_softmax(y_pred), axis=1)
        return (1 - alpha) * kd + alpha * hard

    use_maps = teacher_maps is not None
    trainer.compile(optimizer=keras.optimizers.Adam(learning_rate_schedule(options, steps_per_epoch)),
                    loss=[distillation_loss, "mse"] if use_maps else distillation_loss,
                    loss_weights=[1.0, options.map_weight] if use_maps else None)
    return trainer, teacher_maps


def _distillation_dataset(train_rgb: np.ndarray | list[np.ndarray], teacher_logits: np.ndarray, labels: np.ndarray,
                          teacher_maps: np.ndarray | None, options: KmodelOptions):
    """Images with (teacher logits, one-hot labels) targets and the teacher maps, shuffled, flipped, batched.

    ``train_rgb`` may instead be [inputs, inputs of the mirror images] (the frozen blocks' outputs): the coin
    then picks one of the two instead of mirroring the pixels.
    """
    import tensorflow as tf

    classes = teacher_logits.shape[1]
    targets = np.concatenate([teacher_logits, np.eye(classes, dtype=np.float32)[labels]], axis=1).astype(np.float32)
    mirrored = isinstance(train_rgb, (list, tuple))

    def flip(*parts):
        # One coin per image flips the pixels (or picks the mirror image's inputs) and, with them, the
        # teacher's maps (axis 1 = width).
        flipped = tf.random.uniform([], seed=options.seed) < 0.5
        if mirrored:
            (plain, mirror), (target, *maps) = parts[:2], parts[2:]
            image = tf.cast(tf.cond(flipped, lambda: mirror, lambda: plain), tf.float32)
        else:
            (image, target, *maps) = parts
            image = tf.cast(image, tf.float32)
            image = tf.cond(flipped, lambda: tf.reverse(image, [1]), lambda: image)
        if not maps:
            return image, target
        fmap = tf.cast(maps[0], tf.float32)
        return image, (target, tf.cond(flipped, lambda: tf.reverse(fmap, [1]), lambda: fmap))

    tensors = (*train_rgb, targets) if mirrored else (train_rgb, targets)
    tensors = (*tensors, teacher_maps) if teacher_maps is not None else tensors
    return (tf.data.Dataset.from_tensor_slices(tensors)
            .shuffle(len(targets), seed=options.seed, reshuffle_each_iteration=True)
            .map(flip)
            .batch(options.batch_size)
            .prefetch(2))


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


def teacher_outputs(teacher, layout, images_rgb: np.ndarray, maps: bool, dtype: str = "float32",
                    tflite: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """The teacher's log-probabilities and, with ``maps``, its head's 1x1-conv maps (float16), in one pass.

    ``dtype`` is the Keras dtype policy the teacher's conv trunk runs in (its head stays float32): with
    "mixed_bfloat16" the pass takes half the time on a CPU with bf16 instructions, and the targets move
    little (on 125 training images: the same top-1 for all, max probability difference 0.004). In float32
    the pass runs the same graph as a float TFLite model (:func:`_float_tflite_outputs`), which is faster
    on many images; ``tflite=False`` keeps it in Keras (a few images: no conversion to pay for).
    """
    import keras

    from convert.head import join_outputs, predict_outputs
    from convert.k210.student import REDUCE_LAYER

    if layout.head is None:  # a brought model: its own output, whole (in float32: it is not ours to clone)
        probs = predict_outputs(teacher, images_rgb, (np.float32,), 32)[0]
        return np.log(np.clip(probs, 1e-7, 1.0)).astype(np.float32), None
    trunk = layout.trunk if dtype == "float32" else in_dtype(layout.trunk, dtype)
    pixels = keras.Input(teacher.input.shape[1:])
    features = trunk(layout.normalize(pixels))
    if maps:
        reduced = layout.head.get_layer(REDUCE_LAYER)(features)
        both = keras.Model(pixels, [layout.head.get_layer("predictions")(layout.head.get_layer("gap")(reduced)),
                                    reduced])
    else:
        both = keras.Model(pixels, [layout.head(features)])
    dtypes = (np.float32, np.float16) if maps else (np.float32,)
    if dtype == "float32" and tflite:
        outputs = join_outputs(_float_tflite_outputs(both, [images_rgb])[0], dtypes)
    else:
        outputs = predict_outputs(both, images_rgb, dtypes, 32)
    return np.log(np.clip(outputs[0], 1e-7, 1.0)).astype(np.float32), outputs[1] if maps else None


def _float_tflite_outputs(model, image_sets: list[np.ndarray], what: str = "teacher outputs"
                          ) -> list[list[list[np.ndarray]]]:
    """``model``'s outputs on each image of each set (per set, a list of batches of one, as the Keras path
    gives batches), through its float32 TFLite copy, exported once: the same float32 graph, on XNNPACK's
    kernels, which ran the teacher faster than Keras on the 2-core AVX2 EPYC (README, the AVX2 make kmodel
    run)."""
    import tempfile

    from convert.progress import progress
    from convert.tflite.export import ExportContext, Target, export
    from runtime.interpreter import load_interpreter

    with tempfile.TemporaryDirectory(prefix="kmodel-float-") as tmp:
        ctx = ExportContext(model=model, out_dir=Path(tmp), work_dir=Path(tmp))
        interpreter = load_interpreter(export(ctx, [Target.TFLITE_FLOAT])[Target.TFLITE_FLOAT])
        source = interpreter.get_input_details()[0]["index"]
        details = interpreter.get_output_details()
        # TFLite orders the outputs its own way: each Keras output is found by its shape (they differ).
        order = [next(d["index"] for d in details if tuple(d["shape"][1:]) == tuple(output.shape[1:]))
                 for output in model.outputs]
        sets = []
        for images in image_sets:
            parts = []
            for image in progress(images, what):
                interpreter.set_tensor(source, image[None].astype(np.float32))
                interpreter.invoke()
                parts.append([interpreter.get_tensor(index).copy() for index in order])
            sets.append(parts)
        return sets


def in_dtype(model, dtype: str):
    """A copy of a Keras functional model whose layers run in the dtype policy ``dtype`` (same weights)."""
    import keras

    def clone(layer):
        return layer.__class__.from_config({**layer.get_config(), "dtype": dtype})

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def load_teacher(path: Path, plan: Plan, brought: bool = False):
    """The ``make convert`` float model and its parts, checked against the shape the plan mirrors.

    A brought model (``brought``) has no head of ours; its VGG conv blocks, if it has them, must be the
    plan's (all five), else the student is not initialized from them.
    """
    import keras

    from convert.k210.student import brought_teacher_layout, teacher_layout

    teacher = keras.models.load_model(path)
    if brought:
        layout = brought_teacher_layout(teacher, plan.normalization)
        if layout.trunk is not None and (layout.arch, layout.blocks) != (plan.arch, plan.blocks):
            log.info("the brought model's conv blocks (%s, 1-%d) are not the plan's: the student starts from "
                     "random weights", layout.arch, layout.blocks)
            layout.trunk = None
        return teacher, layout
    layout = teacher_layout(teacher)
    if (layout.arch, layout.blocks, layout.reduce_channels) != (plan.arch, plan.blocks, plan.reduce_channels):
        raise ToolkitError(f"{path}: its layers ({layout.arch}, blocks 1-{layout.blocks}, 1x1 conv "
                           f"{layout.reduce_channels}) differ from what metadata.json says; rerun `make convert`")
    return teacher, layout


def train_student(plan: Plan, layout, inputs, teacher_logits: np.ndarray, teacher_maps: np.ndarray | None,
                  options: KmodelOptions, dtype: str = "float32"):
    """Builds the variant, initializes it from the teacher and distills it; returns (student, init, history).

    The student is built for any input size: its layers are fit to the teacher's at the teacher's input size
    (the same pixels give both nets the same positions), then it is distilled at its own size, in the
    Keras dtype policy ``dtype`` (:func:`training_dtype`).
    """
    from convert.k210.student import build_student, init_from_teacher

    student = build_student(plan, seed=options.seed, any_size=True)  # float32: the refit needs the precision
    rng = np.random.default_rng(options.seed)
    sample = np.sort(rng.choice(inputs.fit_index, min(options.init_images, len(inputs.fit_index)), replace=False))
    started = time.perf_counter()
    init = init_from_teacher(student, layout, inputs.teacher_rgb[sample], teacher_logits[sample],
                             reconstruct=options.reconstruct, seed=options.seed)
    log.info("initialized from the teacher on %d images in %.0f s", len(sample), time.perf_counter() - started)
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


def frozen_blocks(asked: int | None, dtype: str, blocks: int, initialized: bool = True) -> int:
    """How many conv blocks the distillation keeps as initialized (see :attr:`KmodelOptions.freeze_blocks`):
    ``asked``, or for None :data:`FROZEN_BLOCKS_WITHOUT_BF16` where the distillation runs in float32 (no bf16
    instructions), at most all but the last block, and 0 in bfloat16 or when the student was not
    ``initialized`` from the teacher's conv blocks (a brought model without VGG blocks: random filters).

    Raises:
        ToolkitError: ``asked`` leaves no conv block to train.
    """
    if asked is None:
        return 0 if dtype != "float32" or not initialized else min(FROZEN_BLOCKS_WITHOUT_BF16, blocks - 1)
    if not 0 <= asked < blocks:
        raise ToolkitError(f"--freeze-blocks {asked}: the student has blocks 1-{blocks}; freeze 0-{blocks - 1} of them")
    return asked


def training_dtype(precision: Precision, cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The Keras dtype policy the distillation runs in (see :attr:`KmodelOptions.precision`)."""
    precision = Precision(precision)
    if precision is Precision.FLOAT32:
        return "float32"
    if precision is Precision.BFLOAT16:
        return "mixed_bfloat16"
    try:
        flags = set(cpuinfo.read_text(errors="replace").split())
    except OSError:
        flags = set()
    return "mixed_bfloat16" if flags & set(BF16_CPU_FLAGS) else "float32"


def rebuilt(student, plan: Plan, *, any_size: bool = False, dtype: str | None = None, seed: int = 0):
    """The student's weights in another build of the plan: by default the fixed-size float32 model TFLite and
    nncase need; with ``dtype`` a mixed-precision copy to train (its variables are float32 too)."""
    from convert.k210.student import build_student

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
