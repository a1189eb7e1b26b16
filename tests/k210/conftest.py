"""Shared fixtures of the K210 target's tests: make-convert-shaped teachers with random weights, built once."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from convert.config import HeadKind
from convert.k210.compile import DEFAULT_TOOLCHAIN, toolchain_python
from runtime.errors import ToolkitError


@pytest.fixture(scope="session")
def toolchain() -> Path:
    """The nncase toolchain folder (``K210_DIR``, as ``make test K210_DIR=...`` builds it); the tests that need
    it skip with the reason its build recorded when it is not there."""
    folder = Path(os.environ.get("K210_DIR", DEFAULT_TOOLCHAIN))
    try:
        toolchain_python(folder)
    except ToolkitError as error:
        pytest.skip(str(error))
    return folder


def random_teacher(head_kind: HeadKind, size: int = 32, seed: int = 0):
    """A make-convert-shaped classifier with random weights: pixels -> caffe -> VGG16 trunk -> head."""
    import keras

    from convert.backbone import Backbone
    from convert.config import Arch
    from convert.head import assemble, build_head, head_input

    keras.utils.set_random_seed(seed)
    vgg = keras.applications.VGG16(weights=None, include_top=False, input_shape=(size, size, 3))
    rng = np.random.default_rng(seed)
    for layer in vgg.layers:  # He-scaled random filters with varied strength, so that channel choice matters
        if layer.get_weights():
            kernel, bias = layer.get_weights()
            scale = np.sqrt(2.0 / np.prod(kernel.shape[:3])) * rng.uniform(0.2, 1.8, kernel.shape[-1])
            layer.set_weights([(rng.normal(size=kernel.shape) * scale).astype(np.float32),
                               rng.normal(0, 0.1, bias.shape).astype(np.float32)])
    cut = head_input(head_kind)
    shape = tuple(int(d) for d in vgg.get_layer(cut).output.shape[1:])
    head = build_head(head_kind, shape, 2, 0.3, 0.0, seed)
    teacher = assemble(Backbone(vgg, Arch.VGG16, "random"), head, size, cut)
    # Scale and centre the dense layer so that the logits spread over a few units around 0 instead of
    # saturating the softmax.
    dense = head.get_layer("predictions")
    pixels = rng.integers(0, 256, (16, size, size, 3)).astype(np.float32)
    trunk_out = teacher.layers[2](teacher.get_layer("caffe_preprocess")(pixels))
    features = np.asarray(keras.Model(head.input, dense.input)(trunk_out))
    kernel, bias = dense.get_weights()
    margin = features @ (kernel[:, 1] - kernel[:, 0])
    scale = 2.0 / max(float(margin.std()), 1e-6)
    dense.set_weights([kernel * scale, np.array([0.0, -scale * float(margin.mean())], np.float32)])
    return teacher


@pytest.fixture(scope="session")
def make_teacher():
    """``make_teacher(head_kind)``: the 32-pixel random teacher of that head, one per head kind in a session (the
    tests read it and never train it; test_distill checks that it stays untouched)."""
    return lru_cache(maxsize=None)(random_teacher)
