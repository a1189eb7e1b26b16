"""``--serve``: the MJPEG stream, the page and the JSON status, fetched with a real HTTP client."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import urllib.request

import cv2
import numpy as np
import pytest

from runtime.capture import FrameGrabber
from runtime.errors import ToolkitError
from runtime.interpreter import Classifier
from runtime.loop import LoopOptions, run_loop
from runtime.metadata import locate_model
from runtime.server import StreamServer, parse_host_port
from runtime.sources import open_source
from tests.runtime_helpers import BLUE_RGB, RED_RGB, ROOT, patch_frame_rgb, write_video_rgb

_TIMEOUT_S = 10


def _get(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response:
        return response.status, response.headers.get("Content-Type"), response.read()


def _read_mjpeg_parts(url: str, count: int) -> list[bytes]:
    """Reads ``count`` JPEG parts of a multipart/x-mixed-replace stream, by their Content-Length headers."""
    parts = []
    with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response:
        assert response.headers.get("Content-Type") == "multipart/x-mixed-replace; boundary=frame"
        while len(parts) < count:
            assert response.readline() == b"--frame\r\n"
            headers = {}
            while (line := response.readline()) != b"\r\n":
                key, _, value = line.decode().partition(":")
                headers[key.strip().lower()] = value.strip()
            assert headers["content-type"] == "image/jpeg"
            parts.append(response.read(int(headers["content-length"])))
            assert response.readline() == b"\r\n"
    return parts


@pytest.fixture
def red_video(tmp_path):
    return write_video_rgb(tmp_path / "red.avi", [patch_frame_rgb(RED_RGB, size=(160, 120), seed=i) for i in range(8)])


def test_stream_page_and_status_over_http(colour_models, red_video):
    classifier = Classifier(*locate_model(colour_models["int8"]))
    server = StreamServer("127.0.0.1", 0, source="test video").start()
    stop = threading.Event()
    grabber = FrameGrabber(open_source(str(red_video)), loop=True).start()
    worker = threading.Thread(target=run_loop, args=(classifier, grabber, LoopOptions(), [server], stop))
    worker.start()
    try:
        host, port = server.address
        assert host == "127.0.0.1" and port > 0
        parts = _read_mjpeg_parts(f"{server.url}stream.mjpg", 3)
        for jpeg in parts:
            frame_bgr = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
            assert frame_bgr.shape == (120, 160, 3)
            centre = frame_bgr[60, 80].astype(int)  # the red block, still red in the annotated JPEG
            assert centre[2] > 180 and centre[0] < 80
        status_code, content_type, body = _get(f"{server.url}status")
        status = json.loads(body)
        assert status_code == 200 and content_type == "application/json"
        assert status["label"] == "red" and status["score"] > 0.9 and status["source"] == "test video"
        assert {"frame", "latency_ms", "fps"} <= set(status)
        status_code, content_type, page = _get(server.url)
        assert content_type.startswith("text/html") and b'src="/stream.mjpg"' in page and b"/status" in page
        status_code, content_type, jpeg = _get(f"{server.url}frame.jpg")
        assert content_type == "image/jpeg" and jpeg[:2] == b"\xff\xd8"
        with pytest.raises(urllib.error.HTTPError, match="404"):
            _get(f"{server.url}nothing-here")
    finally:
        stop.set()
        worker.join(timeout=_TIMEOUT_S)
        grabber.stop()
        server.close()
    assert not worker.is_alive()


def test_status_before_the_first_frame(colour_models):
    server = StreamServer("127.0.0.1", 0, source="cam").start()
    try:
        assert json.loads(_get(f"{server.url}status")[2]) == {"source": "cam"}
        with pytest.raises(urllib.error.HTTPError, match="503"):
            _get(f"{server.url}frame.jpg")
    finally:
        server.close()


def test_cli_serve_follows_the_scene(colour_models, tmp_path):
    frames = [patch_frame_rgb(BLUE_RGB, size=(160, 120), seed=i) for i in range(8)]
    video = write_video_rgb(tmp_path / "blue.avi", frames)
    process = subprocess.Popen(
        [sys.executable, "-m", "runtime", "--model", str(colour_models["int8"]), "--source", str(video),
         "--headless", "--loop", "--serve", "127.0.0.1:0"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, errors="replace")
    try:
        url = None
        for _ in range(50):
            line = process.stderr.readline()
            if match := re.match(r"serving on (http://127\.0\.0\.1:\d+/)", line):
                url = match.group(1)
                break
        assert url, "no 'serving on' line"
        assert len(_read_mjpeg_parts(f"{url}stream.mjpg", 2)) == 2
        assert json.loads(_get(f"{url}status")[2])["label"] == "blue"
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=_TIMEOUT_S)
    finally:
        process.kill()
    assert process.returncode == 0 and "stopped by signal" in err


@pytest.mark.parametrize("text, expected", [
    ("8080", ("127.0.0.1", 8080)),
    (":8080", ("127.0.0.1", 8080)),
    ("0.0.0.0:80", ("0.0.0.0", 80)),
    ("[::1]:9000", ("::1", 9000)),
])
def test_serve_address_defaults_to_loopback(text, expected):
    assert parse_host_port(text) == expected


@pytest.mark.parametrize("text", ["host:", "host:http", "1.2.3.4:70000"])
def test_bad_serve_address(text):
    with pytest.raises(ToolkitError, match="expected HOST:PORT"):
        parse_host_port(text)


def test_port_in_use_is_one_line_error():
    first = StreamServer("127.0.0.1", 0)
    try:
        with pytest.raises(ToolkitError, match="cannot listen .*pick another port"):
            StreamServer("127.0.0.1", first.address[1])
    finally:
        first.close()
