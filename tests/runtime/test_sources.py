"""Frame sources: colour order per source kind, camera retry with backoff, newest-frame capture.

The colour tests put a red block in front of each kind of source, delivered in that source's own
channel order, and require the colour model (tests/tiny_models.py) to answer "red" through the real
loop. A source that forgot its conversion would make it answer "blue".
"""

from __future__ import annotations

import sys
import threading
import time
import types

import numpy as np
import pytest
from PIL import Image

from runtime import sources
from runtime.capture import FrameGrabber, RetryPolicy
from runtime.errors import ToolkitError
from runtime.loop import LoopOptions
from runtime.sources import CameraDeviceSource, CameraError, Frame, FrameSource, Picamera2Source, open_source
from tests.runtime.helpers import (
    BLUE_RGB,
    FAST_RETRY,
    RED_RGB,
    FakePicamera2,
    FakeVideoCapture,
    classify_source,
    patch_frame_rgb,
    write_video_rgb,
)


def _assert_red(results, count):
    assert len(results) == count
    for result in results:
        assert result.label == "red", (result.label, result.top)
        centre = result.frame.image_rgb[result.frame.image_rgb.shape[0] // 2, result.frame.image_rgb.shape[1] // 2]
        assert centre[0] > 200 and centre[2] < 60, centre  # the model got R high, B low


@pytest.fixture
def fake_picamera2(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", types.SimpleNamespace(Picamera2=FakePicamera2))
    FakePicamera2.scene_rgb = patch_frame_rgb(RED_RGB)
    FakePicamera2.fail_captures = 0
    return FakePicamera2


@pytest.fixture
def fake_webcam(monkeypatch):
    monkeypatch.setattr(sources.cv2, "VideoCapture", FakeVideoCapture)
    FakeVideoCapture.scene_rgb = patch_frame_rgb(RED_RGB)
    FakeVideoCapture.opens_failing = 0
    FakeVideoCapture.reads_before_disconnect = None
    return FakeVideoCapture


@pytest.mark.parametrize("pixel_format", ["RGB888", "BGR888", "XBGR8888", "XRGB8888", None])
def test_picamera2_red_reaches_the_model_as_red(colour_models, fake_picamera2, pixel_format):
    source = Picamera2Source(size=(64, 48), pixel_format=pixel_format)
    results, _ = classify_source(colour_models["int8"], source, LoopOptions(max_frames=3))
    _assert_red(results, 3)


def test_picamera2_rgb888_really_is_bgr_so_the_colour_test_can_fail(fake_picamera2):
    # The control: read the RGB888 array as if it were RGB (the classic bug) and red turns blue.
    camera = FakePicamera2()
    camera.configure(camera.create_video_configuration(main={"size": (64, 48), "format": "RGB888"}))
    array = camera.capture_array("main")
    assert tuple(array[24, 32]) == (0, 0, 255)
    assert tuple(sources.picamera2_to_rgb(array, "RGB888")[24, 32]) == RED_RGB


def test_picamera2_without_format_gives_four_channels_and_is_handled(fake_picamera2):
    camera = FakePicamera2()
    camera.configure(camera.create_video_configuration(main={"size": (64, 48)}))
    assert camera.capture_array().shape == (48, 64, 4)
    source = Picamera2Source(size=(64, 48), pixel_format=None)
    source.open()
    assert source.pixel_format == "XBGR8888"
    assert source.read().image_rgb.shape == (48, 64, 3)
    source.close()


def test_picamera2_unsupported_format_is_one_line_error():
    with pytest.raises(ToolkitError, match="YUV420.*not supported; configure the main stream"):
        sources.picamera2_to_rgb(np.zeros((48, 64), np.uint8), "YUV420")


def test_picamera2_missing_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import fails as on a machine without it
    with pytest.raises(ToolkitError, match="apt install python3-picamera2"):
        Picamera2Source().open()


def test_webcam_bgr_red_reaches_the_model_as_red(colour_models, fake_webcam):
    source = open_source("0", camera_size=(64, 48))
    assert isinstance(source, CameraDeviceSource)
    results, _ = classify_source(colour_models["int8"], source, LoopOptions(max_frames=3))
    _assert_red(results, 3)


def test_video_file_red_reaches_the_model_as_red(colour_models, tmp_path):
    video = write_video_rgb(tmp_path / "red.avi", [patch_frame_rgb(RED_RGB, seed=i) for i in range(5)])
    results, summary = classify_source(colour_models["int8"], open_source(str(video)))
    _assert_red(results, 5)
    assert summary.stopped_by == "end of source"
    assert [r.frame.index for r in results] == list(range(5))


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp"])
def test_image_folder_red_reaches_the_model_as_red(colour_models, tmp_path, suffix):
    for i in range(3):
        Image.fromarray(patch_frame_rgb(RED_RGB, seed=i)).save(tmp_path / f"{i}{suffix}")
    results, _ = classify_source(colour_models["int8"], open_source(str(tmp_path)))
    _assert_red(results, 3)


def test_glob_and_single_image_sources(colour_models, tmp_path):
    Image.fromarray(patch_frame_rgb(BLUE_RGB)).save(tmp_path / "a.png")
    Image.fromarray(patch_frame_rgb(RED_RGB)).save(tmp_path / "b.png")
    Image.fromarray(patch_frame_rgb(RED_RGB)).save(tmp_path / "c.jpg")
    results, _ = classify_source(colour_models["int8"], open_source(str(tmp_path / "*.png")))
    assert [(r.frame.name.endswith(n), r.label) for r, n in zip(results, ["a.png", "b.png"])] == [(True, "blue"), (True, "red")]
    results, _ = classify_source(colour_models["int8"], open_source(str(tmp_path / "c.jpg")))
    assert [r.label for r in results] == ["red"]


def test_unreadable_images_are_skipped_and_counted(colour_models, tmp_path):
    Image.fromarray(patch_frame_rgb(RED_RGB)).save(tmp_path / "a.png")
    (tmp_path / "b.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (tmp_path / "c.png").write_bytes(b"")
    Image.fromarray(patch_frame_rgb(RED_RGB)).save(tmp_path / "d.png")
    results, summary = classify_source(colour_models["int8"], open_source(str(tmp_path)))
    assert [r.label for r in results] == ["red", "red"]
    assert summary.source_stats == {"images": 4, "skipped_files": 2}


@pytest.mark.parametrize("text, message", [
    ("/no/such/video.avi", "no such file, folder or camera"),
    ("/no/such/*.jpg", "matches no images"),
])
def test_missing_source_is_one_line_error(text, message):
    with pytest.raises(ToolkitError, match=message):
        open_source(text)


def test_camera_that_fails_to_open_is_retried_then_opens(colour_models, fake_webcam):
    fake_webcam.opens_failing = 2
    grabber = FrameGrabber(CameraDeviceSource(0), RetryPolicy(attempts=3, first_delay_s=0.01)).start()
    try:
        assert grabber.get(timeout=5).image_rgb.shape[2] == 3
    finally:
        grabber.stop()


def test_camera_that_never_opens_gives_up_with_reason(fake_webcam):
    fake_webcam.opens_failing = 100
    with pytest.raises(ToolkitError, match=r"camera device 0: cannot open .* gave up after 2 retries"):
        FrameGrabber(CameraDeviceSource(0), FAST_RETRY).start()
    assert fake_webcam.opens_failing == 100 - 3  # the first open and FAST_RETRY's 2 retries, no more


def test_disconnected_camera_reconnects(colour_models, fake_picamera2):
    fake_picamera2.fail_captures = 1  # one timeout mid-stream, as a loose ribbon cable gives
    results, summary = classify_source(colour_models["int8"], Picamera2Source(size=(64, 48)),
                                       LoopOptions(max_frames=4))
    assert len(results) == 4 and summary.reconnects == 1


def test_camera_that_stays_disconnected_ends_the_loop_with_reason(colour_models, fake_webcam):
    fake_webcam.reads_before_disconnect = 3
    fake_webcam.opens_failing = 0
    original_init = FakeVideoCapture.__init__

    def init_then_fail_later(self, index):  # the first open works, every reopen fails
        original_init(self, index)
        FakeVideoCapture.opens_failing = 100

    FakeVideoCapture.__init__ = init_then_fail_later
    try:
        with pytest.raises(ToolkitError, match="gave up after 2 retries"):
            classify_source(colour_models["int8"], CameraDeviceSource(0), LoopOptions(max_frames=50))
    finally:
        FakeVideoCapture.__init__ = original_init


class _FastCamera(FrameSource):
    """A live source far faster than the consumer: frame i carries the value i % 256."""

    live = True
    description = "fast camera"

    def __init__(self):
        self.count = 0

    def read(self):
        time.sleep(0.001)
        self.count += 1
        return Frame(np.full((4, 4, 3), self.count % 256, np.uint8), self.count, time.monotonic())


def test_live_source_keeps_only_the_newest_frame():
    camera = _FastCamera()
    grabber = FrameGrabber(camera).start()
    try:
        taken = []
        for _ in range(5):
            time.sleep(0.05)  # a slow model
            frame = grabber.get(timeout=1)
            taken.append((frame.index, camera.count))
    finally:
        grabber.stop()
    assert grabber.dropped > 20
    for index, produced in taken:
        assert produced - index <= 3  # what the loop gets is at most a frame or two old, never a backlog


def test_file_source_drops_nothing(tmp_path):
    video = write_video_rgb(tmp_path / "v.avi", [patch_frame_rgb(RED_RGB, seed=i) for i in range(30)])
    grabber = FrameGrabber(open_source(str(video))).start()
    frames = []
    try:
        while (frame := grabber.get(timeout=5)) is not None:
            time.sleep(0.002)
            frames.append(frame.index)
    finally:
        grabber.stop()
    assert frames == list(range(30)) and grabber.dropped == 0


def test_stop_event_interrupts_a_waiting_loop(colour_models):
    class _Silent(FrameSource):
        live = True
        description = "silent camera"

        def read(self):
            time.sleep(0.05)
            raise CameraError("silent camera: no frame")

    from runtime.interpreter import Classifier
    from runtime.loop import run_loop
    from runtime.metadata import locate_model

    stop = threading.Event()
    grabber = FrameGrabber(_Silent(), RetryPolicy(attempts=1000, first_delay_s=0.05)).start()
    threading.Timer(0.3, stop.set).start()
    try:
        summary = run_loop(Classifier(*locate_model(colour_models["int8"])), grabber, LoopOptions(), [], stop)
    finally:
        grabber.stop()
    assert summary.stopped_by == "signal" and summary.frames == 0
