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
DEFAULT_ARTIFACTS = Path("artifacts/vgg16_cats_dogs")  # make convert's OUT: the default of every command


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
    def from_dict(cls, data: Any, source: str = "metadata") -> "ModelMetadata":
        """Reads the device-facing keys, checking each against the schema of :meth:`to_dict`.

        Raises:
            ToolkitError: One line naming the key, what it holds and what it should hold.
        """
        def bad(key: str, expected: str, value: Any) -> ToolkitError:
            return ToolkitError(f"{source}: {key} must be {expected}, found {_shown(value)}; "
                                "regenerate it with `make convert` or fix the value")

        if not isinstance(data, dict):
            raise bad("the file", "a JSON object", data)
        labels = data.get("labels")
        if not (isinstance(labels, list) and labels and all(isinstance(label, str) for label in labels)):
            raise bad("labels", "a non-empty list of class names (strings)", labels)
        section = data.get("input")
        if not isinstance(section, dict):
            raise bad("input", "an object with height and width", section)
        size = {}
        for key in ("height", "width"):
            value = section.get(key)
            if not _is_int(value) or not 1 <= value <= _MAX_SIDE:
                raise bad(f"input.{key}", f"an integer in 1..{_MAX_SIDE}", value)
            size[key] = value
        if section.get("channels", 3) != 3:
            raise bad("input.channels", "3", section.get("channels"))
        color_order = section.get("color_order", "RGB")
        if color_order != "RGB":
            raise bad("input.color_order", '"RGB" (the runtime converts camera frames to RGB)', color_order)
        resize = _enum(ResizeMode, section.get("resize", ResizeMode.SQUASH.value), "input.resize", bad)
        normalization = _enum(Normalization, section.get("normalization", Normalization.RAW.value),
                              "input.normalization", bad)
        in_model = section.get("in_model_normalization", "none")
        if not isinstance(in_model, str):
            raise bad("input.in_model_normalization", "a string", in_model)
        output = data.get("output", {})
        if not isinstance(output, dict):
            raise bad("output", "an object such as {\"activation\": \"softmax\", \"top_k\": 1}", output)
        top_k = output.get("top_k", 1)
        if not _is_int(top_k) or not 1 <= top_k <= len(labels):
            raise bad("output.top_k", f"an integer in 1..{len(labels)} (the number of labels)", top_k)
        known = {"format_version", "task", "labels", "input", "output"}
        return cls(
            labels=list(labels),
            input=InputSpec(height=size["height"], width=size["width"], resize=resize, normalization=normalization),
            color_order=color_order,
            in_model_normalization=in_model,
            top_k=top_k,
            extra={key: value for key, value in data.items() if key not in known},
        )


_MAX_SIDE = 4096  # pixels: no model of this toolkit takes more; a typo such as 224000 is caught here


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _shown(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, (set, tuple)) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _enum(kind: type, value: Any, key: str, bad) -> Any:
    try:
        return kind(value)
    except ValueError:
        raise bad(key, " or ".join(f'"{member.value}"' for member in kind), value) from None


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
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ToolkitError(f"{path}: not valid JSON ({error}); regenerate it with `make convert`") from None
    except OSError as error:
        raise ToolkitError(f"{path}: cannot read metadata ({error.strerror}); check the file") from None
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
