"""The device runtime: preprocessing, metadata and a TFLite classifier. No TensorFlow, nothing from convert/."""

from runtime.errors import ToolkitError
from runtime.metadata import ModelMetadata, read_metadata
from runtime.preprocess import InputSpec, Normalization, ResizeMode, load_image_rgb, preprocess_rgb

__all__ = [
    "InputSpec",
    "ModelMetadata",
    "Normalization",
    "ResizeMode",
    "ToolkitError",
    "load_image_rgb",
    "preprocess_rgb",
    "read_metadata",
]
