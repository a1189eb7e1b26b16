"""Bring your own model: a user's Keras classifier as the float model, instead of one trained here.

Two shapes, as the Keras transfer-learning tutorials leave them:

- a whole model (``--model``): pixels (normalized as it was trained) -> VGG -> head -> scores, saved by
  Keras 3 (``.keras`` or ``.h5``) or by Keras 2 (``.h5``, which Keras 3 cannot always load: see
  :func:`load_keras_file`);
- a head alone (``--head-model``), trained on the features of a backbone the user names with ``--arch``,
  ``--weights`` and ``--input-size``; it is joined to that backbone here.

Either becomes one model that takes RGB 0..255 pixels (the normalization baked in, ``--preprocess``) and
answers softmax probabilities (a sigmoid unit or logits turned into them, ``--output``), so everything
after this stage (calibration, int8, gate, runtime, K210) is the same as for our own model.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convert.artifacts import sha256_file
from convert.backbone import build_backbone, preprocess_layer
from convert.config import ConvertOptions, OutputKind, Preprocess
from convert.schema import BROUGHT_HEAD_MODEL, BROUGHT_MODEL
from runtime.errors import ToolkitError

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
KERAS2_MAX_DIFF = 1e-4  # the rebuilt Keras 2 model against tf-keras' reading of the same file, on real images


@dataclass
class BroughtModel:
    """The user's model, joined and wrapped into the classifier this toolkit converts.

    Attributes:
        model: RGB 0..255 pixels -> normalization -> the user's model -> softmax probabilities.
        path: The user's file.
        kind: ``BROUGHT_MODEL`` (whole) or ``BROUGHT_HEAD_MODEL`` (metadata.json's ``provenance.head``).
        read: How the file was read (which Keras wrote it; whether its config was rebuilt).
        input_size: Square input side in pixels.
        classes: Output classes (2 for a single sigmoid unit or logit).
        output: What the user's last layer gives (resolved from ``auto``).
        weights: Where the conv weights come from: the file's own, or the named backbone's source.
        notice: A line to print (the backbone's offline fallback), or "".
        keras2_check: Max |difference| of the rebuilt Keras 2 model from tf-keras' reading of the file,
            once measured on real images (:func:`check_keras2_rebuild`); None otherwise.
    """

    model: object
    path: Path
    kind: str
    read: KerasFile
    input_size: int
    classes: int
    output: OutputKind
    weights: str
    notice: str = ""
    keras2_check: float | None = None
    raw_model: object = None  # the user's model as loaded (normalized pixels -> its own output)
    arch: str = "vgg16"  # the VGG inside it, by its layer names ("other" when none is recognized)
    logit_model: object = lambda: None  # () -> the user's model up to its sigmoid's logit, or None

    def description(self, preprocess: Preprocess) -> dict:
        return {"weights": self.weights, "arch": self.arch, "head": self.kind, "trained": False,
                "model_file": str(self.path),
                "model_sha256": sha256_file(self.path), "model_format": self.read.describe(),
                "preprocess": preprocess.value, "output": self.output.value,
                "keras2_max_abs_diff": self.keras2_check}


def load_brought(options: ConvertOptions) -> BroughtModel:
    """``--model`` or ``--head-model`` as one classifier (see the module's docstring).

    Raises:
        ToolkitError: One line naming the file and the fix: not a Keras model, a custom layer Keras cannot
            deserialize, an input that is not an RGB image, a head that does not fit the backbone, an
            output that is not a classifier's, a size that contradicts the model.
    """
    import keras

    if options.preprocess is None:
        raise ToolkitError(f"{options.brought}: say how the model's images were normalized: --preprocess "
                           + "|".join(p.value for p in Preprocess))
    if options.model is not None:
        user, read = load_keras_file(options.model)
        size = _image_input_size(user, options.model, options.input_size)
        weights, notice = f"file:{options.model}", ""
        kind, joined = BROUGHT_MODEL, user

        def logit_model():
            return sigmoid_logit(user)
    else:
        head, read = load_keras_file(options.head_model)
        if options.input_size is None:
            raise ToolkitError(f"{options.head_model}: a head alone needs --input-size, the image size its "
                               f"features were extracted at (with --arch {options.arch.value} --weights ...)")
        size = options.input_size
        backbone = build_backbone(options.arch, options.weights, size, False, options.seed)
        joined = _join_head(head, backbone, options.head_model)
        weights, notice, kind = backbone.source, backbone.notice, BROUGHT_HEAD_MODEL

        def logit_model():
            head_logit = sigmoid_logit(head)
            return None if head_logit is None else keras.Model(backbone.model.input, head_logit(backbone.model.output))
    output, classes = _output_kind(joined, options.brought, options.output)
    if options.labels is not None and len(options.labels) != classes:
        raise ToolkitError(f"--labels: {len(options.labels)} names ({','.join(options.labels)}) for "
                           f"{options.brought}, which has {classes} classes; give one name per class, in output order")
    brought = BroughtModel(None, Path(options.brought), kind, read, size, classes, output, weights, notice,
                           raw_model=joined, arch=vgg_arch(joined), logit_model=logit_model)
    brought.model = classifier_of(brought, options.preprocess)
    return brought


def vgg_arch(model) -> str:
    """"vgg19" or "vgg16" by the keras.applications layer names in the model (nested models too), else "other"."""
    names = set()

    def walk(layer):
        names.add(layer.name)
        for inner in getattr(layer, "layers", []):
            walk(inner)

    walk(model)
    if "block5_conv4" in names:
        return "vgg19"
    return "vgg16" if "block5_conv3" in names else "other"


@dataclass
class KerasFile:
    """How a model file was read: which Keras wrote it, and whether its config had to be rebuilt."""

    saved_by: str  # "Keras 3.15.1", "Keras 2.21.0", or "Keras (version not recorded)"
    suffix: str
    rebuilt: bool = False

    def describe(self) -> str:
        return f"{self.saved_by} {self.suffix}" + (", config rebuilt for Keras 3" if self.rebuilt else "")


def load_keras_file(path: Path) -> tuple[object, KerasFile]:
    """A Keras model file as a Keras 3 model, and how it was read.

    Keras 3 loads its own files and most Keras 2 ones. It cannot load a Keras 2 ``.h5`` whose model nests
    another (``Sequential([VGG16(...), Flatten(), ...])``, the tutorials' shape): Keras 2 wrote the nested
    model's outputs as a list of lists, which Keras 3 hands to the next layer as a list (keras-team/keras
    #19670). Such a file is read from a copy whose config has the single output unwrapped; the weights load
    as Keras 3 loads any ``.h5``. :func:`check_keras2_rebuild` then compares the result with tf-keras'
    reading of the original file.
    """
    import keras

    path = Path(path)
    _check_model_file(path)
    version = _saved_by_version(path)
    read = KerasFile(f"Keras {version}" if version else "Keras (version not recorded)", path.suffix.lower())
    try:
        return keras.models.load_model(path, compile=False), read
    except Exception as error:  # noqa: BLE001 - Keras raises many types; each becomes one line below
        first = error
    if version.startswith("2.") and read.suffix != ".keras":
        with tempfile.TemporaryDirectory(prefix="convert-keras2-") as work:
            copy = Path(work) / "model.h5"
            shutil.copyfile(path, copy)
            if _unwrap_nested_outputs(copy):
                try:
                    return keras.models.load_model(copy, compile=False), KerasFile(read.saved_by, read.suffix, True)
                except Exception as error:  # noqa: BLE001
                    first = error
    raise _load_error(path, first, version) from None


def _check_model_file(path: Path) -> None:
    if path.is_dir():
        raise ToolkitError(f"{path}: a folder (a TensorFlow SavedModel?); load it in Keras and save it with "
                           "model.save('model.keras')")
    if not path.is_file():
        raise ToolkitError(f"{path}: model file not found; pass the .keras or .h5 file model.save() wrote")
    if path.suffix.lower() not in KERAS_SUFFIXES:
        raise ToolkitError(f"{path}: not a Keras model file (.keras or .h5); save the model with "
                           "model.save('model.keras')")
    if path.suffix.lower() == ".keras" and not zipfile.is_zipfile(path):
        raise ToolkitError(f"{path}: not a Keras model (a .keras file is a zip archive); save it again with "
                           "model.save('model.keras')")
    if path.suffix.lower() != ".keras":
        import h5py

        if not h5py.is_hdf5(path):
            raise ToolkitError(f"{path}: not an HDF5 file; save the model again with model.save('model.h5')")
        with h5py.File(path, "r") as f:
            if "model_config" not in f.attrs:
                raise ToolkitError(f"{path}: holds weights only (model.save_weights); save the whole model with "
                                   "model.save('model.h5')")


def _saved_by_version(path: Path) -> str:
    """The Keras version that wrote the file ("" when it is not recorded)."""
    if path.suffix.lower() == ".keras":
        try:
            with zipfile.ZipFile(path) as archive:
                return str(json.loads(archive.read("metadata.json")).get("keras_version", ""))
        except (KeyError, ValueError, zipfile.BadZipFile):
            return ""
    import h5py

    with h5py.File(path, "r") as f:
        version = f.attrs.get("keras_version", "")
    return version.decode() if isinstance(version, bytes) else str(version)


def _unwrap_nested_outputs(h5_path: Path) -> bool:
    """Rewrites, in place, nested models' single ``[[name, 0, 0]]`` inputs and outputs as ``[name, 0, 0]``.

    Returns whether anything changed.
    """
    import h5py

    changed = False

    def walk(node):
        nonlocal changed
        if isinstance(node, dict):
            config = node.get("config")
            if node.get("class_name") in ("Functional", "Model") and isinstance(config, dict):
                for key in ("input_layers", "output_layers"):
                    value = config.get(key)
                    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], list):
                        config[key], changed = value[0], True
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    with h5py.File(h5_path, "r+") as f:
        raw = f.attrs["model_config"]
        config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        walk(config)
        if changed:
            f.attrs["model_config"] = json.dumps(config)
    return changed


def _load_error(path: Path, error: Exception, version: str) -> ToolkitError:
    text = " ".join(str(error).split())
    unknown = re.search(r"(?:Could not locate class|Unknown layer:?) '?([\w.]+)'?", text)
    if unknown:
        return ToolkitError(f"{path}: custom layer {unknown.group(1)} cannot be deserialized by Keras; decorate "
                            "it with @keras.saving.register_keras_serializable() and import it before converting, "
                            "or rebuild the model from stock layers")
    saved_by = f" (saved by Keras {version})" if version else ""
    return ToolkitError(f"{path}: Keras cannot load this model{saved_by}: {text[:200]}; save it again with "
                        "model.save('model.keras')")


def _image_input_size(model, path: Path, requested: int | None) -> int:
    """The model's square input side; it must take one RGB image batch (N, H, W, 3)."""
    if len(model.inputs) != 1:
        raise ToolkitError(f"{path}: the model takes {len(model.inputs)} inputs; convert an image classifier "
                           "with one image input")
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or shape[-1] != 3:
        raise ToolkitError(f"{path}: the model's input is {shape[1:]}, not an RGB image (height, width, 3); "
                           "convert an image classifier")
    height, width = shape[1], shape[2]
    if height is None or width is None:
        if requested is None:
            raise ToolkitError(f"{path}: the model takes images of any size; pass --input-size")
        return requested
    if height != width:
        raise ToolkitError(f"{path}: the model takes {height}x{width} images; only square inputs are supported")
    if requested is not None and requested != height:
        raise ToolkitError(f"{path}: the model takes {height}x{width} images, not the --input-size {requested}; "
                           "leave --input-size out to use the model's")
    return int(height)


def _join_head(head, backbone, path: Path):
    """backbone -> head as one model; the head's input must be the backbone's output at this size."""
    import keras

    expected = tuple(backbone.model.output.shape[1:])
    if len(head.inputs) != 1 or tuple(head.inputs[0].shape[1:]) != expected:
        got = tuple(head.inputs[0].shape[1:]) if len(head.inputs) == 1 else f"{len(head.inputs)} inputs"
        raise ToolkitError(f"{path}: the head takes {got} but {backbone.arch.value} at "
                           f"{backbone.model.input.shape[1]}x{backbone.model.input.shape[2]} gives {expected}; pass "
                           "the --arch and --input-size its features were extracted with")
    return keras.Model(backbone.model.input, head(backbone.model.output), name="backbone_and_head")


def _last_activation(model) -> str:
    import keras

    layer = model.layers[-1]
    if isinstance(layer, keras.Model):
        return _last_activation(layer)
    if isinstance(layer, keras.layers.Softmax):
        return "softmax"
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", "linear") if activation is not None else "linear"


def _output_kind(model, path: Path, requested: OutputKind) -> tuple[OutputKind, int]:
    """What the last layer gives, checked against ``--output``, and the number of classes."""
    if len(model.outputs) != 1 or len(model.outputs[0].shape) != 2:
        shapes = [tuple(o.shape[1:]) for o in model.outputs]
        raise ToolkitError(f"{path}: the model answers {shapes}, not one vector of class scores; convert a "
                           "classifier")
    units = int(model.outputs[0].shape[-1])
    activation = _last_activation(model)
    if requested is OutputKind.AUTO:
        if activation == "softmax" and units >= 2:
            requested = OutputKind.SOFTMAX
        elif activation == "sigmoid" and units == 1:
            requested = OutputKind.SIGMOID
        elif activation == "linear":
            raise ToolkitError(f"{path}: the last layer gives raw scores (no activation); pass --output logits")
        else:
            raise ToolkitError(f"{path}: the last layer is {activation} over {units} unit(s), not a softmax or "
                               "a single sigmoid; pass --output softmax|sigmoid|logits")
    if requested is OutputKind.SIGMOID and units != 1:
        raise ToolkitError(f"{path}: --output sigmoid needs one output unit, the model has {units} (a sigmoid over "
                           "several units is multi-label, which this toolkit does not convert)")
    if requested is OutputKind.SOFTMAX and units < 2:
        raise ToolkitError(f"{path}: --output softmax needs two or more units, the model has {units}; "
                           "use --output sigmoid or logits")
    return requested, max(units, 2)


def sigmoid_logit(model):
    """``model`` up to the logit of its last sigmoid unit, or None when the sigmoid is not a plain last layer
    (``Dense(1, sigmoid)``: copied with a linear activation and the same weights; ``Activation("sigmoid")``:
    the tensor before it)."""
    import keras

    last = model.layers[-1]
    if isinstance(last, keras.Model) or getattr(getattr(last, "activation", None), "__name__", "") != "sigmoid":
        return None
    try:
        before = last.input
    except (AttributeError, ValueError):  # a layer called more than once has no single input
        return None
    if isinstance(last, keras.layers.Dense):
        linear = keras.layers.Dense(last.units, use_bias=last.use_bias, name=f"{last.name}_logit")
        logit = linear(before)
        linear.set_weights(last.get_weights())
    elif isinstance(last, keras.layers.Activation):
        logit = before
    else:
        return None
    return keras.Model(model.inputs, logit, name=f"{model.name}_logit")


def _classifier(model, preprocess: Preprocess, output: OutputKind, size: int, logit_model=None):
    """RGB 0..255 pixels -> ``preprocess`` -> ``model`` -> softmax probabilities, from stock layers.

    One sigmoid unit (or one logit) becomes ``softmax([0, logit])``: class 1 is sigmoid(logit), class 0 is
    1 - it, the order Keras' folder loaders give. Ending in TFLite's int8 softmax, whose output scale is fixed
    at 1/256 over [0, 1], the int8 model can answer any probability; ``[1 - s, s]`` from the sigmoid itself
    would be quantized to the range calibration happened to see (measured: every score above 0.844 clipped
    to it). Without the logit (``logit_model`` None: the sigmoid is not a plain last layer) that is the
    fallback.
    """
    import keras

    pixels = keras.Input((size, size, 3), name="image_rgb")
    layer = preprocess_layer(preprocess)
    normalized = layer(pixels) if layer is not None else pixels
    scores = model(normalized)
    units = int(scores.shape[-1])
    logit = None
    if output is OutputKind.LOGITS and units == 1:
        logit = scores
    elif output is OutputKind.SIGMOID and logit_model is not None:
        logit = logit_model(normalized)
    if logit is not None:
        zero = keras.layers.Rescaling(0.0, name="class0_logit")(logit)
        scores = keras.layers.Softmax(name="probabilities")(keras.layers.Concatenate(name="logits")([zero, logit]))
    elif output is OutputKind.SIGMOID:
        class0 = keras.layers.Rescaling(-1.0, offset=1.0, name="class0_probability")(scores)
        scores = keras.layers.Concatenate(name="probabilities")([class0, scores])
    elif output is OutputKind.LOGITS:
        scores = keras.layers.Softmax(name="probabilities")(scores)
    return keras.Model(pixels, scores, name="brought_classifier")


def classifier_of(brought: BroughtModel, preprocess: Preprocess):
    """The classifier of ``brought``'s current weights (again after ``--retrain-head`` trained its head)."""
    return _classifier(brought.raw_model, preprocess, brought.output, brought.input_size, brought.logit_model())


def check_labels(brought: BroughtModel, classes: list[str], labels: list[str] | None, data: Path) -> list[str]:
    """The labels in output order: ``--labels`` (counted in :func:`load_brought`) or the data set's sorted class
    folders, one per output."""
    if len(classes) != brought.classes:
        raise ToolkitError(f"{data}: {len(classes)} class folders ({', '.join(classes)}) but {brought.path} has "
                           f"{brought.classes} classes; point --data at the folders it was trained on")
    return list(labels) if labels is not None else list(classes)


def check_keras2_rebuild(brought: BroughtModel, images_rgb: np.ndarray, preprocess: Preprocess) -> float:
    """For a Keras 2 file that :func:`load_keras_file` rebuilt: its scores against tf-keras' own reading
    of the file, on the same (normalized) images. Returns the max |difference|.

    Raises:
        ToolkitError: They differ by more than ``KERAS2_MAX_DIFF``.
    """
    import tf_keras

    from convert.backbone import preprocess_affine

    kernel, bias = preprocess_affine(preprocess)
    inputs = (images_rgb.astype(np.float32) @ kernel + bias).astype(np.float32)
    try:
        original = tf_keras.models.load_model(brought.path, compile=False)
    except Exception as error:  # noqa: BLE001 - tf-keras raises many types
        raise ToolkitError(f"{brought.path}: tf-keras cannot read this Keras 2 file to check the model rebuilt from "
                           f"it ({' '.join(str(error).split())[:160]}); save it with Keras 3 and convert that") from None
    expected = np.asarray(original.predict(inputs, verbose=0), np.float32)
    got = np.asarray(brought.raw_model.predict(inputs, verbose=0), np.float32)
    diff = float(np.abs(expected - got).max())
    if diff > KERAS2_MAX_DIFF:
        raise ToolkitError(f"{brought.path}: the model rebuilt from this Keras 2 file answers up to {diff:.3g} away "
                           f"from tf-keras' reading of it (allowed {KERAS2_MAX_DIFF}); save it with Keras 3 "
                           "(model.save('model.keras')) and convert that")
    brought.keras2_check = diff
    return diff


def split_backbone_and_head(brought: BroughtModel):
    """(the user's conv base, the user's head) of the tutorial shapes: a Sequential whose first layer is the
    nested conv base, or a backbone joined to a head model here. The layers are the classifier's own, so
    training the head changes the classifier.

    Raises:
        ToolkitError: Another shape, whose head cannot be told from its base.
    """
    import keras

    model = brought.raw_model
    layers = model.layers
    if isinstance(model, keras.Sequential) and layers and isinstance(layers[0], keras.Model) and len(layers) > 1:
        base = layers[0]
        head = keras.Sequential([keras.Input(tuple(base.output.shape[1:])), *layers[1:]], name="user_head")
        return base, head
    if isinstance(layers[-1], keras.Model) and "block5_pool" in [layer.name for layer in layers]:
        return keras.Model(model.input, model.get_layer("block5_pool").output, name="user_base"), layers[-1]
    raise ToolkitError(f"{brought.path}: --retrain-head needs the tutorial shape (a Sequential whose first layer "
                       "is the conv base, or --head-model); convert it without --retrain-head")


def retrain_head(brought: BroughtModel, preprocess: Preprocess, train_rgb: np.ndarray, labels: np.ndarray,
                 calibration: np.ndarray, epochs: int, learning_rate: float, seed: int, threads: int | None) -> dict:
    """Fine-tunes only the user's head on the float and the int8 conv base's features, as our own head is
    trained (``--quant-aware-head``), so that its decisions survive quantization. The conv base is frozen:
    its int8 version here is the one inside the final int8 model (same graph, same calibration).

    Returns:
        What was done, for ``metadata.json``'s provenance (``retrained_head``).
    """
    import keras

    from convert.head import extract_features, extract_features_int8

    base, head = split_backbone_and_head(brought)
    pixels = keras.Input((brought.input_size, brought.input_size, 3), name="image_rgb")
    layer = preprocess_layer(preprocess)
    extractor = keras.Model(pixels, base(layer(pixels) if layer is not None else pixels), name="user_extractor")
    features = extract_features(extractor, train_rgb, "features train")
    with tempfile.TemporaryDirectory(prefix="convert-trunk-") as work:
        int8_features = extract_features_int8(extractor, calibration, train_rgb, work, "int8 features train", threads)
    error = float(np.abs(int8_features - features).mean() / max(np.abs(features).mean(), 1e-12))
    targets = np.concatenate([labels, labels])
    if brought.output is OutputKind.SOFTMAX:
        loss = keras.losses.SparseCategoricalCrossentropy()
    elif brought.classes == 2 and int(brought.raw_model.output.shape[-1]) == 1:
        loss = keras.losses.BinaryCrossentropy(from_logits=brought.output is OutputKind.LOGITS)
        targets = targets.astype(np.float32)
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    keras.utils.set_random_seed(seed)
    head.trainable = True
    head.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss)
    history = head.fit(np.concatenate([features, int8_features]), targets, epochs=epochs, batch_size=32,
                       shuffle=True, verbose=0)
    return {"epochs": epochs, "learning_rate": learning_rate, "images": int(len(train_rgb)),
            "int8_feature_error": round(error, 5),
            "loss": [round(float(value), 5) for value in history.history["loss"]],
            "note": "only the head was trained, on the float and the int8 conv base's features; the conv base is "
                    "the user's, unchanged"}
