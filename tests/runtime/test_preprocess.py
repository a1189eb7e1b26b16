"""The one preprocessing function: every image mode, every resize mode, normalization, quantization."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from runtime import preprocess
from runtime.errors import ToolkitError
from runtime.preprocess import InputSpec, Normalization, ResizeMode, load_image_rgb, preprocess_rgb, resize_rgb


def _save(image: Image.Image, path, **kwargs):
    image.save(path, **kwargs)
    return path


@pytest.mark.parametrize(
    "mode, fmt, colour, expected",
    [
        ("L", "PNG", 128, (128, 128, 128)),
        ("LA", "PNG", (90, 255), (90, 90, 90)),
        ("RGBA", "PNG", (10, 20, 30, 255), (10, 20, 30)),
        ("RGB", "JPEG", (200, 100, 50), (200, 100, 50)),
        ("CMYK", "JPEG", (0, 0, 0, 0), (255, 255, 255)),
    ],
)
def test_modes_become_rgb(tmp_path, mode, fmt, colour, expected):
    path = _save(Image.new(mode, (8, 6), colour), tmp_path / f"x.{fmt.lower()}", format=fmt)
    rgb = load_image_rgb(path)
    assert rgb.shape == (6, 8, 3) and rgb.dtype == np.uint8
    np.testing.assert_allclose(rgb[3, 4], expected, atol=3)  # JPEG rounding


def test_palette_with_transparency(tmp_path):
    image = Image.new("P", (4, 4), 1)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.info["transparency"] = 0
    rgb = load_image_rgb(_save(image, tmp_path / "p.png", transparency=0))
    assert tuple(rgb[0, 0]) == (255, 0, 0)


def test_16_bit_is_scaled_not_clipped(tmp_path):
    array = np.full((4, 4), 32768, np.uint16)  # half of full scale
    rgb = load_image_rgb(_save(Image.fromarray(array), tmp_path / "g16.png"))
    assert abs(int(rgb[0, 0, 0]) - 128) <= 1


def test_exif_orientation_is_applied(tmp_path):
    array = np.zeros((10, 20, 3), np.uint8)
    array[:, :10] = (255, 0, 0)  # left half red
    image = Image.fromarray(array)
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 CW when displayed
    path = _save(image, tmp_path / "rot.jpg", exif=exif.tobytes(), quality=95)
    rgb = load_image_rgb(path)
    assert rgb.shape == (20, 10, 3)  # portrait after applying the orientation
    assert rgb[2, 5, 0] > 200 and rgb[17, 5, 0] < 60  # red half ends up on top


@pytest.mark.parametrize("content", [b"", b"not an image at all", None])
def test_bad_files_raise_one_line_errors(tmp_path, content):
    path = tmp_path / "bad.jpg"
    if content is None:  # truncated JPEG
        Image.new("RGB", (64, 64), (1, 2, 3)).save(path, quality=95)
        path.write_bytes(path.read_bytes()[:200])
    else:
        path.write_bytes(content)
    with pytest.raises(ToolkitError) as info:
        load_image_rgb(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(ToolkitError, match="no such image file"):
        load_image_rgb(tmp_path / "nope.jpg")


def test_decompression_bomb_refused(tmp_path, monkeypatch):
    path = _save(Image.new("RGB", (100, 100)), tmp_path / "big.png")
    monkeypatch.setattr(preprocess, "MAX_IMAGE_PIXELS", 100 * 100 - 1)
    with pytest.raises(ToolkitError, match="decompression bomb"):
        load_image_rgb(path)


def _three_stripes(height=20, width=60):
    image = np.zeros((height, width, 3), np.uint8)
    image[:, : width // 3] = (255, 0, 0)
    image[:, width // 3: 2 * width // 3] = (0, 255, 0)
    image[:, 2 * width // 3:] = (0, 0, 255)
    return image


def test_resize_modes():
    image = _three_stripes()
    squash = resize_rgb(image, InputSpec(10, 10, ResizeMode.SQUASH))
    crop = resize_rgb(image, InputSpec(10, 10, ResizeMode.CENTER_CROP))
    box = resize_rgb(image, InputSpec(10, 10, ResizeMode.LETTERBOX))
    assert squash.shape == crop.shape == box.shape == (10, 10, 3)
    assert squash[5, 0, 0] == 255 and squash[5, 9, 2] == 255  # all three stripes kept
    assert (crop[:, :, 1] > 200).all()  # only the green middle survives a centre crop
    assert tuple(box[0, 5]) == (114, 114, 114) and box[5, 0, 0] == 255  # grey bars, full width kept


def test_caffe_normalization_matches_keras():
    keras = pytest.importorskip("keras")
    pixels = np.random.default_rng(0).integers(0, 256, (2, 5, 5, 3)).astype(np.uint8)
    ours = preprocess.normalize(pixels, Normalization.CAFFE)
    theirs = keras.applications.vgg16.preprocess_input(pixels.astype(np.float32).copy())
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_raw_normalization_is_pixels_as_float():
    image = np.random.default_rng(1).integers(0, 256, (7, 9, 3)).astype(np.uint8)
    out = preprocess_rgb(image, InputSpec(7, 9))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, image.astype(np.float32))


@pytest.mark.parametrize("dtype, zero_point", [(np.int8, -128), (np.uint8, 0)])
def test_quantize_round_trip_and_saturation(dtype, zero_point):
    values = np.array([0.0, 1.0, 254.0, 255.0, 400.0, -5.0], np.float32)
    q = preprocess.quantize(values, 1.0, zero_point, dtype)
    assert q.dtype == dtype
    np.testing.assert_array_equal(preprocess.dequantize(q, 1.0, zero_point), [0, 1, 254, 255, 255, 0])


def test_bgr_to_rgb():
    frame_bgr = np.zeros((2, 2, 3), np.uint8)
    frame_bgr[..., 2] = 255  # red in OpenCV's order
    assert preprocess.bgr_to_rgb(frame_bgr)[0, 0, 0] == 255
