"""Heads, transfer learning on cached features, and assembly of the single float Keras model."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from convert.backbone import Backbone, caffe_preprocess_layer, feature_layer_names
from convert.config import HeadKind

log = logging.getLogger(__name__)

FEATURE_BATCH = 32  # images per forward pass when caching features: fills both cores, bounded memory
REDUCE_LAYER = "reduce"  # the block4-conv head's 1x1 convolution (make kmodel distills its maps)
BLOCK4_HEAD_WIDTH = 128  # 1x1 conv channels of the block4-conv head (hed weights: 128 and 256 within noise)


def head_input(kind: HeadKind) -> str:
    """The backbone layer a head reads: block4_pool for BLOCK4_CONV, block5_pool otherwise."""
    return "block4_pool" if kind is HeadKind.BLOCK4_CONV else "block5_pool"


def build_head(kind: HeadKind, input_shape: tuple, n_classes: int, dropout: float, l2: float, seed: int):
    """The classifier on top of the conv base, as a named functional model so it can be shared and found.

    Args:
        kind: GAP, MLP or BLOCK4_CONV (see ``HeadKind``).
        input_shape: Shape of the feature map it reads, without batch (spatial dims may be None except for MLP).
        n_classes: Output classes (softmax).
        dropout: Dropout rate before the last dense layer.
        l2: L2 penalty on the head's kernels: keeps the logits from leaning on feature differences smaller
            than one int8 quantization step.
        seed: Seed of the initializers and dropout.
    """
    import keras

    regularizer = keras.regularizers.L2(l2) if l2 > 0 else None
    init = keras.initializers.GlorotUniform(seed=seed)
    features = keras.Input(input_shape, name="features")
    if kind is HeadKind.GAP:
        x = keras.layers.GlobalAveragePooling2D(name="gap")(features)
    elif kind is HeadKind.MLP:
        x = keras.layers.Flatten(name="flatten")(features)
        x = keras.layers.Dense(256, activation="relu", kernel_regularizer=regularizer, kernel_initializer=init,
                               name="fc")(x)
    elif kind is HeadKind.BLOCK4_CONV:
        x = keras.layers.Conv2D(BLOCK4_HEAD_WIDTH, 1, activation="relu", kernel_regularizer=regularizer,
                                kernel_initializer=init, name=REDUCE_LAYER)(features)
        x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    else:
        raise ValueError(f"no trainable head for {kind}")
    x = keras.layers.Dropout(dropout, seed=seed, name="dropout")(x)
    scores = keras.layers.Dense(n_classes, activation="softmax", kernel_regularizer=regularizer,
                                kernel_initializer=init, name="predictions")(x)
    return keras.Model(features, scores, name="head")


def feature_extractor(backbone: Backbone, input_size: int):
    """Pixels (RGB 0..255) -> block4_pool features, through the in-graph normalization."""
    import keras

    cut, _ = feature_layer_names(backbone.arch)
    trunk = keras.Model(backbone.model.input, backbone.model.get_layer(cut).output, name="trunk")
    pixels = keras.Input((input_size, input_size, 3), name="image_rgb")
    return keras.Model(pixels, trunk(caffe_preprocess_layer()(pixels)), name="feature_extractor")


def extract_features(extractor, images_rgb: np.ndarray, desc: str) -> np.ndarray:
    """Runs uint8 RGB images through the extractor in batches, with a progress bar; float32 features."""
    from convert.progress import progress

    out = []
    for start in progress(range(0, len(images_rgb), FEATURE_BATCH), desc, unit="batch"):
        batch = images_rgb[start:start + FEATURE_BATCH].astype(np.float32)
        out.append(np.asarray(extractor.predict_on_batch(batch), np.float32))
    return np.concatenate(out)


def extract_features_int8(extractor, calibration: np.ndarray, images_rgb: np.ndarray, work_dir, desc: str,
                          threads: int | None = None) -> np.ndarray:
    """The features the int8 model will see: the extractor converted to int8 with the run's calibration set,
    run over the images, outputs dequantized.

    Blocks 1-4 are frozen, so their int8 version here is the one inside the final int8 model: same graph,
    same calibration data.
    """
    from pathlib import Path

    from convert.progress import progress
    from convert.tflite.export import ExportContext, Target, export
    from runtime.interpreter import TFLiteModel

    work_dir = Path(work_dir)
    ctx = ExportContext(model=extractor, out_dir=work_dir, work_dir=work_dir, calibration=calibration)
    model = TFLiteModel(export(ctx, [Target.TFLITE_INT8])[Target.TFLITE_INT8], threads)
    return np.stack([model.predict(image.astype(np.float32)) for image in progress(images_rgb, desc)])


def default_epochs(kind: HeadKind, fine_tune: bool) -> int:
    """Epochs that reached a plateau in the measurements of the README (hed weights, 2000 training images)."""
    if fine_tune:
        return 6
    return 30 if kind is HeadKind.BLOCK4_CONV else 20


@dataclass
class TrainResult:
    """What training produced.

    Attributes:
        head: The trained head (a functional model, shared with the full model).
        tail: Inference model from cached block4 features to class scores (block5 if used, then the head);
            it shares layers with the backbone, so it computes exactly what the full model does.
        history: Per-epoch loss and accuracy.
        fine_tuned: Whether block5 was trained.
    """

    head: object
    tail: object
    history: dict
    fine_tuned: bool


def _block5(backbone: Backbone, x, trainable: bool):
    _, names = feature_layer_names(backbone.arch)
    for name in names:
        layer = backbone.model.get_layer(name)
        layer.trainable = trainable
        x = layer(x)
    return x


def train_head(
    backbone: Backbone,
    kind: HeadKind,
    n_classes: int,
    features: np.ndarray,
    labels: np.ndarray,
    fine_tune: bool,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    dropout: float,
    l2: float,
    seed: int,
) -> TrainResult:
    """Trains a head (and block5 with ``fine_tune``) on cached block4 features.

    Horizontal flips of the feature maps are the augmentation: free here, unlike re-running the frozen
    blocks 1-4 on flipped images. A head on block5 without fine-tuning is trained on block5 features
    computed once (of the maps and of their flips) instead of running frozen block5 every epoch.
    """
    import keras

    keras.utils.set_random_seed(seed)
    uses_block5 = head_input(kind) == "block5_pool"
    if fine_tune and not uses_block5:
        raise ValueError(f"--fine-tune trains block5, which the {kind.value} head does not use")
    b4_input = keras.Input(features.shape[1:], name="block4_features")
    if uses_block5:
        b5_shape = tuple(int(d) for d in backbone.model.get_layer("block5_pool").output.shape[1:])
        head = build_head(kind, b5_shape if kind is HeadKind.MLP else (None, None, b5_shape[-1]),
                          n_classes, dropout, l2, seed)
        tail = keras.Model(b4_input, head(_block5(backbone, b4_input, fine_tune)), name="tail")
    else:
        head = build_head(kind, (None, None, features.shape[-1]), n_classes, dropout, l2, seed)
        tail = keras.Model(b4_input, head(b4_input), name="tail")

    if uses_block5 and not fine_tune:
        block5 = keras.Model(b4_input, _block5(backbone, b4_input, False))
        train_x = np.concatenate([predict_batched(block5, features), predict_batched(block5, features[:, :, ::-1])])
        train_y = np.concatenate([labels, labels])
        model = head
    else:
        inputs = keras.Input(features.shape[1:], name="block4_features")
        x = keras.layers.RandomFlip("horizontal", seed=seed, name="flip")(inputs)
        if uses_block5:
            x = _block5(backbone, x, fine_tune)
        elif features.shape[1] // 7 > 0:
            # Random windows a seventh smaller (12x12 of 14x14): translation augmentation that the global
            # pool absorbs. Maps under 7x7 (small inputs) are not cropped.
            margin_h, margin_w = features.shape[1] // 7, features.shape[2] // 7
            x = keras.layers.RandomCrop(features.shape[1] - margin_h, features.shape[2] - margin_w, seed=seed,
                                        name="crop")(x)
        model = keras.Model(inputs, head(x), name="train")
        train_x, train_y = features, labels
    steps = epochs * int(np.ceil(len(train_x) / batch_size))
    model.compile(
        optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(learning_rate, steps)),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    history = model.fit(train_x, train_y, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=2)
    return TrainResult(head=head, tail=tail, fine_tuned=fine_tune,
                       history={k: [float(v) for v in vals] for k, vals in history.history.items()})


def teacher_targets(result: TrainResult, features: np.ndarray) -> dict[str, np.ndarray]:
    """What ``make kmodel`` distills from, on the images of ``features`` (the cached block4 features the head
    was trained on): the float model's log-probabilities and, for a head on block4 with a 1x1 conv (block4-conv),
    that conv's maps (float16). ``tail`` on the features is the full model on the pixels, so make kmodel need
    not run the teacher's VGG again (its longest step after the distillation on a CPU without bf16)."""
    import keras

    head = result.head
    maps = REDUCE_LAYER in {layer.name for layer in head.layers} and head_reads_block4(result)
    model = keras.Model(head.input, [head.output, head.get_layer(REDUCE_LAYER).output]) if maps else \
        keras.Model(result.tail.input, [result.tail.output])
    outputs = predict_outputs(model, features, (np.float32, np.float16) if maps else (np.float32,))
    targets = {"log_probs": np.log(np.clip(outputs[0], 1e-7, 1.0)).astype(np.float32)}
    if maps:
        targets["maps"] = outputs[1]
    return targets


def head_reads_block4(result: TrainResult) -> bool:
    """True when the tail is the head alone on the block4 features (no block5 between them)."""
    return result.tail.layers[-1] is result.head and len(result.tail.layers) == 2


def predict_batched(model, inputs: np.ndarray, dtype=np.float32) -> np.ndarray:
    """``model`` on ``inputs`` (cast to float32 a batch at a time) in batches of FEATURE_BATCH; outputs as
    ``dtype``."""
    return np.concatenate([
        np.asarray(model.predict_on_batch(np.asarray(inputs[start:start + FEATURE_BATCH], np.float32)), dtype)
        for start in range(0, len(inputs), FEATURE_BATCH)
    ])


def predict_outputs(model, inputs: np.ndarray, dtypes: tuple, batch: int = FEATURE_BATCH) -> list[np.ndarray]:
    """Every output of a (possibly multi-output) ``model`` on ``inputs`` (cast to float32 a batch at a time), in
    batches of ``batch``: one array per output, the i-th as ``dtypes[i]``."""
    return join_outputs([model.predict_on_batch(np.asarray(inputs[start:start + batch], np.float32))
                         for start in range(0, len(inputs), batch)], dtypes)


def join_outputs(parts: list, dtypes: tuple) -> list[np.ndarray]:
    """Batches of a model's outputs (each an array, or a list of one array per output) -> one array per output,
    the i-th as ``dtypes[i]`` (each batch cast before joining, so float16 maps never exist as float32 whole)."""
    parts = [part if isinstance(part, (list, tuple)) else [part] for part in parts]
    if len(parts[0]) != len(dtypes):
        raise ValueError(f"{len(parts[0])} model outputs but {len(dtypes)} dtypes")
    return [np.concatenate([np.asarray(part[i], dtype) for part in parts]) for i, dtype in enumerate(dtypes)]


def assemble(backbone: Backbone, head, input_size: int, cut: str = "block5_pool", name: str = "vgg_classifier"):
    """One float Keras model: RGB pixels -> normalization -> conv base up to ``cut`` -> head.

    With ``head=None`` the backbone is used whole (VGG's own ImageNet top).
    """
    import keras

    pixels = keras.Input((input_size, input_size, 3), name="image_rgb")
    x = caffe_preprocess_layer()(pixels)
    if head is None:
        return keras.Model(pixels, backbone.model(x), name=name)
    if cut != backbone.model.layers[-1].name:
        trunk = keras.Model(backbone.model.input, backbone.model.get_layer(cut).output, name=f"{backbone.arch.value}_to_{cut}")
    else:
        trunk = backbone.model
    return keras.Model(pixels, head(trunk(x)), name=name)
