"""Export targets: one ``export_<target>`` function each, dispatched from ``EXPORTERS``.

The TFLite targets chain on the SavedModel target: Keras 3 ``model.export()`` then
``TFLiteConverter.from_saved_model`` is the documented converter path for Keras 3 models.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from convert.artifacts import write_bytes_atomic
from convert.config import IOType
from convert.schema import FLOAT_TFLITE_FILE, INT8_TFLITE_FILE, KERAS_FILE
from runtime.choices import Choice

log = logging.getLogger(__name__)


class Target(Choice):
    KERAS = "keras"
    SAVED_MODEL = "saved-model"
    TFLITE_FLOAT = "tflite-float"
    TFLITE_INT8 = "tflite-int8"


@dataclass
class ExportContext:
    """What the exporters share; each fills in the path it wrote, so later targets chain on earlier ones.

    Attributes:
        model: The float Keras model (RGB 0..255 pixels in, softmax scores out).
        out_dir: Where artifacts go (the run's staging folder).
        work_dir: Scratch space (the SavedModel).
        calibration: float32 (N, H, W, 3) representative inputs for int8 calibration.
        io_type: The integer model's I/O dtype.
        float_fallback_nodes: Output tensor names of ops to leave in float (empty: full-integer).
        written: Target -> path written.
        calibrated: The calibrated float model of :func:`calibrated_model`, once made: the full-integer
            model, every float-fallback export and the per-layer report share this one calibration.
    """

    model: object
    out_dir: Path
    work_dir: Path
    calibration: np.ndarray | None = None
    io_type: IOType = IOType.INT8
    float_fallback_nodes: tuple[str, ...] = ()
    written: dict = field(default_factory=dict)
    calibrated: bytes | None = None


def export_keras(ctx: ExportContext) -> Path:
    """The float Keras model as a ``.keras`` file."""
    path = ctx.out_dir / KERAS_FILE
    tmp = path.with_name(".tmp-" + path.name)  # keras requires the .keras suffix, so the temp name keeps it
    ctx.model.save(tmp)
    tmp.replace(path)
    return path


def export_saved_model(ctx: ExportContext) -> Path:
    """A TF SavedModel (serving signature) in the work folder: the converter's input."""
    path = ctx.work_dir / "saved_model"
    ctx.model.export(str(path), format="tf_saved_model", verbose=False)
    return path


def _saved_model(ctx: ExportContext) -> Path:
    if Target.SAVED_MODEL not in ctx.written:
        ctx.written[Target.SAVED_MODEL] = export_saved_model(ctx)
    return ctx.written[Target.SAVED_MODEL]


def export_tflite_float(ctx: ExportContext) -> Path:
    """The float32 TFLite model (no optimizations).

    With calibration inputs it is the calibrated model of :func:`calibrated_model`, which the int8 export
    needs anyway: the graph a plain ``converter.convert()`` writes (the same ops, tensors and weights, the
    same outputs to the bit; ``tests/tflite/test_export.py`` checks it), with each tensor's calibrated
    min/max recorded beside it, which float kernels ignore. That saves a second conversion: 38 s of 56 for
    VGG16 with its ImageNet top (138M parameters) here. Without calibration inputs (the K210 path, whose
    compiler reads the file) it is converted on its own.
    """
    import tensorflow as tf

    if ctx.calibration is not None and len(ctx.calibration):
        return write_bytes_atomic(ctx.out_dir / FLOAT_TFLITE_FILE, calibrated_model(ctx))
    converter = tf.lite.TFLiteConverter.from_saved_model(str(_saved_model(ctx)))
    return write_bytes_atomic(ctx.out_dir / FLOAT_TFLITE_FILE, converter.convert())


def int8_converter(saved_model: Path, calibration: np.ndarray):
    """A converter set up for int8 post-training quantization with per-channel weights."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([sample[None].astype(np.float32)] for sample in calibration)
    return converter


@contextlib.contextmanager
def interpreter_warnings_quiet():
    # The debugger runs tf.lite.Interpreter, which warns about its own deprecation on every use.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
        yield


def calibrated_model(ctx: ExportContext) -> bytes:
    """The float TFLite model with every tensor's calibration statistics, made once per context.

    Calibration (every calibration image through the float model, recording ranges) is most of an int8
    conversion: about 0.35 s per 224x224 image here. The full-integer model, each float-fallback set of the
    automatic fix and the per-layer report are all quantized from these bytes, as TensorFlow's
    QuantizationDebugger does (``_experimental_calibrate_only``, then ``convert.mlir_quantize``; both are
    TensorFlow internals, which ``tests/tflite/test_export.py`` checks against a plain ``converter.convert()``).
    """
    if ctx.calibrated is None:
        if ctx.calibration is None or len(ctx.calibration) == 0:
            raise ValueError("int8 export needs calibration inputs")
        converter = int8_converter(_saved_model(ctx), ctx.calibration)
        converter._experimental_calibrate_only = True  # noqa: SLF001  (the debugger's own switch)
        ctx.calibrated = converter.convert()
    return ctx.calibrated


def _quantize(ctx: ExportContext, **options) -> bytes:
    from tensorflow.lite.python import convert as tflite_convert

    return tflite_convert.mlir_quantize(calibrated_model(ctx), **options)


def quantization_debugger(ctx: ExportContext, debug_inputs: np.ndarray):
    """TFLite's QuantizationDebugger on the context's calibrated model, measuring on ``debug_inputs``.

    Args:
        ctx: The export context (calibrated first if needed).
        debug_inputs: float32 (N, H, W, 3) inputs the per-layer statistics are measured on.
    """
    import tensorflow as tf

    debug_model = _quantize(ctx, enable_numeric_verify=True)
    with interpreter_warnings_quiet():
        return tf.lite.experimental.QuantizationDebugger(
            quant_debug_model_content=debug_model,
            debug_dataset=lambda: ([sample[None].astype(np.float32)] for sample in debug_inputs))


def export_tflite_int8(ctx: ExportContext) -> Path:
    """The integer TFLite model: every op int8 with int8/uint8 I/O, unless fallback nodes are named.

    With ``float_fallback_nodes`` the named ops stay float (TFLite's selective quantization: the
    QuantizationDebugger's ``denylisted_nodes``); the input is still integer, the output is float if the
    last op is. Either way the model is quantized from :func:`calibrated_model`, without calibrating again.
    """
    import tensorflow as tf

    io_dtype = {IOType.INT8: tf.int8, IOType.UINT8: tf.uint8}[ctx.io_type]
    if not ctx.float_fallback_nodes:
        from tensorflow.lite.python.lite import _deduplicate_readonly_buffers

        # What converter.convert() does after calibrating, for int8 I/O (TFLiteConverter._quantize and
        # _optimize_tflite_model with the MLIR quantizer).
        data = _deduplicate_readonly_buffers(_quantize(ctx, input_data_type=io_dtype, output_data_type=io_dtype))
    else:
        from tensorflow.lite.python.util import modify_model_io_type

        data = modify_model_io_type(_quantize(ctx, denylisted_nodes=list(ctx.float_fallback_nodes)),
                                    io_dtype, tf.float32)
    return write_bytes_atomic(ctx.out_dir / INT8_TFLITE_FILE, data)


EXPORTERS: dict[Target, Callable[[ExportContext], Path]] = {
    Target.KERAS: export_keras,
    Target.SAVED_MODEL: export_saved_model,
    Target.TFLITE_FLOAT: export_tflite_float,
    Target.TFLITE_INT8: export_tflite_int8,
}


def export(ctx: ExportContext, targets: list[Target]) -> dict[Target, Path]:
    """Runs the exporters for ``targets`` in order; returns what each wrote."""
    for target in targets:
        ctx.written[target] = EXPORTERS[target](ctx)
    return {target: ctx.written[target] for target in targets}
