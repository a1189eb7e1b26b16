"""Frame sources: a Pi camera (picamera2), an OpenCV device, a video file, a folder or glob of images.

Every source yields :class:`Frame` objects whose pixels are RGB. Colour order is converted here, once
per source, from what that source really delivers:

- OpenCV (``cv2.VideoCapture`` on a device or a video file) delivers B, G, R.
- picamera2's format names follow the DRM/libcamera convention and read "backwards" in Python: "RGB888"
  arrays are ordered [B, G, R], "BGR888" [R, G, B], "XBGR8888" (the default when no format is set, four
  channels) [R, G, B, 255] and "XRGB8888" [B, G, R, 255] (Picamera2 manual, section "Image formats").
- Image files are decoded by :func:`runtime.preprocess.load_image_rgb` (RGB already).
"""

from __future__ import annotations

import glob
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from runtime.errors import ToolkitError
from runtime.preprocess import bgr_to_rgb, load_image_rgb

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".avi", ".mp4", ".mkv", ".mov", ".m4v", ".webm", ".mjpg", ".mjpeg", ".h264")
PICAMERA2 = "picamera2"
AUTO = "auto"

# picamera2 format -> the OpenCV conversion that yields R, G, B (see the module docstring); None = already RGB.
PICAMERA2_TO_RGB = {
    "RGB888": cv2.COLOR_BGR2RGB,  # [B, G, R]
    "BGR888": None,  # [R, G, B]
    "XBGR8888": cv2.COLOR_RGBA2RGB,  # [R, G, B, 255]
    "XRGB8888": cv2.COLOR_BGRA2RGB,  # [B, G, R, 255]
}
PICAMERA2_DEFAULT_FORMAT = "XBGR8888"  # what picamera2 configures when the caller sets no format


@dataclass
class Frame:
    """One frame on its way to the model.

    Attributes:
        image_rgb: (H, W, 3) uint8 pixels in R, G, B order.
        index: 0-based position in the source (skipped unreadable files are not counted).
        timestamp_s: When the frame was taken, in seconds: the video position for a file, the
            ``time.monotonic()`` clock at capture for a camera or an image read.
        name: The image file a frame came from, else "".
        grabbed_at: ``time.perf_counter()`` when the capture thread had the frame (for frame age).
        tensor: The model input, if the capture thread already prepared it (see ``FrameGrabber``).
        preprocess_ms: How long preparing ``tensor`` took.
    """

    image_rgb: np.ndarray
    index: int
    timestamp_s: float
    name: str = ""
    grabbed_at: float = 0.0
    tensor: np.ndarray | None = None
    preprocess_ms: float = 0.0


class CameraError(ToolkitError):
    """A live camera failed to open or to deliver a frame: worth retrying with backoff."""


class FrameSource:
    """The interface every source implements. ``read()`` returns None at the end of a finite source."""

    #: A live source (a camera) makes frames whether or not anyone reads them, so stale ones are dropped.
    live: bool = False
    description: str = ""

    def open(self) -> None:
        """Opens the device or file. Raises ToolkitError (CameraError for a live camera)."""

    def read(self) -> Frame | None:
        raise NotImplementedError

    def close(self) -> None:
        """Releases the device or file; safe to call twice."""

    def stats(self) -> dict:
        """Counts worth reporting in the run summary (skipped files, frames the container announced)."""
        return {}


def picamera2_to_rgb(array: np.ndarray, pixel_format: str) -> np.ndarray:
    """Turns a picamera2 ``capture_array()`` result of the given format into (H, W, 3) RGB.

    Raises:
        ToolkitError: A format this runtime does not handle (YUV420, raw Bayer...).
    """
    if pixel_format not in PICAMERA2_TO_RGB:
        raise ToolkitError(
            f"picamera2 format {pixel_format!r} is not supported; configure the main stream as one of "
            f"{', '.join(PICAMERA2_TO_RGB)}"
        )
    channels = 4 if pixel_format.startswith("X") else 3
    if array.ndim != 3 or array.shape[2] != channels:
        raise CameraError(f"picamera2 returned an array of shape {array.shape} for format {pixel_format}")
    code = PICAMERA2_TO_RGB[pixel_format]
    if code is None:
        return np.ascontiguousarray(array)
    return cv2.cvtColor(np.ascontiguousarray(array), code)


class Picamera2Source(FrameSource):
    """A Raspberry Pi camera through picamera2 (installed from apt on Raspberry Pi OS, not from PyPI)."""

    live = True

    def __init__(self, size: tuple[int, int] = (640, 480), pixel_format: str | None = "RGB888", camera_num: int = 0):
        """
        Args:
            size: Width and height of the main stream (the ISP scales; smaller is cheaper downstream).
            pixel_format: The main stream's format; None leaves picamera2's default (XBGR8888, 4 channels).
            camera_num: Which camera, for boards with two.
        """
        self.size = size
        self.pixel_format = pixel_format
        self.camera_num = camera_num
        self.description = f"picamera2 camera {camera_num} ({size[0]}x{size[1]} {pixel_format or 'default format'})"
        self._camera = None
        self._index = 0

    def open(self) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise ToolkitError(
                "picamera2 is not installed; on Raspberry Pi OS: sudo apt install python3-picamera2 and create the "
                "venv with --system-site-packages (firmware_notes/raspberry_pi.md)"
            ) from None
        try:
            camera = Picamera2(self.camera_num)
            main = {"size": self.size, **({"format": self.pixel_format} if self.pixel_format else {})}
            config = camera.create_video_configuration(main=main)
            camera.configure(config)
            # The format the stream really got (picamera2 may have been given another one elsewhere).
            self.pixel_format = camera.camera_config["main"].get("format") or PICAMERA2_DEFAULT_FORMAT
            camera.start()
        except (RuntimeError, IndexError, OSError) as error:
            raise CameraError(f"{self.description}: cannot start ({error})") from None
        self._camera = camera

    def read(self) -> Frame | None:
        try:
            array = self._camera.capture_array("main")
        except (RuntimeError, OSError) as error:
            raise CameraError(f"{self.description}: capture failed ({error})") from None
        frame = Frame(picamera2_to_rgb(array, self.pixel_format), self._index, time.monotonic())
        self._index += 1
        return frame

    def close(self) -> None:
        camera, self._camera = self._camera, None
        if camera is not None:
            try:
                camera.stop()
            finally:
                camera.close()


def picamera2_available() -> bool:
    """Whether picamera2 imports and sees at least one camera."""
    try:
        from picamera2 import Picamera2
    except ImportError:
        return False
    return bool(Picamera2.global_camera_info())


class CameraDeviceSource(FrameSource):
    """A USB webcam (or any V4L2 device) through ``cv2.VideoCapture(index)``; frames arrive B, G, R."""

    live = True

    def __init__(self, index: int, size: tuple[int, int] | None = (640, 480)):
        self.index = index
        self.size = size
        self.description = f"camera device {index}"
        self._capture = None
        self._count = 0

    def open(self) -> None:
        capture = cv2.VideoCapture(self.index)
        if not capture.isOpened():
            capture.release()
            raise CameraError(f"{self.description}: cannot open (is /dev/video{self.index} there and free?)")
        if self.size:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
        self._capture = capture

    def read(self) -> Frame | None:
        ok, frame_bgr = self._capture.read()
        if not ok or frame_bgr is None:
            raise CameraError(f"{self.description}: no frame (disconnected?)")
        frame = Frame(bgr_to_rgb(frame_bgr), self._count, time.monotonic())
        self._count += 1
        return frame

    def close(self) -> None:
        capture, self._capture = self._capture, None
        if capture is not None:
            capture.release()


class VideoFileSource(FrameSource):
    """A video file decoded by OpenCV (FFmpeg); frames arrive B, G, R and are timestamped by position."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.description = f"video {self.path}"
        self._capture = None
        self._count = 0
        self._announced = 0

    def open(self) -> None:
        if not self.path.is_file():
            raise ToolkitError(f"{self.path}: no such video file; check --source")
        capture = cv2.VideoCapture(str(self.path))
        if not capture.isOpened():
            capture.release()
            raise ToolkitError(f"{self.path}: OpenCV cannot decode this video; re-encode it (e.g. MJPG .avi or H.264 .mp4)")
        self._announced = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self._capture = capture
        self._count = 0

    def read(self) -> Frame | None:
        ok, frame_bgr = self._capture.read()
        if not ok or frame_bgr is None:
            if self._count == 0:
                raise ToolkitError(f"{self.path}: no decodable frame; the file is empty or corrupt")
            return None
        position_s = float(self._capture.get(cv2.CAP_PROP_POS_MSEC) or 0.0) / 1000.0
        frame = Frame(bgr_to_rgb(frame_bgr), self._count, position_s)
        self._count += 1
        return frame

    def close(self) -> None:
        capture, self._capture = self._capture, None
        if capture is not None:
            capture.release()

    def stats(self) -> dict:
        # A truncated file ends early: the header's count tells how many frames were lost.
        return {"frames_announced": self._announced, "frames_decoded": self._count}


class ImageFilesSource(FrameSource):
    """Image files in name order (a folder, a glob, or one file). Unreadable files are skipped and counted."""

    def __init__(self, files: list[Path], description: str):
        self.files = files
        self.description = description
        self._position = 0
        self._count = 0
        self.skipped: list[str] = []

    def open(self) -> None:
        self._position = 0
        self._count = 0

    def read(self) -> Frame | None:
        while self._position < len(self.files):
            path = self.files[self._position]
            self._position += 1
            try:
                image_rgb = load_image_rgb(path)
            except ToolkitError as error:
                self.skipped.append(str(path))
                print(f"skipped: {error}", file=sys.stderr)
                continue
            frame = Frame(image_rgb, self._count, time.monotonic(), name=str(path))
            self._count += 1
            return frame
        if self._count == 0:
            raise ToolkitError(f"{self.description}: none of the {len(self.files)} images could be decoded")
        return None

    def stats(self) -> dict:
        return {"images": len(self.files), "skipped_files": len(self.skipped)}


def image_files_in(folder: Path) -> list[Path]:
    """The image files directly inside a folder, in name order."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def open_source(text: str, camera_size: tuple[int, int] = (640, 480), fallback: str | None = None) -> FrameSource:
    """Picks the source a ``--source`` value names (not yet opened).

    Args:
        text: ``picamera2``, a device index (``0``), a video file, an image folder, a glob
            (``'photos/*.jpg'``), one image file, or ``auto`` (the Pi camera if one is attached, else
            device 0 if it opens, else ``fallback``).
        camera_size: Width and height requested from cameras.
        fallback: What ``auto`` uses when no camera is found.

    Raises:
        ToolkitError: Nothing exists under that name.
    """
    if text == AUTO:
        return _auto_source(camera_size, fallback)
    if text == PICAMERA2:
        return Picamera2Source(camera_size)
    if text.isdigit():
        return CameraDeviceSource(int(text), camera_size)
    path = Path(text)
    if path.is_dir():
        files = image_files_in(path)
        if not files:
            raise ToolkitError(f"{path}: folder has no images ({', '.join(IMAGE_SUFFIXES)}); check --source")
        return ImageFilesSource(files, f"folder {path}")
    if path.is_file():
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return ImageFilesSource([path], f"image {path}")
        return VideoFileSource(path)
    if glob.has_magic(text):
        files = sorted(Path(p) for p in glob.glob(text) if Path(p).suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ToolkitError(f"{text}: the pattern matches no images; check --source (quote it in the shell)")
        return ImageFilesSource(files, f"glob {text}")
    raise ToolkitError(
        f"{text}: no such file, folder or camera; --source takes picamera2, a device index, a video file, "
        "an image folder or a glob"
    )


def _auto_source(camera_size: tuple[int, int], fallback: str | None) -> FrameSource:
    if picamera2_available():
        return Picamera2Source(camera_size)
    if os.path.exists("/dev/video0"):
        probe = cv2.VideoCapture(0)
        opened = probe.isOpened()
        probe.release()
        if opened:
            return CameraDeviceSource(0, camera_size)
    if fallback:
        print(f"notice: no Pi camera or webcam found; using {fallback}", file=sys.stderr)
        return open_source(fallback, camera_size)
    raise ToolkitError("auto: no Pi camera (picamera2) or webcam (/dev/video0) found; pass --source explicitly")
