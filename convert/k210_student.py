"""The K210 variant: a narrowed VGG built from KPU-friendly layers, initialized from the full backbone and
distilled from the full float VGG + head.

Layers: the in-graph caffe normalization (a fixed 1x1 conv), 3x3 same-padded ReLU convolutions in VGG's
blocks with a 2x2 max pool closing each block (nncase fuses it into the conv on the KPU), global average
pooling and one dense layer. Initialization keeps, layer by layer, the output channels of the full
backbone with the largest L1 norm (over the input channels already kept), so the narrow net starts from
the backbone's strongest filters instead of from noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from convert.backbone import caffe_preprocess_layer
from convert.k210_plan import VGG_BLOCKS, Plan, scaled_channels

LOGITS_LAYER = "logits"
PROBS_LAYER = "predictions"


def student_conv_names(arch: str) -> list[str]:
    return [f"block{b}_conv{i}" for b, (convs, _) in enumerate(VGG_BLOCKS[arch], start=1) for i in range(1, convs + 1)]


def build_student(plan: Plan, dropout: float = 0.3, seed: int = 0):
    """The Keras model of a planned variant: RGB pixels 0..255 in, class probabilities out.

    Its layer before the softmax is named ``logits`` (distillation reads it).
    """
    import keras

    keras.utils.set_random_seed(seed)
    size = plan.input_size
    pixels = keras.Input((size, size, 3), name="image_rgb")
    x = caffe_preprocess_layer()(pixels)
    for block, (convs, channels) in enumerate(VGG_BLOCKS[plan.arch], start=1):
        width = scaled_channels(channels, plan.width)
        for index in range(1, convs + 1):
            x = keras.layers.Conv2D(width, 3, padding="same", activation="relu", name=f"block{block}_conv{index}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dropout(dropout, seed=seed, name="dropout")(x)
    logits = keras.layers.Dense(plan.classes, name=LOGITS_LAYER)(x)
    probs = keras.layers.Softmax(name=PROBS_LAYER)(logits)
    return keras.Model(pixels, probs, name=f"{plan.arch}_x{plan.width:g}_{size}")


@dataclass
class InitReport:
    """Which share of each layer's L1 weight mass the kept channels carry."""

    kept_l1_share: dict[str, float]


def init_from_backbone(student, backbone_model, arch: str) -> InitReport:
    """Copies the strongest channels of each backbone conv into the student (same layer names)."""
    kept_in = np.arange(3)
    shares = {}
    for name in student_conv_names(arch):
        kernel, bias = backbone_model.get_layer(name).get_weights()
        layer = student.get_layer(name)
        out_channels = layer.get_weights()[0].shape[-1]
        sub = kernel[:, :, kept_in, :]
        strength = np.abs(sub).sum(axis=(0, 1, 2))
        kept_out = np.sort(np.argsort(strength)[::-1][:out_channels])
        layer.set_weights([sub[:, :, :, kept_out], bias[kept_out]])
        shares[name] = float(strength[kept_out].sum() / strength.sum())
        kept_in = kept_out
    return InitReport(kept_l1_share=shares)
