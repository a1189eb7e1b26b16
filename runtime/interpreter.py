"""A TFLite classifier on whichever interpreter is installed: ai_edge_litert, tflite_runtime, or tf.lite."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from runtime.errors import ToolkitError
from runtime.metadata import ModelMetadata
from runtime.preprocess import dequantize, input_lookup_table, lookup_input, normalize, quantize, resize_rgb


def _interpreter_class() -> tuple[type, str]:
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai_edge_litert"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter

        return Interpreter, "tflite_runtime"
    except ImportError:
        pass
    try:
        import tensorflow as tf  # last resort: only where a full TensorFlow happens to be installed

        return tf.lite.Interpreter, "tensorflow"
    except ImportError:
        raise ToolkitError(
            "no TFLite interpreter found; pip install -r requirements-runtime.txt (ai-edge-litert), "
            "see firmware_notes/raspberry_pi.md"
        ) from None


def load_interpreter(model_path: str | Path, num_threads: int | None = None, delegates: bool = True) -> Any:
    """Creates and allocates an interpreter for a ``.tflite`` file.

    Args:
        model_path: The model file.
        num_threads: CPU threads; None means all cores.
        delegates: Apply the default delegate (XNNPACK). Off, the op list shows the model's own ops
            instead of DELEGATE nodes, which is what inspection needs.

    Raises:
        ToolkitError: The file is missing or not a valid TFLite model.
    """
    model_path = Path(model_path)
    if not model_path.is_file():
        raise ToolkitError(f"{model_path}: model file not found; run `make convert` or pass --model")
    interpreter_class, backend = _interpreter_class()
    options = {}
    if not delegates:
        resolver = {"ai_edge_litert": "ai_edge_litert.interpreter", "tflite_runtime": "tflite_runtime.interpreter"}
        module = __import__(resolver.get(backend, "tensorflow.lite.python.interpreter"), fromlist=["OpResolverType"])
        options["experimental_op_resolver_type"] = module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        interpreter = interpreter_class(model_path=str(model_path), num_threads=num_threads or os.cpu_count(),
                                        **options)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ToolkitError(f"{model_path}: not a loadable TFLite model ({first_line}); re-export it with `make convert`") from None
    return interpreter


def interpreter_backend() -> str:
    """Names the interpreter package in use ("ai_edge_litert", "tflite_runtime" or "tensorflow")."""
    return _interpreter_class()[1]


class TFLiteModel:
    """One TFLite model run one input at a time, whatever its input/output dtypes.

    Quantization parameters always come from the tensors themselves, so int8, uint8 and float
    models are handled alike.
    """

    def __init__(self, model_path: str | Path, num_threads: int | None = None, delegates: bool = True):
        self.model_path = Path(model_path)
        self.interpreter = load_interpreter(self.model_path, num_threads, delegates)
        self.input_detail = self.interpreter.get_input_details()[0]
        self.output_detail = self.interpreter.get_output_details()[0]

    @property
    def input_dtype(self) -> np.dtype:
        return np.dtype(self.input_detail["dtype"])

    def input_tensor(self, input_float: np.ndarray) -> np.ndarray:
        """Turns a preprocessed float (H, W, 3) input into the tensor the model takes (batch of one)."""
        batch = input_float[None].astype(np.float32)
        if self.input_dtype == np.float32:
            return batch
        scale, zero_point = self.input_detail["quantization"]
        return quantize(batch, scale, zero_point, self.input_dtype)

    def invoke(self, tensor: np.ndarray) -> np.ndarray:
        """Runs the model on a ready input tensor; returns the float32 output without its batch axis."""
        self.interpreter.set_tensor(self.input_detail["index"], tensor)
        self.interpreter.invoke()
        raw = self.interpreter.get_tensor(self.output_detail["index"])[0]
        if np.dtype(self.output_detail["dtype"]) == np.float32:
            return raw.astype(np.float32)
        scale, zero_point = self.output_detail["quantization"]
        return dequantize(raw, scale, zero_point)

    def predict(self, input_float: np.ndarray) -> np.ndarray:
        """The float32 output for one preprocessed float input (H, W, 3)."""
        return self.invoke(self.input_tensor(input_float))


class Classifier(TFLiteModel):
    """A TFLite classifier checked against its metadata (input shape, number of labels)."""

    def __init__(self, model_path: str | Path, metadata: ModelMetadata, num_threads: int | None = None,
                 delegates: bool = True):
        super().__init__(model_path, num_threads, delegates)
        self.metadata = metadata
        expected = (1, metadata.input.height, metadata.input.width, 3)
        shape = tuple(int(side) for side in self.input_detail["shape"])
        if shape != expected:
            raise ToolkitError(
                f"{self.model_path}: model input shape {shape} does not match the "
                f"metadata's {expected}; use the metadata.json written with this model"
            )
        if int(self.output_detail["shape"][-1]) != len(metadata.labels):
            raise ToolkitError(
                f"{self.model_path}: model has {int(self.output_detail['shape'][-1])} outputs but the metadata "
                f"lists {len(metadata.labels)} labels; use the labels written with this model"
            )

        self._lookup = None
        if self.input_dtype != np.float32:
            scale, zero_point = self.input_detail["quantization"]
            self._lookup = input_lookup_table(metadata.input.normalization, scale, zero_point, self.input_dtype)

    def input_tensor_rgb(self, image_rgb: np.ndarray) -> np.ndarray:
        """The input tensor (batch of one) for an RGB uint8 image of any size.

        The same values as ``input_tensor(preprocess_rgb(image_rgb, spec))``; for an integer input the
        normalize and quantize steps are one table lookup (see :func:`input_lookup_table`).
        """
        resized = resize_rgb(image_rgb, self.metadata.input)
        if self._lookup is None:
            return self.input_tensor(normalize(resized, self.metadata.input.normalization))
        return lookup_input(resized, self._lookup, self.metadata.input.normalization)[None]

    def classify_rgb(self, image_rgb: np.ndarray) -> np.ndarray:
        """Scores for one RGB uint8 image of any size: preprocess, quantize, invoke, dequantize."""
        return self.invoke(self.input_tensor_rgb(image_rgb))
