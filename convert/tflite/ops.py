"""Looks inside a .tflite file: which ops run, on which dtypes, so a silent float fallback cannot pass."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from runtime.errors import ToolkitError
from runtime.interpreter import load_interpreter

# Ops whose float tensors are expected at a float-I/O boundary of an integer model.
_BOUNDARY_OPS = {"QUANTIZE", "DEQUANTIZE"}


@dataclass
class TFLiteReport:
    """What a .tflite holds.

    Attributes:
        op_counts: Op type -> count.
        float_ops: "OP_TYPE(output tensor name)" for every op (other than I/O quantize/dequantize) that
            computes in float32.
        input_dtype: Input tensor dtype name.
        output_dtype: Output tensor dtype name.
        input_quantization: (scale, zero_point) of the input; (0.0, 0) for float.
        output_quantization: (scale, zero_point) of the output.
        tensor_dtypes: dtype name -> number of tensors.
    """

    op_counts: Counter
    float_ops: list[str]
    input_dtype: str
    output_dtype: str
    input_quantization: tuple[float, int]
    output_quantization: tuple[float, int]
    tensor_dtypes: Counter = field(default_factory=Counter)

    def to_dict(self) -> dict:
        return {
            "op_counts": dict(sorted(self.op_counts.items())),
            "float_ops": self.float_ops,
            "input_dtype": self.input_dtype,
            "output_dtype": self.output_dtype,
            "input_quantization": {"scale": self.input_quantization[0], "zero_point": self.input_quantization[1]},
            "output_quantization": {"scale": self.output_quantization[0], "zero_point": self.output_quantization[1]},
            "tensor_dtypes": dict(sorted(self.tensor_dtypes.items())),
        }


def inspect_tflite(path: Path) -> TFLiteReport:
    """Reads op types and tensor dtypes of a .tflite file."""
    interpreter = load_interpreter(path, num_threads=1, delegates=False)
    tensors = {detail["index"]: detail for detail in interpreter.get_tensor_details()}
    op_counts: Counter = Counter()
    float_ops: list[str] = []
    for op in interpreter._get_ops_details():  # the op list is only exposed this way, in every interpreter package
        name = op["op_name"]
        op_counts[name] += 1
        if name in _BOUNDARY_OPS:
            continue
        outputs = [tensors[i] for i in op["outputs"] if i in tensors]
        if any(np.dtype(t["dtype"]) == np.float32 for t in outputs):
            float_ops.append(f"{name}({outputs[0]['name']})")
    input_detail = interpreter.get_input_details()[0]
    output_detail = interpreter.get_output_details()[0]
    return TFLiteReport(
        op_counts=op_counts,
        float_ops=float_ops,
        input_dtype=np.dtype(input_detail["dtype"]).name,
        output_dtype=np.dtype(output_detail["dtype"]).name,
        input_quantization=(float(input_detail["quantization"][0]), int(input_detail["quantization"][1])),
        output_quantization=(float(output_detail["quantization"][0]), int(output_detail["quantization"][1])),
        tensor_dtypes=Counter(np.dtype(t["dtype"]).name for t in tensors.values()),
    )


def check_full_integer(report: TFLiteReport, path: Path, io_dtype: str, allowed_float_ops: int = 0) -> None:
    """Raises unless every op computes in integers and the I/O tensors have the requested dtype.

    Args:
        report: From :func:`inspect_tflite`.
        path: The file, for the message.
        io_dtype: "int8" or "uint8".
        allowed_float_ops: How many float ops a deliberate fallback may leave (0 for full-integer).

    Raises:
        ToolkitError: A float op beyond the allowance, or I/O of another dtype.
    """
    if len(report.float_ops) > allowed_float_ops:
        raise ToolkitError(
            f"{path}: {len(report.float_ops)} op(s) still compute in float ({', '.join(report.float_ops[:4])}); "
            "the converter fell back to float, check the model's ops are int8-supported"
        )
    if allowed_float_ops == 0 and (report.input_dtype, report.output_dtype) != (io_dtype, io_dtype):
        raise ToolkitError(
            f"{path}: I/O is {report.input_dtype}/{report.output_dtype}, expected {io_dtype}/{io_dtype}"
        )


def producer_chain(path: Path, tensor_name: str, length: int) -> list[tuple[str, str]]:
    """The op that writes ``tensor_name`` and the ops feeding it, walking back along data inputs.

    A layer can be blamed for an error that was made before it: a dense head that relies on differences
    smaller than one quantization step of its *input* shows the error at its own output. Leaving such a
    layer in float only helps together with the ops whose outputs it reads.

    The walk stops before the op that reads the model input: integer pixels are exact, and keeping that op
    integer keeps the model's input integer.

    Returns:
        Up to ``length`` (op type, output tensor name) pairs, the named op first.
    """
    interpreter = load_interpreter(path, num_threads=1, delegates=False)
    names = {detail["index"]: detail["name"] for detail in interpreter.get_tensor_details()}
    model_inputs = {detail["index"] for detail in interpreter.get_input_details()}
    producer = {}
    for op in interpreter._get_ops_details():
        for index in op["outputs"]:
            producer[names.get(index)] = op
    chain: list[tuple[str, str]] = []
    current = tensor_name
    while current in producer and len(chain) < length:
        op = producer[current]
        if model_inputs & set(op["inputs"]):
            break
        chain.append((op["op_name"], current))
        # The data input is the first input written by another op (weights and biases are constants).
        current = next((names.get(i) for i in op["inputs"] if names.get(i) in producer), None)
    return chain
