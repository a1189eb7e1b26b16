"""``--serve``: the MJPEG stream, the page and the JSON status, fetched with a real HTTP client."""

from __future__ import annotations

import json
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
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
from tests import ROOT
from tests.runtime.helpers import BLUE_RGB, RED_RGB, patch_frame_rgb, write_video_rgb

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


# -- safe on a LAN: escaping, Host check, token, caps, idle sockets, HEAD, quiet resets -----------------

_XSS = "<img src=x onerror=alert(1)>"


def _raw_request(port: int, request: bytes, timeout: float = _TIMEOUT_S) -> bytes:
    """Sends one raw HTTP request to 127.0.0.1 and returns the whole answer (headers and body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(request)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _get_with(port: int, path: str, host: str = "127.0.0.1", headers: str = "", method: str = "GET",
              timeout: float = _TIMEOUT_S) -> tuple[int, bytes, bytes]:
    answer = _raw_request(port, f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{headers}\r\n".encode(), timeout)
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), head, body


def test_page_escapes_the_title_built_from_file_and_label_names():
    server = StreamServer("127.0.0.1", 0, title=f"{_XSS}.tflite: {_XSS}, dog").start()
    try:
        status, _, page = _get_with(server.address[1], "/")
    finally:
        server.close()
    assert status == 200
    assert b"<img src=x" not in page and b"&lt;img src=x onerror=alert(1)&gt;" in page


def test_cli_page_escapes_a_hostile_label(colour_models, tmp_path, red_video):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "model_int8.tflite").write_bytes(colour_models["int8"].read_bytes())
    metadata = json.loads((colour_models["int8"].parent / "metadata.json").read_text())
    metadata["labels"][0] = _XSS
    (model_dir / "metadata.json").write_text(json.dumps(metadata))
    process, url = _serve_cli(model_dir, red_video)
    try:
        status, _, page = _get_with(int(url.rsplit(":", 1)[1].strip("/")), "/")
    finally:
        process.kill()
        process.communicate()
    assert status == 200 and b"<img src=x" not in page and b"&lt;img" in page


def test_host_header_must_name_this_server():
    server = StreamServer("127.0.0.1", 0, allowed_hosts=("camera.example",)).start()
    port = server.address[1]
    try:
        assert _get_with(port, "/status", host=f"127.0.0.1:{port}")[0] == 200
        assert _get_with(port, "/status", host=f"localhost:{port}")[0] == 200
        assert _get_with(port, "/status", host="camera.example")[0] == 200
        status, _, body = _get_with(port, "/status", host=f"attacker.example:{port}")  # DNS rebinding
        assert status == 403 and b"--serve-allow-host" in body
        assert _raw_request(port, b"GET /status HTTP/1.0\r\n\r\n").split()[1] == b"403"  # no Host at all
    finally:
        server.close()


def test_token_is_required_on_every_request_when_set():
    server = StreamServer("127.0.0.1", 0, token="s3cret").start()
    port = server.address[1]
    try:
        assert _get_with(port, "/status")[0] == 401
        assert _get_with(port, "/status?token=wrong")[0] == 401
        assert _get_with(port, "/status", headers="Authorization: Bearer s3cret\r\n")[0] == 200
        status, head, _ = _get_with(port, "/?token=s3cret")
        assert status == 200 and b"Set-Cookie: vgg_edge_token=s3cret; Path=/; HttpOnly; SameSite=Strict" in head
        assert _get_with(port, "/status", headers="Cookie: other=1; vgg_edge_token=s3cret\r\n")[0] == 200
        assert _get_with(port, "/stream.mjpg", method="HEAD")[0] == 401
    finally:
        server.close()


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "camera.example"])
def test_binding_beyond_loopback_needs_a_token_or_the_insecure_flag(host):
    with pytest.raises(ToolkitError, match="no authentication: set --serve-token TOKEN .*--serve-insecure"):
        StreamServer(host, 0)


def test_cli_refuses_a_lan_address_without_a_token(colour_models, capsys):
    from runtime.__main__ import main

    assert main(["--model", str(colour_models["int8"]), "--source", "nonexistent.avi", "--serve", "0.0.0.0:0",
                 "--headless"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no authentication" in err[0] and "VGG_EDGE_TOKEN" in err[0]


def test_head_is_answered_without_a_body():
    server = StreamServer("127.0.0.1", 0).start()
    port = server.address[1]
    try:
        for path in ("/", "/status", "/stream.mjpg"):
            status, head, body = _get_with(port, path, method="HEAD")
            assert status == 200 and body == b"", path
        assert b"Content-Length" in _get_with(port, "/status", method="HEAD")[1]
    finally:
        server.close()


_IDLE_SOCKETS = 200
_ANSWER_WITHIN_S = 1.0  # /status must keep answering this fast whatever else is connected


def test_status_answers_while_idle_sockets_and_more_than_the_cap_of_viewers_are_connected(colour_models, red_video):
    cap = 3
    classifier = Classifier(*locate_model(colour_models["int8"]))
    server = StreamServer("127.0.0.1", 0, source="test video", max_clients=cap).start()
    stop = threading.Event()
    grabber = FrameGrabber(open_source(str(red_video)), loop=True).start()
    worker = threading.Thread(target=run_loop, args=(classifier, grabber, LoopOptions(), [server], stop))
    worker.start()
    port = server.address[1]
    sockets = []
    try:
        deadline = time.monotonic() + _TIMEOUT_S
        while server.snapshot()[0] == 0 and time.monotonic() < deadline:  # the first frame is out
            time.sleep(0.01)
        for _ in range(_IDLE_SOCKETS):  # connect and say nothing: each used to hold a thread forever
            sockets.append(socket.create_connection(("127.0.0.1", port), timeout=_TIMEOUT_S))
        viewers = []
        for _ in range(cap + 2):
            conn = socket.create_connection(("127.0.0.1", port), timeout=_TIMEOUT_S)
            conn.sendall(f"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            viewers.append(conn)
            sockets.append(conn)
        answers = [conn.recv(64) for conn in viewers]
        assert sum(a.startswith(b"HTTP/1.1 200") for a in answers) == cap, answers
        assert sum(a.startswith(b"HTTP/1.1 503") for a in answers) == 2, answers
        for _ in range(5):
            started = time.perf_counter()
            status, _, body = _get_with(port, "/status", timeout=_ANSWER_WITHIN_S)
            assert status == 200 and time.perf_counter() - started < _ANSWER_WITHIN_S
        assert json.loads(body)["label"] == "red"
        assert server.refused["viewers"] == 2
    finally:
        for conn in sockets:
            conn.close()
        stop.set()
        worker.join(timeout=_TIMEOUT_S)
        grabber.stop()
        server.close()
    assert not worker.is_alive()


def _serve_cli(model, video, *extra):
    process = subprocess.Popen(
        [sys.executable, "-m", "runtime", "--model", str(model), "--source", str(video), "--headless", "--loop",
         "--serve", "127.0.0.1:0", *extra],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, errors="replace")
    for _ in range(50):
        line = process.stderr.readline()
        if match := re.match(r"serving on (http://127\.0\.0\.1:\d+/)", line):
            return process, match.group(1)
    process.kill()
    raise AssertionError("no 'serving on' line")


def test_clients_that_reset_early_are_dropped_quietly(colour_models, red_video):
    process, url = _serve_cli(colour_models["int8"], red_video)
    port = int(url.rsplit(":", 1)[1].strip("/"))
    try:
        assert len(_read_mjpeg_parts(f"{url}stream.mjpg", 1)) == 1  # frames are flowing
        for i in range(12):
            conn = socket.create_connection(("127.0.0.1", port), timeout=_TIMEOUT_S)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
            request = f"GET {'/stream.mjpg' if i % 2 else '/frame.jpg'} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
            if i % 3 == 0:  # reset in the middle of the answer
                conn.sendall(request)
                conn.recv(16)
            else:  # reset in the middle of the request
                conn.sendall(request[: 10 + i * 3])
            conn.close()
        assert json.loads(_get(f"{url}status")[2])["label"] == "red"  # still serving
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=_TIMEOUT_S)
    finally:
        process.kill()
    assert process.returncode == 0
    assert "Traceback" not in err and "Exception" not in err, err


_PI_FD_LIMIT = 1024  # Raspberry Pi OS's default soft limit on open files
_FLOOD_SOCKETS = 1100  # more idle sockets than a Pi process has file descriptors


def test_a_flood_of_idle_sockets_beyond_the_fd_limit_does_not_stop_status(colour_models, red_video):
    import resource

    def pi_limits():
        resource.setrlimit(resource.RLIMIT_NOFILE, (_PI_FD_LIMIT, _PI_FD_LIMIT))

    process = subprocess.Popen(
        [sys.executable, "-m", "runtime", "--model", str(colour_models["int8"]), "--source", str(red_video),
         "--headless", "--loop", "--serve", "127.0.0.1:0"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, errors="replace",
        preexec_fn=pi_limits)
    sockets = []
    try:
        url = None
        for _ in range(50):
            if match := re.match(r"serving on (http://127\.0\.0\.1:(\d+)/)", process.stderr.readline()):
                url, port = match.group(1), int(match.group(2))
                break
        assert url, "no 'serving on' line"
        for _ in range(_FLOOD_SOCKETS):
            sockets.append(socket.create_connection(("127.0.0.1", port), timeout=_TIMEOUT_S))
        time.sleep(0.5)  # let the server accept (and shed) them all
        for _ in range(5):
            started = time.perf_counter()
            status, _, _ = _get_with(port, "/status", timeout=_ANSWER_WITHIN_S)
            assert status == 200 and time.perf_counter() - started < _ANSWER_WITHIN_S
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=_TIMEOUT_S)
    finally:
        for conn in sockets:
            conn.close()
        process.kill()
    assert process.returncode == 0 and "Traceback" not in err, err
