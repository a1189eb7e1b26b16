"""What a ``make kmodel`` run is asked to do: its options and modes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from convert.k210.compile import DEFAULT_TOOLCHAIN
from convert.k210.plan import Deployment
from runtime.choices import Choice

# make kmodel's own simulator check; all 2000 test images take 12-33 min more (make kmodel-report).
QUICK_CHECK_IMAGES = 100
DEFAULT_MAX_GMACS = 2.0  # the planner's pick: x0.375 at 224 for the hed block4-conv model, 1.99 GMAC


class Precision(Choice):
    """The distillation's arithmetic (see :attr:`KmodelOptions.precision`)."""

    AUTO = "auto"
    BFLOAT16 = "bfloat16"
    FLOAT32 = "float32"


class CalibrateMethod(Choice):
    """nncase 1.x's activation-range methods for the uint8 PTQ (``PTQTensorOptions.calibrate_method``)."""

    L2 = "l2"
    NO_CLIP = "no_clip"
    KLD_M0 = "kld_m0"
    KLD_M1 = "kld_m1"
    KLD_M2 = "kld_m2"
    CDF = "cdf"


class Layout(Choice):
    """The kmodel's input layout: what the board program feeds."""

    NCHW = "NCHW"  # planar, as the K210 camera's AI buffer
    NHWC = "NHWC"  # interleaved


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
        freeze_blocks: Conv blocks (from the first) kept as initialized: their outputs, of every training image
            and of its mirror image, are computed once and only the later layers train on them (0 = all train).
            None = the CPU decides: 0 where it has bf16 instructions, else :data:`FROZEN_BLOCKS_WITHOUT_BF16`.
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
        calibration_images: How many of ``make convert``'s calibration images nncase calibrates on (evenly
            spaced over its class-sorted list, so the classes stay balanced); None = all (200 by default).
            nncase's calibration runs its reference evaluator on one core, once per image and pass (``l2``
            makes two): about 2 s an image and pass for the x0.375 variant at 224 here, most of the compile;
            100 halve it (README: the AVX2 make kmodel run).
        map_weight: Weight of the loss pulling the student's 1x1-conv maps to the teacher's (0 = logits only;
            used when the student has the teacher head's 1x1 conv; at another input size than the teacher's,
            the teacher's maps are area-resized to the student's grid).
        sim_images: Test images (seeded sample) run through the simulator; None = all. The default keeps
            ``make kmodel`` inside its time; ``make kmodel-report`` (convert/k210/report.py) runs them all.
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
    freeze_blocks: int | None = None
    reconstruct: bool = True
    init_images: int = 128
    precision: Precision = Precision.AUTO
    calibrate_method: CalibrateMethod = CalibrateMethod.L2
    calibration_images: int | None = 100
    map_weight: float = 1.0
    sim_images: int | None = QUICK_CHECK_IMAGES
    max_train: int | None = None
    max_test: int | None = None
    layout: Layout = Layout.NCHW
    toolchain: Path = DEFAULT_TOOLCHAIN
    seed: int = 0
    timings_s: dict = field(default_factory=dict)
