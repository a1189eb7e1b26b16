"""What an artifacts folder holds: every file name, and ``metadata.json``'s conversion sections as types.

The device-facing part of ``metadata.json`` (labels, input, output) is ``runtime.metadata.ModelMetadata``:
the runtime reads it on the device, without ``convert/``. This module types the rest, which the converter
writes (``convert/pipeline.py``) and ``make kmodel``, ``make kmodel-report`` and ``make bench`` read:
``provenance`` (what went in), ``results`` (the int8 model's measured drift), ``models`` (each TFLite model's
I/O), ``artifacts`` (size and SHA-256 of each file) and, after ``make kmodel``, ``k210``.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from runtime.errors import ToolkitError
from runtime.metadata import (  # noqa: F401  (the device files are the runtime's; named here with the rest)
    DEFAULT_ARTIFACTS,
    FLOAT_TFLITE_FILE,
    INT8_TFLITE_FILE,
    LABELS_FILE,
    METADATA_FILE,
    ModelMetadata,
    read_metadata,
)

# make convert
KERAS_FILE = "model_float.keras"
CALIBRATION_MANIFEST_FILE = "calibration_manifest.json"
DRIFT_JSON_FILE = "drift_report.json"
DRIFT_MD_FILE = "drift_report.md"
DRIFT_CONFUSION_PNG = "drift_confusion.png"
DRIFT_PROB_DIFF_PNG = "drift_prob_diff.png"
DRIFT_LAYERS_PNG = "drift_layers.png"
# make drift IMAGES=FOLDER: drift_images_<folder name>.json / .md
DRIFT_IMAGES_PREFIX = "drift_images_"
# make convert, for make kmodel: the teacher's outputs on the training images (convert/k210/teacher_cache.py)
TEACHER_TARGETS_FILE = "teacher_targets.npz"
# make bench
BENCH_FILE = "bench.json"
# make pi-check (convert/pi/check.py)
PI_CHECK_JSON = "pi_check.json"
# make kmodel
KMODEL_FILE = "model_k210.kmodel"
K210_FLOAT_TFLITE_FILE = "model_k210_float.tflite"
K210_FLOAT_KERAS_FILE = "model_k210_float.keras"
K210_REPORT_JSON = "k210_report.json"
K210_REPORT_MD = "k210_report.md"
K210_LABELS_HEADER = "k210_labels.h"  # for the board program (firmware/k210/board/main.c)
K210_WORK_DIR = "k210_work"  # nncase's job folders (compile log, simulator chunks)


def _without_none(data: dict) -> dict:
    return {key: value for key, value in data.items() if value is not None}


def _known(cls, data: Any, section: str, source: str) -> dict:
    """The keys of ``data`` that ``cls`` has; every field without a default must be there.

    Keys the type does not know are dropped, so a file from a newer converter still reads.
    """
    if not isinstance(data, dict):
        raise ToolkitError(f"{source}: {section} must be an object, found {type(data).__name__}; "
                           "regenerate it with `make convert`")
    known = {f.name: data[f.name] for f in fields(cls) if f.name in data}
    missing = [f.name for f in fields(cls) if f.name not in known and f.default is MISSING
               and f.default_factory is MISSING]
    if missing:
        raise ToolkitError(f"{source}: {section} lacks {', '.join(missing)}; regenerate it with `make convert`")
    return known


@dataclass
class CalibrationRecord:
    """The calibration set of a conversion: its manifest (file, class, SHA-256 of each image)."""

    manifest: str = CALIBRATION_MANIFEST_FILE
    count: int = 0
    seed: int = 0


# Provenance.head of a brought model (python -m convert --model / --head-model): nothing of ours was trained
BROUGHT_MODEL, BROUGHT_HEAD_MODEL = "model", "head-model"
BROUGHT_HEADS = (BROUGHT_MODEL, BROUGHT_HEAD_MODEL)


@dataclass
class Provenance:
    """What went into the float model and its conversion.

    The training fields are None (and left out of the file) where they do not apply: VGG's own ImageNet
    top is not trained (``trained`` False), and ``int8_feature_error`` exists only for the quantization-aware
    head.
    """

    weights: str | None = None
    arch: str = "vgg16"
    int8_feature_error: float | None = None
    head: str | None = None
    trained: bool | None = None
    fine_tune: bool | None = None
    quant_aware_head: bool | None = None
    epochs: int | None = None
    learning_rate: float | None = None
    dropout: float | None = None
    l2: float | None = None
    batch_size: int | None = None
    validation_images: int | None = None
    validation_accuracy: float | None = None
    input_size: int | None = None
    data_root: str = ""
    data_layout: str | None = None
    dataset_sha256: str | None = None
    train_images: int | None = None
    test_images: int | None = None
    skipped: dict = field(default_factory=dict)  # split -> {reason: count}
    skipped_files: dict = field(default_factory=dict)  # split -> the first files skipped, with their reasons
    calibration: CalibrationRecord = field(default_factory=CalibrationRecord)
    seed: int = 0
    versions: dict = field(default_factory=dict)  # package -> version
    # A brought model (python -m convert --model / --head-model); None for a model trained here.
    model_file: str | None = None
    model_sha256: str | None = None
    model_format: str | None = None  # how the file was read: "Keras 2.21.0 .h5, config rebuilt for Keras 3", ...
    keras2_max_abs_diff: float | None = None  # the rebuilt Keras 2 model against tf-keras' reading of the file
    preprocess: str | None = None  # the normalization baked into the graph
    output: str | None = None  # what the user's last layer gave: softmax, sigmoid or logits
    retrained_head: dict | None = None  # --retrain-head: what was fine-tuned, on what, and its loss

    def to_dict(self) -> dict:
        return _without_none(asdict(self))

    @classmethod
    def from_dict(cls, data: Any, source: str = METADATA_FILE) -> "Provenance":
        known = _known(cls, data, "provenance", source)
        known["calibration"] = CalibrationRecord(**_known(CalibrationRecord, known.get("calibration", {}),
                                                          "provenance.calibration", source))
        return cls(**known)


@dataclass
class Results:
    """The int8 model against the float model on the test set, and the gate's verdict."""

    n: int
    accuracy_float: float | None
    accuracy_int8: float | None
    top1_agreement: float
    mean_abs_prob_diff: float
    max_abs_prob_diff: float
    verdict: str

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, source: str = METADATA_FILE) -> "Results":
        return cls(**_known(cls, data, "results", source))


@dataclass
class ArtifactRecord:
    """One file of the folder: its size and SHA-256."""

    bytes: int
    sha256: str


@dataclass
class KmodelRecord:
    """The kmodel ``make kmodel`` wrote, as the board program must know it (``k210_report.json``'s ``kmodel``).

    Attributes:
        file: The kmodel's file name in the artifacts folder.
        bytes: Its size.
        sha256: Its SHA-256: ``make kmodel-report`` refuses a kmodel that is not this one.
        version: The kmodel format (5: nncase 1.x).
        nncase_memory_bytes: nncase's memory table from the compile log (section -> bytes).
        compile_s: Seconds nncase took (a timing: differs from run to run).
        calibration_images: How many images calibrated the kmodel's quantization.
        calibrate_method: nncase's calibration method (``no_clip``, ``l2``, ``kld_m0``, ...).
        toolchain: Which route built the nncase toolchain (venv or debootstrap).
        input: dtype, layout (NCHW / NHWC), shape, colour order, pixel range and resize of the input.
        output: dtype, shape and activation of the output.
    """

    file: str
    bytes: int
    sha256: str
    version: int
    nncase_memory_bytes: dict[str, int]
    compile_s: float
    calibration_images: int
    calibrate_method: str
    toolchain: str
    input: dict[str, Any]
    output: dict[str, Any]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, source: str = K210_REPORT_JSON) -> "KmodelRecord":
        return cls(**_known(cls, data, "kmodel", source))


@dataclass
class FirmwareRecord:
    """The board image ``make firmware`` built (``k210_report.json``'s and ``metadata.json``'s ``firmware``).

    Attributes:
        board: The board it was built for (kflash's ``-B`` name).
        elf: The ELF, relative to the artifacts folder (``k210_firmware/vgg_edge.elf``); the map beside it.
        bin: The flashable raw image (``kflash`` writes it).
        bin_bytes: Its size.
        bin_sha256: Its SHA-256.
        text_bytes: Code and read-only data (the kmodel is in it), from the ELF.
        data_bytes: Initialized data.
        bss_bytes: Zeroed data (the camera and input buffers).
        heap_bytes: RAM left for the heap (the SDK linker script's ``_heap_end - _heap_start``), from which
            nncase's runtime allocates its working memory at ``kpu_load_kmodel``.
        ram_bytes: The K210's general SRAM the image must fit (6 MiB).
        kmodel_sha256: The kmodel linked in.
        nncase_runtime: The nncase runtime built into it.
        sources: Upstream tree -> repository and commit.
        selftest_image: The test photo the program runs first.
        selftest_expected: nncase's simulator's scores for it, which the program prints beside its own.
        build_s: Seconds the build took (a timing).
    """

    board: str
    elf: str
    bin: str
    bin_bytes: int
    bin_sha256: str
    text_bytes: int
    data_bytes: int
    bss_bytes: int
    heap_bytes: int
    ram_bytes: int
    kmodel_sha256: str
    nncase_runtime: str
    sources: dict[str, str]
    selftest_image: str
    selftest_expected: list[float]
    build_s: float

    @classmethod
    def from_dict(cls, data: Any, source: str = K210_REPORT_JSON) -> "FirmwareRecord":
        return cls(**_known(cls, data, "firmware", source))


@dataclass
class K210Record(KmodelRecord):
    """``metadata.json``'s ``k210`` section: the kmodel, its plan in one line, its simulator results and,
    after ``make firmware``, the board image."""

    plan: str = ""
    results: dict[str, Any] = field(default_factory=dict)
    firmware: FirmwareRecord | None = None

    @classmethod
    def from_dict(cls, data: Any, source: str = METADATA_FILE) -> "K210Record":
        known = _known(cls, data, "k210", source)
        if known.get("firmware") is not None:
            known["firmware"] = FirmwareRecord.from_dict(known["firmware"], source)
        return cls(**known)


@dataclass
class Conversion:
    """Everything ``metadata.json`` says beyond what a device needs (``ModelMetadata.extra``).

    Attributes:
        models: Model file -> its I/O dtypes, quantization parameters and float ops.
        artifacts: File -> size and SHA-256.
        provenance: What went in.
        results: What the gate measured.
        training_history: The head's per-epoch metrics (None when nothing was trained).
        k210: ``make kmodel``'s section (the kmodel, its plan and its simulator results), once it ran.
    """

    models: dict[str, dict] = field(default_factory=dict)
    artifacts: dict[str, ArtifactRecord] = field(default_factory=dict)
    provenance: Provenance = field(default_factory=Provenance)
    results: Results | None = None
    training_history: dict | None = None
    k210: K210Record | None = None

    def to_dict(self) -> dict:
        data = {
            "models": self.models,
            "artifacts": {name: asdict(record) for name, record in self.artifacts.items()},
            "provenance": self.provenance.to_dict(),
            "results": None if self.results is None else self.results.to_dict(),
            "training_history": self.training_history,
        }
        if self.k210 is not None:
            data["k210"] = self.k210.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Any, source: str = METADATA_FILE) -> "Conversion":
        known = _known(cls, data, "metadata", source)
        artifacts = {name: ArtifactRecord(**_known(ArtifactRecord, record, f"artifacts.{name}", source))
                     for name, record in known.get("artifacts", {}).items()}
        results, k210 = known.get("results"), known.get("k210")
        return cls(models=known.get("models", {}), artifacts=artifacts,
                   provenance=Provenance.from_dict(known.get("provenance", {}), source),
                   results=None if results is None else Results.from_dict(results, source),
                   training_history=known.get("training_history"),
                   k210=None if k210 is None else K210Record.from_dict(k210, source))


def read_conversion(artifacts: Path) -> tuple[ModelMetadata, Conversion]:
    """``metadata.json`` of an artifacts folder: the device part and the conversion's sections.

    Raises:
        ToolkitError: No or malformed metadata (one line naming the file and the key).
    """
    metadata = read_metadata(artifacts)
    return metadata, Conversion.from_dict(metadata.extra, str(Path(artifacts) / METADATA_FILE))


def metadata_dict(metadata: ModelMetadata, conversion: Conversion) -> dict:
    """The whole ``metadata.json`` object: the device part, then the conversion's sections."""
    return replace(metadata, extra=conversion.to_dict()).to_dict()
