"""Image preprocessing, defined once for training, calibration, evaluation and the camera loop.

The pipeline is: decode -> RGB -> resize (squash, center-crop or letterbox) -> the model's
normalization -> (for integer models) quantize with the input tensor's own parameters.

Models exported by ``convert`` carry their normalization inside the graph (a fixed 1x1 convolution that
does the caffe-style RGB->BGR swap and ImageNet mean subtraction), so their metadata says
``normalization: raw`` and the runtime feeds RGB pixels in 0..255.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from runtime.choices import Choice
from runtime.errors import ToolkitError

# Caffe-style ImageNet means in B, G, R order, as keras.applications.vgg16.preprocess_input uses them.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)

# Images larger than this many pixels are refused as likely decompression bombs. Pillow's own default
# (about 89 Mpx) only warns; we refuse at that size instead of decoding it.
MAX_IMAGE_PIXELS = 89_478_485

_LETTERBOX_FILL = 114  # grey, the value YOLO-style letterboxing uses


class ResizeMode(Choice):
    """How an image of any aspect ratio becomes the model's input size."""

    SQUASH = "squash"  # plain resize, aspect ratio not kept (what keras image_dataset_from_directory does)
    CENTER_CROP = "center-crop"  # crop the largest centred square-ish region of the target aspect, then resize
    LETTERBOX = "letterbox"  # keep aspect ratio, pad with grey


class Normalization(Choice):
    """What the runtime does to the RGB 0..255 pixels before they reach the input tensor."""

    RAW = "raw"  # RGB 0..255 as float; the model normalizes inside its graph
    CAFFE = "caffe"  # RGB->BGR, minus the ImageNet mean (keras.applications.vgg16.preprocess_input)


@dataclass(frozen=True)
class InputSpec:
    """What a model expects at its input.

    Attributes:
        height: Input height in pixels.
        width: Input width in pixels.
        resize: How frames of another size or aspect ratio are fitted.
        normalization: What the runtime applies to RGB pixels before the input tensor.
    """

    height: int
    width: int
    resize: ResizeMode = ResizeMode.SQUASH
    normalization: Normalization = Normalization.RAW


def load_image_rgb(path: str | Path) -> np.ndarray:
    """Decodes an image file to an RGB uint8 array, whatever its mode.

    Handles grayscale, RGBA/LA (alpha dropped), palette, CMYK, 16-bit and EXIF orientation.

    Args:
        path: The image file.

    Returns:
        The image as an (H, W, 3) uint8 array in R, G, B order.

    Raises:
        ToolkitError: The file is missing, empty, not an image, truncated, or a decompression bomb.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                if image.width * image.height > MAX_IMAGE_PIXELS:
                    raise ToolkitError(
                        f"{path}: {image.width}x{image.height} pixels exceeds the {MAX_IMAGE_PIXELS} pixel "
                        "limit (possible decompression bomb); resize it or remove it"
                    )
                image.load()
                image = ImageOps.exif_transpose(image)
                return _to_rgb_array(image)
    except FileNotFoundError:
        raise ToolkitError(f"{path}: no such image file; check the path") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as error:
        raise ToolkitError(f"{path}: cannot decode image ({error}); remove or replace the file") from None


def _to_rgb_array(image: Image.Image) -> np.ndarray:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # Pillow's convert("RGB") clips 16/32-bit values instead of scaling them.
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        gray = np.clip(np.round(array * (255.0 / peak)), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[..., None], 3, axis=2))
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))


def bgr_to_rgb(frame_bgr: np.ndarray) -> np.ndarray:
    """Returns an RGB copy of an OpenCV-style B, G, R frame (cvtColor: ~100x faster than a numpy slice copy)."""
    return cv2.cvtColor(np.ascontiguousarray(frame_bgr), cv2.COLOR_BGR2RGB)


def resize_rgb(image_rgb: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Fits an RGB uint8 image to the model's input size as ``spec.resize`` says.

    Args:
        image_rgb: (H, W, 3) uint8 array.
        spec: The model's input spec.

    Returns:
        (spec.height, spec.width, 3) uint8 array.
    """
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3:
        raise ToolkitError(f"expected an (H, W, 3) image, got shape {image_rgb.shape}")
    height, width = image_rgb.shape[:2]
    if spec.resize is ResizeMode.CENTER_CROP:
        target_aspect = spec.width / spec.height
        if width / height > target_aspect:
            crop_w = max(1, round(height * target_aspect))
            x0 = (width - crop_w) // 2
            image_rgb = image_rgb[:, x0:x0 + crop_w]
        else:
            crop_h = max(1, round(width / target_aspect))
            y0 = (height - crop_h) // 2
            image_rgb = image_rgb[y0:y0 + crop_h]
        return _resize(image_rgb, spec.width, spec.height)
    if spec.resize is ResizeMode.LETTERBOX:
        scale = min(spec.width / width, spec.height / height)
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        canvas = np.full((spec.height, spec.width, 3), _LETTERBOX_FILL, np.uint8)
        y0, x0 = (spec.height - new_h) // 2, (spec.width - new_w) // 2
        canvas[y0:y0 + new_h, x0:x0 + new_w] = _resize(image_rgb, new_w, new_h)
        return canvas
    return _resize(image_rgb, spec.width, spec.height)


def _resize(image_rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    if image_rgb.shape[:2] == (height, width):
        return np.ascontiguousarray(image_rgb)
    shrinking = width * height < image_rgb.shape[0] * image_rgb.shape[1]
    # INTER_AREA averages when shrinking (no aliasing); bilinear when enlarging.
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(image_rgb), (width, height), interpolation=interpolation)


def normalize(pixels_rgb: np.ndarray, normalization: Normalization) -> np.ndarray:
    """Applies the model's normalization to RGB uint8 pixels of any leading shape.

    Returns:
        float32 array of the same shape.
    """
    pixels = pixels_rgb.astype(np.float32)
    if normalization is Normalization.CAFFE:
        return pixels[..., ::-1] - np.asarray(CAFFE_MEAN_BGR, np.float32)
    return pixels


def preprocess_rgb(image_rgb: np.ndarray, spec: InputSpec) -> np.ndarray:
    """The one preprocessing function: RGB uint8 image -> float32 model input (H, W, 3), no batch axis."""
    return normalize(resize_rgb(image_rgb, spec), spec.normalization)


def preprocess_file(path: str | Path, spec: InputSpec) -> np.ndarray:
    """Decodes and preprocesses one image file: see :func:`preprocess_rgb`."""
    return preprocess_rgb(load_image_rgb(path), spec)


def quantize(values: np.ndarray, scale: float, zero_point: int, dtype: np.dtype) -> np.ndarray:
    """Quantizes float values with a tensor's (scale, zero_point) into its integer dtype, saturating."""
    info = np.iinfo(dtype)
    quantized = np.round(values / scale) + zero_point
    return np.clip(quantized, info.min, info.max).astype(dtype)


def input_lookup_table(normalization: Normalization, scale: float, zero_point: int, dtype: np.dtype) -> np.ndarray:
    """normalize-then-quantize of every uint8 pixel value, per output channel, as an OpenCV lookup table.

    Apart from the channel swap of caffe normalization, both steps act on each value alone, so
    :func:`lookup_input` with this table gives exactly ``quantize(normalize(pixels_rgb))``, in one pass
    over the image instead of five.

    Returns:
        (1, 256, 3) array of the integer ``dtype``; entry [0, v, c] is output channel c for input value v.
    """
    values = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)  # (256, 3): value v in each channel
    return quantize(normalize(values, normalization), scale, zero_point, dtype).reshape(1, 256, 3)


def lookup_input(resized_rgb: np.ndarray, table: np.ndarray, normalization: Normalization) -> np.ndarray:
    """Applies an :func:`input_lookup_table` to a resized RGB image: the quantized input, no batch axis."""
    if normalization is Normalization.CAFFE:
        resized_rgb = cv2.cvtColor(resized_rgb, cv2.COLOR_RGB2BGR)  # output channel c reads input channel 2 - c
    return cv2.LUT(resized_rgb, table)


def dequantize(values: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Maps integer tensor values back to float32 with the tensor's (scale, zero_point)."""
    return (values.astype(np.float32) - zero_point) * np.float32(scale)
