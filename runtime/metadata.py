"""``metadata.json``: what a device needs to know to feed a model and read its output."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.errors import ToolkitError
from runtime.preprocess import InputSpec, Normalization, ResizeMode

METADATA_FILE = "metadata.json"
LABELS_FILE = "labels.txt"
INT8_TFLITE_FILE = "model_int8.tflite"
FLOAT_TFLITE_FILE = "model_float.tflite"
FORMAT_VERSION = 1


@dataclass
class ModelMetadata:
    """The device-facing part of ``metadata.json``.

    Attributes:
        labels: Class names in output order.
        input: Input size, resize mode and the normalization the runtime applies.
        color_order: Channel order the model's input expects ("RGB").
        in_model_normalization: Normalization done inside the graph (informational: "caffe" or "none").
        top_k: How many classes a caller should show (5 for the ImageNet head).
        extra: Every other key of the file (provenance, per-artifact details), kept as read.
    """

    labels: list[str]
    input: InputSpec
    color_order: str = "RGB"
    in_model_normalization: str = "none"
    top_k: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "task": "image-classification",
            "labels": list(self.labels),
            "input": {
                "height": self.input.height,
                "width": self.input.width,
                "channels": 3,
                "color_order": self.color_order,
                "pixel_range": [0, 255],
                "resize": self.input.resize.value,
                "normalization": self.input.normalization.value,
                "in_model_normalization": self.in_model_normalization,
            },
            "output": {"activation": "softmax", "top_k": self.top_k},
            **self.extra,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "metadata") -> "ModelMetadata":
        try:
            section = data["input"]
            spec = InputSpec(
                height=int(section["height"]),
                width=int(section["width"]),
                resize=ResizeMode(section.get("resize", ResizeMode.SQUASH.value)),
                normalization=Normalization(section.get("normalization", Normalization.RAW.value)),
            )
            labels = [str(label) for label in data["labels"]]
        except (KeyError, TypeError, ValueError) as error:
            raise ToolkitError(f"{source}: malformed metadata ({error!r}); regenerate it with `make convert`") from None
        known = {"format_version", "task", "labels", "input", "output"}
        return cls(
            labels=labels,
            input=spec,
            color_order=str(section.get("color_order", "RGB")),
            in_model_normalization=str(section.get("in_model_normalization", "none")),
            top_k=int(data.get("output", {}).get("top_k", 1)),
            extra={key: value for key, value in data.items() if key not in known},
        )


def read_metadata(path: str | Path) -> ModelMetadata:
    """Reads ``metadata.json`` (a file, or the folder holding it).

    Raises:
        ToolkitError: The file is missing or malformed.
    """
    path = Path(path)
    if path.is_dir():
        path = path / METADATA_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ToolkitError(f"{path}: metadata not found; keep metadata.json beside the model (written by `make convert`)") from None
    except json.JSONDecodeError as error:
        raise ToolkitError(f"{path}: not valid JSON ({error}); regenerate it with `make convert`") from None
    return ModelMetadata.from_dict(data, source=str(path))


def locate_model(path: str | Path, model_file: str = INT8_TFLITE_FILE) -> tuple[Path, ModelMetadata]:
    """Finds the model file and its metadata from an artifacts folder or a ``.tflite`` path.

    Args:
        path: An artifacts folder (``model_file`` inside it is used) or a ``.tflite`` file with
            ``metadata.json`` beside it.
        model_file: The file to take from a folder.

    Raises:
        ToolkitError: The folder, file or metadata is missing.
    """
    path = Path(path)
    if path.is_dir():
        model_path = path / model_file
        if not model_path.is_file():
            raise ToolkitError(f"{path}: no {model_file} in this folder; run `make convert` or pass the .tflite file")
    elif path.suffix == ".tflite" or path.exists():
        model_path = path
        if not model_path.is_file():
            raise ToolkitError(f"{path}: model file not found; run `make convert` or fix --model")
    else:
        raise ToolkitError(f"{path}: no such model folder or file; run `make convert` or fix --model")
    return model_path, read_metadata(model_path.parent / METADATA_FILE)
