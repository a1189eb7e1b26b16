"""The K210 variant: a narrowed copy of the teacher's VGG, built from KPU-friendly layers, initialized from
the teacher itself and then distilled from it.

Shape: the in-graph caffe normalization (a fixed 1x1 conv), the teacher's VGG conv blocks up to where its
head reads (block4_pool for the hed weights' block4-conv head), narrowed by the plan's width, with a 2x2 max
pool closing each block (nncase fuses it into the conv on the KPU); the teacher head's 1x1 convolution if
it has one; global average pooling and one dense layer.

Initialization (channel pruning with reconstruction, He et al. 2017, "Channel Pruning for Accelerating
Very Deep Neural Networks"): layer by layer, keep the output channels of the teacher's layer with the
largest L1 norm over the input channels already kept, then refit the kept filters by ridge least squares
so that, on a sample of training images, the narrow layer fed with the narrow network's own activations
reproduces the teacher layer's pre-activations of those channels. The narrow net so starts close to the
teacher's function instead of from a weaker subset of it; distillation then closes the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from convert.backbone import caffe_preprocess_layer, preprocess_layer
from convert.config import Preprocess
from convert.head import REDUCE_LAYER  # the block4-conv head's 1x1 convolution, re-exported for make kmodel
from convert.k210.plan import VGG_BLOCKS, Plan, scaled_channels
from runtime.errors import ToolkitError

LOGITS_LAYER = "logits"
PROBS_LAYER = "predictions"
NORMALIZE_LAYER = "caffe_preprocess"
HEAD_LAYER = "head"


def student_conv_names(arch: str, blocks: int | None = None) -> list[str]:
    chosen = VGG_BLOCKS[arch][:blocks]
    return [f"block{b}_conv{i}" for b, (convs, _) in enumerate(chosen, start=1) for i in range(1, convs + 1)]


@dataclass
class TeacherLayout:
    """Where the parts of a ``make convert`` float model are: pixels -> normalize -> trunk -> head.

    A brought model (``python -m convert --model``) has no head of ours: ``head`` is None and the student's
    dense layer is fit to the teacher's logits; ``trunk`` is None too when no VGG conv blocks are found in
    it (the student then starts from random weights).
    """

    arch: str
    blocks: int  # conv blocks in the trunk (4: cut at block4_pool)
    reduce_channels: int  # the head's 1x1 conv width; 0 = none
    trunk: object  # keras.Model: normalized pixels -> feature map (a brought model: a model holding the convs)
    head: object  # keras.Model: feature map -> probabilities; None for a brought model
    normalize: object  # the normalization layer (callable); identity for raw
    normalization: str = "caffe"


def teacher_layout(teacher) -> TeacherLayout:
    """Finds trunk and head in a ``make convert`` float model.

    Raises:
        ToolkitError: The model is not pixels -> caffe_preprocess -> VGG trunk -> trained head
            (for example VGG's own ImageNet top, which has no cats/dogs head to distill).
    """
    import keras

    names = [layer.name for layer in teacher.layers]
    nested = [layer for layer in teacher.layers if isinstance(layer, keras.Model)]
    trunks = [layer for layer in nested if layer.name != HEAD_LAYER]
    if NORMALIZE_LAYER not in names or HEAD_LAYER not in names or len(trunks) != 1:
        raise ToolkitError(f"{teacher.name}: not a make convert classifier (pixels -> {NORMALIZE_LAYER} -> VGG -> "
                           f"{HEAD_LAYER}); make kmodel distills a trained head: rerun make convert with --head gap, "
                           "flatten-mlp or block4-conv")
    trunk, head = trunks[0], teacher.get_layer(HEAD_LAYER)
    found = _vgg_blocks(trunk.layers)
    if found is None:
        raise ToolkitError(f"{trunk.name}: its conv blocks are not VGG16's or VGG19's")
    arch, blocks = found
    reduce_channels = head.get_layer(REDUCE_LAYER).filters if REDUCE_LAYER in [l.name for l in head.layers] else 0
    return TeacherLayout(arch=arch, blocks=blocks, reduce_channels=int(reduce_channels), trunk=trunk, head=head,
                         normalize=teacher.get_layer(NORMALIZE_LAYER))


def _vgg_blocks(layers) -> tuple[str, int] | None:
    """(arch, blocks) of the ``blockN_convM`` layers among ``layers``, or None when they are not a VGG's."""
    convs = [layer.name for layer in layers if layer.name.startswith("block") and "_conv" in layer.name]
    per_block: dict[int, int] = {}
    for name in convs:
        try:
            block = int(name[len("block"):name.index("_")])
        except ValueError:
            return None
        per_block[block] = per_block.get(block, 0) + 1
    if not per_block:
        return None
    blocks = max(per_block)
    arch = next((arch for arch, layout in VGG_BLOCKS.items()
                 if [convs for convs, _ in layout[:blocks]] == [per_block.get(b, 0) for b in range(1, blocks + 1)]), None)
    return None if arch is None else (arch, blocks)


def brought_teacher_layout(teacher, normalization: str) -> TeacherLayout:
    """The parts of a brought classifier (``convert/brought.py``): its normalization layer and the (nested)
    model holding its VGG conv layers, if any; no head of ours."""
    import keras

    from convert.config import Preprocess

    names = [layer.name for layer in teacher.layers]
    layer_name = f"{normalization}_preprocess"
    if normalization != Preprocess.RAW.value and layer_name not in names:
        raise ToolkitError(f"{teacher.name}: no {layer_name} layer, though metadata.json says the model normalizes "
                           f"with {normalization}; rerun `make convert`")
    normalize = teacher.get_layer(layer_name) if layer_name in names else (lambda x: x)

    def holders(model):
        for layer in model.layers:
            if isinstance(layer, keras.Model):
                yield from holders(layer)
        yield model

    for model in holders(teacher):
        found = _vgg_blocks(model.layers)
        if found and "block1_conv1" in [layer.name for layer in model.layers]:
            arch, blocks = found
            return TeacherLayout(arch, blocks, 0, model, None, normalize, normalization)
    return TeacherLayout("vgg16", 5, 0, None, None, normalize, normalization)


def build_student(plan: Plan, dropout: float = 0.3, seed: int = 0, any_size: bool = False, dtype: str | None = None):
    """The Keras model of a planned variant: RGB pixels 0..255 in, class probabilities out.

    Its layer before the softmax is named ``logits`` (distillation reads it). With ``any_size`` the input's
    height and width are left open; the weights are the same either way. ``dtype`` is the convolutions'
    Keras dtype policy (e.g. "mixed_bfloat16" to train faster; the weights stay float32, so they copy into a
    float32 build as they are); the normalization, dense layer and softmax stay float32.
    """
    import keras

    keras.utils.set_random_seed(seed)
    size = plan.input_size
    pixels = keras.Input((None, None, 3) if any_size else (size, size, 3), name="image_rgb")
    normalize = (caffe_preprocess_layer(NORMALIZE_LAYER) if plan.normalization == "caffe"
                 else preprocess_layer(Preprocess(plan.normalization)))
    x = normalize(pixels) if normalize is not None else pixels
    for block, (convs, channels) in enumerate(VGG_BLOCKS[plan.arch][:plan.blocks], start=1):
        width = scaled_channels(channels, plan.width)
        for index in range(1, convs + 1):
            x = keras.layers.Conv2D(width, 3, padding="same", activation="relu", name=f"block{block}_conv{index}",
                                    dtype=dtype)(x)
        x = keras.layers.MaxPooling2D(2, name=f"block{block}_pool", dtype=dtype)(x)
    if plan.reduce_channels:
        x = keras.layers.Conv2D(plan.reduce_channels, 1, activation="relu", name=REDUCE_LAYER, dtype=dtype)(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dropout(dropout, seed=seed, name="dropout")(x)
    logits = keras.layers.Dense(plan.classes, name=LOGITS_LAYER)(x)
    probs = keras.layers.Softmax(name=PROBS_LAYER)(logits)
    return keras.Model(pixels, probs, name=plan.name.replace(" ", "_").replace("+", "").replace("__", "_"))


@dataclass
class InitReport:
    """How well the narrow layers reproduce the teacher's, on the sample images.

    Attributes:
        kept_l1_share: Share of each teacher layer's L1 weight mass the kept channels carry.
        relative_error: Per layer, mean squared error of the kept pre-activations over their variance:
            (with the plain kept weights, after the least-squares refit).
        head: "copied" (the teacher's dense layer fits as is) or "fitted" (least squares on teacher logits).
        images: How many sample images the layers were fit on.
    """

    kept_l1_share: dict[str, float] = field(default_factory=dict)
    relative_error: dict[str, tuple[float, float]] = field(default_factory=dict)
    head: str = ""
    images: int = 0


def _patches(maps: np.ndarray, n: np.ndarray, y: np.ndarray, x: np.ndarray, kernel: int) -> np.ndarray:
    """(P, kernel*kernel*C) same-padded patches of ``maps`` (N, H, W, C) centred at the given positions."""
    if kernel == 1:
        return maps[n, y, x, :]
    half = kernel // 2
    padded = np.pad(maps, ((0, 0), (half, half), (half, half), (0, 0)))
    offsets = np.arange(kernel)
    rows = y[:, None, None] + offsets[None, :, None]
    cols = x[:, None, None] + offsets[None, None, :]
    return padded[n[:, None, None], rows, cols, :].reshape(len(n), -1)


def _ridge(inputs: np.ndarray, targets: np.ndarray, ridge: float) -> tuple[np.ndarray, np.ndarray]:
    """Least squares with a bias column and a ridge scaled to the inputs' energy; returns (weights, bias)."""
    design = np.concatenate([inputs, np.ones((len(inputs), 1), inputs.dtype)], axis=1).astype(np.float64)
    gram = design.T @ design
    penalty = ridge * np.trace(gram) / len(gram)
    solution = np.linalg.solve(gram + penalty * np.eye(len(gram)), design.T @ targets.astype(np.float64))
    return solution[:-1].astype(np.float32), solution[-1].astype(np.float32)


def _relative_error(predicted: np.ndarray, target: np.ndarray) -> float:
    return float(np.mean((predicted - target) ** 2) / max(float(np.var(target)), 1e-12))


class _Walk:
    """Runs a chain of layers forward on numpy arrays, stopping before or after a named layer."""

    def __init__(self, layers, inputs: np.ndarray):
        import keras

        self.layers = [layer for layer in layers if not isinstance(layer, keras.layers.InputLayer)]
        self.position, self.value = 0, inputs

    def _step(self) -> None:
        self.value = np.asarray(self.layers[self.position](self.value, training=False))
        self.position += 1

    def input_of(self, name: str) -> np.ndarray:
        while self.layers[self.position].name != name:
            self._step()
        return self.value

    def output_of(self, name: str) -> np.ndarray:
        self.input_of(name)
        self._step()
        return self.value

    def to_end(self) -> np.ndarray:
        while self.position < len(self.layers):
            self._step()
        return self.value


def _refit(teacher_in: np.ndarray, student_in: np.ndarray, kernel: np.ndarray, bias: np.ndarray,
           sub_kernel: np.ndarray, kept_out: np.ndarray, kernel_size: int, positions: int, ridge: float,
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """One narrowed conv refit by ridge least squares: its outputs on sampled positions of the student's own
    input maps, pulled to the teacher's outputs (kept channels) on the teacher's input maps.

    Args:
        sub_kernel: The teacher's kernel on the kept input channels, kept outputs: the starting point.

    Returns:
        (kernel, bias, (relative error with the kept channels' weights, after the refit)).
    """
    out_channels = len(kept_out)
    count, height, width, _ = student_in.shape
    chosen = rng.choice(count * height * width, min(positions, count * height * width), replace=False)
    n, y, x = chosen // (height * width), (chosen // width) % height, chosen % width
    target = _patches(teacher_in, n, y, x, kernel_size) @ kernel.reshape(-1, kernel.shape[-1])[:, kept_out]
    target += bias[kept_out]
    inputs = _patches(student_in, n, y, x, kernel_size)
    before = _relative_error(inputs @ sub_kernel.reshape(-1, out_channels) + bias[kept_out], target)
    fitted, new_bias = _ridge(inputs, target, ridge)
    return fitted.reshape(sub_kernel.shape), new_bias, (before, _relative_error(inputs @ fitted + new_bias, target))


def _init_dense(student, layout: TeacherLayout, student_walk: "_Walk", teacher_logits: np.ndarray | None,
                ridge: float) -> str:
    """The student's dense layer: the teacher's own where the shapes agree ("copied"), else a ridge fit of the
    pooled student features to the teacher's centred logits ("fitted")."""
    import keras

    dense = (None if layout.head is None
             else [layer for layer in layout.head.layers if isinstance(layer, keras.layers.Dense)][-1])
    logits_layer = student.get_layer(LOGITS_LAYER)
    if dense is not None and [w.shape for w in dense.get_weights()] == [w.shape for w in logits_layer.get_weights()]:
        # As many features as the teacher's, so all of its channels were kept, in order: its own dense layer.
        logits_layer.set_weights(dense.get_weights())
        return "copied"
    if teacher_logits is None:
        raise ValueError("the teacher's dense layer does not fit the student's: pass teacher_logits")
    pooled = student_walk.output_of("gap")
    centered = teacher_logits - teacher_logits.mean(axis=1, keepdims=True)  # softmax ignores a per-row shift
    logits_layer.set_weights(list(_ridge(pooled, centered, ridge)))
    return "fitted"


def init_from_teacher(student, layout: TeacherLayout, images_rgb: np.ndarray, teacher_logits: np.ndarray | None = None,
                      *, reconstruct: bool = True, positions: int = 30_000, ridge: float = 1e-3,
                      seed: int = 0) -> InitReport:
    """Initializes ``student`` (from :func:`build_student`) from the teacher's layers; see the module docs.

    Args:
        student: The narrow model; its conv layer names match the teacher trunk's.
        layout: The teacher's parts (:func:`teacher_layout`).
        images_rgb: (N, H, W, 3) uint8 training images the reconstruction is fit on (a few dozen suffice:
            each gives thousands of positions).
        teacher_logits: (N, classes) teacher log-probabilities of ``images_rgb``: needed only when the
            teacher's dense layer does not fit the student's (then the student's is fit to them).
        reconstruct: False keeps the plain strongest-channel subset (no least squares).
        positions: Feature-map positions sampled per layer for the least squares.
        ridge: Ridge penalty relative to the mean input energy.
        seed: Sampling seed.
    """
    rng = np.random.default_rng(seed)
    report = InitReport(images=len(images_rgb))
    if layout.trunk is None:  # a brought model without VGG conv blocks: nothing to copy, distillation alone
        report.head = "random"
        return report
    pixels = images_rgb.astype(np.float32)
    # Both nets are walked forward once, layer by layer (one eager call per layer, no predict function to
    # trace): each conv's input is the previous one's output, after any pooling between them. The student's
    # layer is applied only after its weights are set, so the next one sees the refit activations.
    teacher_walk = _Walk(layout.trunk.layers, np.asarray(layout.normalize(pixels)))
    student_walk = _Walk(student.layers, pixels)
    names = student_conv_names(layout.arch, layout.blocks)
    if layout.reduce_channels and REDUCE_LAYER in [layer.name for layer in student.layers]:
        names.append(REDUCE_LAYER)
    kept_in = np.arange(3)
    for name in names:
        if name == REDUCE_LAYER:
            teacher_layer, kernel_size = layout.head.get_layer(REDUCE_LAYER), 1
            teacher_in = teacher_walk.to_end()
        else:
            teacher_layer, kernel_size = layout.trunk.get_layer(name), 3
            teacher_in = teacher_walk.input_of(name)
        kernel, bias = teacher_layer.get_weights()
        student_layer = student.get_layer(name)
        out_channels = student_layer.get_weights()[0].shape[-1]
        sub = kernel[:, :, kept_in, :]
        strength = np.abs(sub).sum(axis=(0, 1, 2))
        kept_out = np.sort(np.argsort(strength)[::-1][:out_channels])
        report.kept_l1_share[name] = float(strength[kept_out].sum() / strength.sum())
        new_kernel, new_bias = sub[..., kept_out], bias[kept_out]
        if reconstruct:
            new_kernel, new_bias, report.relative_error[name] = _refit(
                teacher_in, student_walk.input_of(name), kernel, bias, new_kernel, kept_out, kernel_size, positions,
                ridge, rng)
        student_layer.set_weights([new_kernel, new_bias])
        kept_in = kept_out
    report.head = _init_dense(student, layout, student_walk, teacher_logits, ridge)
    return report
