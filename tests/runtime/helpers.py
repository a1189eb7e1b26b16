"""Frames, videos and fake cameras for the runtime tests, each delivering pixels the way the real one does."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np

from runtime.capture import FrameGrabber, RetryPolicy
from runtime.interpreter import Classifier
from runtime.loop import LoopOptions, run_loop
from runtime.metadata import locate_model
from tests import ROOT

RED_RGB, GREEN_RGB, BLUE_RGB = (255, 0, 0), (0, 255, 0), (0, 0, 255)
FAST_RETRY = RetryPolicy(attempts=2, first_delay_s=0.01, max_delay_s=0.02)


def patch_frame_rgb(colour_rgb, size=(96, 72), seed=0) -> np.ndarray:
    """A grey, slightly noisy RGB frame with a block of ``colour_rgb`` over its middle 60%."""
    width, height = size
    rng = np.random.default_rng(seed)
    frame = np.clip(128 + rng.integers(-10, 11, (height, width, 3)), 0, 255).astype(np.uint8)
    y0, x0 = int(height * 0.2), int(width * 0.2)
    frame[y0:height - y0, x0:width - x0] = colour_rgb
    return frame


def write_video_rgb(path: Path, frames_rgb, fps: float = 15.0) -> Path:
    """An MJPG .avi of RGB frames (converted to the B, G, R order VideoWriter takes)."""
    height, width = frames_rgb[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    assert writer.isOpened()
    for frame_rgb in frames_rgb:
        writer.write(cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def read_video_bgr(path: Path) -> list[np.ndarray]:
    """Every frame of a video as OpenCV decodes it (B, G, R)."""
    capture = cv2.VideoCapture(str(path))
    frames = []
    try:
        while True:
            ok, frame_bgr = capture.read()
            if not ok:
                return frames
            frames.append(frame_bgr)
    finally:
        capture.release()


def classify_source(model_path: Path, source, options: LoopOptions | None = None, prepare: bool = False):
    """Runs a source through the real loop (no output sinks); returns (results, summary)."""
    classifier = Classifier(*locate_model(model_path))
    results = []
    grabber = FrameGrabber(source, FAST_RETRY, prepare=classifier.input_tensor_rgb if prepare else None).start()
    try:
        summary = run_loop(classifier, grabber, options or LoopOptions(), [], threading.Event(),
                           on_result=results.append)
    finally:
        grabber.stop()
    return results, summary


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m runtime ARGS`` in a fresh interpreter, as a user or a systemd unit would run it."""
    return subprocess.run([sys.executable, "-m", "runtime", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, errors="replace", timeout=timeout, check=False)


class FakePicamera2:
    """Stands in for ``picamera2.Picamera2`` with the pixel orders its manual documents.

    "RGB888" arrays are [B, G, R], "BGR888" [R, G, B], "XBGR8888" (the default with no format set)
    [R, G, B, 255] and "XRGB8888" [B, G, R, 255]. ``scene_rgb`` is what the lens sees.
    """

    scene_rgb: np.ndarray = patch_frame_rgb(RED_RGB)
    fail_captures = 0  # the next N captures raise, as a camera that drops off the bus does

    def __init__(self, camera_num: int = 0):
        self.camera_config = None
        self.started = False

    @staticmethod
    def global_camera_info():
        return [{"Model": "fake", "Num": 0}]

    def create_video_configuration(self, main=None, **_):
        return {"main": dict(main or {})}

    def configure(self, config):
        main = dict(config["main"])
        main.setdefault("format", "XBGR8888")
        self.camera_config = {"main": main}

    def start(self):
        self.started = True

    def capture_array(self, name="main"):
        if FakePicamera2.fail_captures > 0:
            FakePicamera2.fail_captures -= 1
            raise RuntimeError("Camera frontend has timed out!")
        width, height = self.camera_config["main"]["size"]
        rgb = cv2.resize(self.scene_rgb, (width, height), interpolation=cv2.INTER_NEAREST)
        alpha = np.full(rgb.shape[:2] + (1,), 255, np.uint8)
        return {
            "RGB888": np.ascontiguousarray(rgb[..., ::-1]),
            "BGR888": rgb,
            "XBGR8888": np.concatenate([rgb, alpha], axis=2),
            "XRGB8888": np.concatenate([rgb[..., ::-1], alpha], axis=2),
        }[self.camera_config["main"]["format"]]

    def stop(self):
        self.started = False

    def close(self):
        pass


class FakeVideoCapture:
    """Stands in for ``cv2.VideoCapture(index)`` of a webcam: B, G, R frames, optionally failing."""

    scene_rgb: np.ndarray = patch_frame_rgb(RED_RGB)
    opens_failing = 0  # the next N opens fail
    reads_before_disconnect: int | None = None

    def __init__(self, index):
        self.opened = FakeVideoCapture.opens_failing <= 0
        FakeVideoCapture.opens_failing -= 1
        self.reads = 0

    def isOpened(self):
        return self.opened

    def set(self, prop, value):
        return True

    def read(self):
        limit = FakeVideoCapture.reads_before_disconnect
        if limit is not None and self.reads >= limit:
            return False, None
        self.reads += 1
        return True, cv2.cvtColor(self.scene_rgb, cv2.COLOR_RGB2BGR)

    def release(self):
        self.opened = False
