"""``--serve HOST:PORT``: annotated frames as an MJPEG stream, a small page, and a JSON status endpoint.

Routes:
    /             a page showing the stream and the current label (polls /status)
    /stream.mjpg  multipart/x-mixed-replace JPEG stream of annotated frames
    /frame.jpg    the latest annotated frame
    /status       JSON: the latest result (frame, label, score, latency_ms, fps, top) and run counters

Standard library only (``http.server``), so nothing more to install on a Pi. It binds 127.0.0.1 unless
told otherwise: reach it from another machine through an SSH tunnel, or pass ``--serve 0.0.0.0:8080`` on
a network you trust (there is no authentication).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

from runtime.errors import ToolkitError
from runtime.loop import FrameResult

_JPEG_QUALITY = 80
_BOUNDARY = "frame"
_CLIENT_WAIT_S = 1.0  # a stream client re-checks for shutdown this often when no frame arrives

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>vgg-edge camera</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body {{ font-family: system-ui, sans-serif; margin: 1rem; background: #111; color: #eee; }}
 img {{ max-width: 100%; border: 1px solid #444; }}
 #label {{ font-size: 2rem; font-weight: 600; }}
 #detail {{ color: #aaa; }}
</style></head>
<body>
<h1>{title}</h1>
<div id="label">waiting for frames...</div>
<div id="detail"></div>
<img src="/stream.mjpg" alt="annotated camera stream">
<script>
async function poll() {{
  try {{
    const s = await (await fetch('/status', {{cache: 'no-store'}})).json();
    if (s.label !== undefined) {{
      document.getElementById('label').textContent = s.label + ' ' + (100 * s.score).toFixed(1) + '%';
      document.getElementById('detail').textContent =
        'frame ' + s.frame + ' | ' + s.fps.toFixed(1) + ' fps | ' + s.latency_ms.toFixed(1) + ' ms | ' + s.source;
    }}
  }} catch (e) {{ document.getElementById('detail').textContent = 'no status: ' + e; }}
  setTimeout(poll, 500);
}}
poll();
</script>
</body></html>
"""


def parse_host_port(text: str) -> tuple[str, int]:
    """``"127.0.0.1:8080"``, ``":8080"`` or ``"8080"`` -> (host, port); the host defaults to 127.0.0.1.

    Raises:
        ToolkitError: Not HOST:PORT with a port in 0..65535.
    """
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ToolkitError(f"--serve {text}: expected HOST:PORT, e.g. 127.0.0.1:8080")
    return host, int(port)


class StreamServer:
    """Holds the newest annotated JPEG and status, and serves them from a background thread.

    Also a loop sink: ``emit()`` encodes the annotated frame and wakes the stream clients.
    """

    needs_annotation = True

    def __init__(self, host: str, port: int, title: str = "vgg-edge", source: str = ""):
        self.title = title
        self.source = source
        self._cond = threading.Condition()
        self._jpeg: bytes | None = None
        self._sequence = 0
        self._status: dict = {"source": source}
        self._closing = False
        server = self
        try:
            server_class = _ThreadingHTTPServerV6 if ":" in host else ThreadingHTTPServer
            self._httpd = server_class((host, port), _handler_class(server))
        except OSError as error:
            raise ToolkitError(f"--serve {host}:{port}: cannot listen ({error.strerror}); pick another port") from None
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="http", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._httpd.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}/"

    def start(self) -> "StreamServer":
        self._thread.start()
        return self

    def emit(self, result: FrameResult, annotated_bgr: np.ndarray | None) -> None:
        ok, encoded = cv2.imencode(".jpg", annotated_bgr, [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
        if not ok:
            return
        status = {"source": self.source, "updated": round(time.time(), 3), **result.to_record()}
        with self._cond:
            self._jpeg = encoded.tobytes()
            self._status = status
            self._sequence += 1
            self._cond.notify_all()

    def close(self) -> None:
        """Ends the stream clients and stops listening; safe to call twice."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._httpd.shutdown()
        self._httpd.server_close()

    def snapshot(self) -> tuple[int, bytes | None, dict]:
        with self._cond:
            return self._sequence, self._jpeg, dict(self._status)

    def wait_newer(self, sequence: int) -> tuple[int, bytes | None, bool]:
        """Blocks until a frame newer than ``sequence`` exists (or shutdown); returns (seq, jpeg, closing)."""
        with self._cond:
            self._cond.wait_for(lambda: self._sequence > sequence or self._closing, _CLIENT_WAIT_S)
            return self._sequence, self._jpeg, self._closing


class _ThreadingHTTPServerV6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def _handler_class(server: StreamServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args) -> None:  # keep stdout/stderr for the loop's own output
            pass

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/":
                self._send(HTTPStatus.OK, "text/html; charset=utf-8", PAGE.format(title=server.title).encode())
            elif path == "/status":
                _, _, status = server.snapshot()
                self._send(HTTPStatus.OK, "application/json", json.dumps(status).encode())
            elif path == "/frame.jpg":
                _, jpeg, _ = server.snapshot()
                if jpeg is None:
                    self._send(HTTPStatus.SERVICE_UNAVAILABLE, "text/plain", b"no frame yet\n")
                else:
                    self._send(HTTPStatus.OK, "image/jpeg", jpeg)
            elif path == "/stream.mjpg":
                self._stream()
            else:
                self._send(HTTPStatus.NOT_FOUND, "text/plain", b"not found\n")

        def _send(self, status: HTTPStatus, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _stream(self) -> None:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={_BOUNDARY}")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            last = 0
            try:
                while True:
                    sequence, jpeg, closing = server.wait_newer(last)
                    if closing:
                        return
                    if jpeg is None or sequence == last:
                        continue  # no new frame within the wait
                    last = sequence
                    self.wfile.write(
                        f"--{_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
                        + jpeg + b"\r\n")
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                return  # the viewer went away

    return Handler
