"""``--serve HOST:PORT``: annotated frames as an MJPEG stream, a small page, and a JSON status endpoint.

Routes (GET and HEAD):
    /             a page showing the stream and the current label (polls /status)
    /stream.mjpg  multipart/x-mixed-replace JPEG stream of annotated frames
    /frame.jpg    the latest annotated frame
    /status       JSON: the latest result (frame, label, score, latency_ms, fps, top) and run counters

Standard library only (``http.server``, ``selectors``), so nothing more to install on a Pi. What keeps it
safe on a LAN:

- It binds 127.0.0.1 unless told otherwise. Binding beyond loopback needs a token (``token``; the
  command line's ``--serve-token`` or ``VGG_EDGE_TOKEN``), unless ``insecure`` says in so many words that
  anyone on the network may watch the camera.
- With a token, every request carries it: ``Authorization: Bearer TOKEN``, ``?token=TOKEN`` (the page then
  sets an HttpOnly cookie so its stream and status requests carry it too), or that cookie.
- The Host header must name this server: a loopback name, the bound address, the address the client
  connected to, this machine's host name (and ``NAME.local``), or a name in ``allowed_hosts``. A web page
  elsewhere that rebinds its own DNS name to this address (DNS rebinding) is refused with 403.
- An accepted connection costs no thread until its request arrives: one selector thread holds the idle
  ones, closes each after ``_REQUEST_TIMEOUT_S``, and past ``_MAX_IDLE`` closes the oldest, so idle sockets
  cannot starve ``/status``. At most ``max_clients`` stream viewers at once (more get 503), and at most
  ``_SHORT_WORKERS`` page/status/frame requests at once.
- Every value placed in the page is HTML-escaped; a client that resets or times out is dropped quietly.
"""

from __future__ import annotations

import collections
import hmac
import html
import ipaddress
import json
import resource
import selectors
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np

from runtime.errors import ToolkitError
from runtime.loop import FrameResult

_JPEG_QUALITY = 80
_BOUNDARY = "frame"
_CLIENT_WAIT_S = 1.0  # a stream client re-checks for shutdown this often when no frame arrives
_REQUEST_TIMEOUT_S = 10.0  # seconds a client has to send its request; also the limit on one blocked write
_MAX_IDLE = 256  # connections that sent no request yet; past this the oldest is closed (a Pi has 1024 fds)
_IDLE_FD_SHARE = 4  # ...and at most a quarter of this process's file-descriptor limit
_SHORT_WORKERS = 8  # page, status and frame requests served at once (each takes milliseconds)
_SELECT_S = 0.25  # how often the selector thread looks at timeouts and shutdown
DEFAULT_MAX_CLIENTS = 4  # stream viewers at once; each holds a thread and the encoder's output
TOKEN_ENV = "VGG_EDGE_TOKEN"
_COOKIE = "vgg_edge_token"
_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}

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


def is_loopback(host: str) -> bool:
    """True for loopback addresses and ``localhost``; a wildcard or any other name is beyond loopback."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, port: int, token: str | None, insecure: bool) -> None:
    """Refuses to serve beyond loopback without a token, unless ``insecure`` says so.

    Raises:
        ToolkitError: One line saying how to add a token or to opt out.
    """
    if not is_loopback(host) and not token and not insecure:
        raise ToolkitError(f"--serve {host}:{port} reaches beyond this machine but has no authentication: set "
                           f"--serve-token TOKEN (or {TOKEN_ENV}), or pass --serve-insecure to let anyone on the "
                           "network watch the camera")


def _host_name(header: str) -> str:
    """The name part of a Host header: ``"[::1]:8080"`` -> ``"::1"``, ``"pi.local:80"`` -> ``"pi.local"``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class StreamServer:
    """Holds the newest annotated JPEG and status, and serves them from background threads.

    Also a loop sink: ``emit()`` encodes the annotated frame and wakes the stream clients.

    Args:
        host: Address to bind (127.0.0.1 by default on the command line).
        port: Port; 0 picks a free one.
        title: Heading of the page (escaped).
        source: What the frames come from, reported by /status.
        max_clients: Stream viewers at once; more get 503.
        token: Required on every request when set.
        allowed_hosts: Host header names accepted besides the built-in ones.
        insecure: Allow binding beyond loopback without a token.

    Raises:
        ToolkitError: The port cannot be bound, or a non-loopback bind lacks a token and ``insecure``.
    """

    needs_annotation = True

    def __init__(self, host: str, port: int, title: str = "vgg-edge", source: str = "", *,
                 max_clients: int = DEFAULT_MAX_CLIENTS, token: str | None = None,
                 allowed_hosts: tuple[str, ...] = (), insecure: bool = False):
        check_exposure(host, port, token, insecure)
        self.title = title
        self.source = source
        self.token = token or None
        self.max_clients = max_clients
        self._cond = threading.Condition()
        self._jpeg: bytes | None = None
        self._sequence = 0
        self._status: dict = {"source": source}
        self._closing = False
        self._streams = threading.BoundedSemaphore(max_clients)
        self._workers = threading.BoundedSemaphore(max_clients + _SHORT_WORKERS)
        self.refused = collections.Counter()  # why connections were turned away (for tests and the curious)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            self._listener = socket.create_server((host, port), family=family, backlog=128)
        except OSError as error:
            raise ToolkitError(f"--serve {host}:{port}: cannot listen ({error.strerror}); pick another port") from None
        self._listener.setblocking(False)
        bound = self.address[0]
        self._allowed = {name.lower() for name in (*_LOOPBACK_NAMES, *allowed_hosts)}
        if bound not in ("0.0.0.0", "::"):
            self._allowed.add(bound.lower())
        hostname = socket.gethostname().lower()
        self._allowed |= {hostname, f"{hostname}.local"}
        self._handler = _handler_class(self)
        self._max_idle = max(8, min(_MAX_IDLE, resource.getrlimit(resource.RLIMIT_NOFILE)[0] // _IDLE_FD_SHARE))
        self._thread = threading.Thread(target=self._serve, name="http", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._listener.getsockname()[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"

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
            self._thread.join(timeout=5 * _SELECT_S)
        self._listener.close()

    def snapshot(self) -> tuple[int, bytes | None, dict]:
        with self._cond:
            return self._sequence, self._jpeg, dict(self._status)

    def wait_newer(self, sequence: int) -> tuple[int, bytes | None, bool]:
        """Blocks until a frame newer than ``sequence`` exists (or shutdown); returns (seq, jpeg, closing)."""
        with self._cond:
            self._cond.wait_for(lambda: self._sequence > sequence or self._closing, _CLIENT_WAIT_S)
            return self._sequence, self._jpeg, self._closing

    @property
    def closing(self) -> bool:
        return self._closing

    # -- the connection side ------------------------------------------------------------------------

    def host_allowed(self, header: str | None, local_address: str) -> bool:
        """Whether a request's Host header names this server (see the module docstring)."""
        if not header:
            return False
        name = _host_name(header)
        local = local_address.lower().removeprefix("::ffff:")  # an IPv4 client of a dual-stack socket
        return name in self._allowed or name == local

    def token_ok(self, authorization: str | None, query_token: str | None, cookie: str | None) -> bool:
        if self.token is None:
            return True
        offered = [query_token, cookie]
        if authorization and authorization.lower().startswith("bearer "):
            offered.append(authorization[7:].strip())
        return any(value is not None and hmac.compare_digest(value.encode(), self.token.encode())
                   for value in offered)

    def try_stream_slot(self) -> bool:
        return self._streams.acquire(blocking=False)

    def release_stream_slot(self) -> None:
        self._streams.release()

    def _serve(self) -> None:
        """The selector thread: accepts, parks idle connections, hands readable ones to a worker thread."""
        selector = selectors.DefaultSelector()
        selector.register(self._listener, selectors.EVENT_READ)
        idle: collections.OrderedDict[socket.socket, float] = collections.OrderedDict()  # oldest first

        def drop(conn: socket.socket, reason: str) -> None:
            selector.unregister(conn)
            del idle[conn]
            conn.close()
            self.refused[reason] += 1

        try:
            while not self._closing:
                for key, _ in selector.select(_SELECT_S):
                    if key.fileobj is self._listener:
                        try:
                            conn, _ = self._listener.accept()
                        except (BlockingIOError, InterruptedError):
                            continue
                        except OSError:  # out of file descriptors: make room instead of spinning
                            if idle:
                                drop(next(iter(idle)), "idle, closed to make room")
                            continue
                        if len(idle) >= self._max_idle:
                            drop(next(iter(idle)), "idle, closed to make room")
                        idle[conn] = time.monotonic()
                        selector.register(conn, selectors.EVENT_READ)
                    else:
                        conn = key.fileobj
                        selector.unregister(conn)
                        del idle[conn]
                        self._dispatch(conn)
                deadline = time.monotonic() - _REQUEST_TIMEOUT_S
                while idle and next(iter(idle.values())) < deadline:
                    drop(next(iter(idle)), "no request in time")
        finally:
            for conn in list(idle):
                conn.close()
            selector.close()

    def _dispatch(self, conn: socket.socket) -> None:
        if not self._workers.acquire(blocking=False):
            self.refused["busy"] += 1
            try:  # best effort, never blocking the selector thread
                conn.setblocking(False)
                conn.send(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            except OSError:
                pass
            conn.close()
            return
        threading.Thread(target=self._handle, args=(conn,), name="http-client", daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            conn.setblocking(True)
            try:
                address = conn.getpeername()
            except OSError:
                return
            self._handler(conn, address, self)
        except OSError:  # reset, broken pipe, timeout: the client went away; nothing to report
            pass
        finally:
            self._workers.release()
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()


def _handler_class(server: StreamServer) -> type[BaseHTTPRequestHandler]:
    """The request handler class bound to ``server``.

    Long because it is a class body (one short method per route and check), defined here so that each
    method reads the server's frame, token and allowed hosts without a module-level global.
    """

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = _REQUEST_TIMEOUT_S  # StreamRequestHandler.setup() applies it to the socket
        server_version = "vgg-edge"
        sys_version = ""
        _head = False

        def log_message(self, format: str, *args) -> None:  # keep stdout/stderr for the loop's own output
            pass

        def do_GET(self) -> None:
            self._route(head=False)

        def do_HEAD(self) -> None:
            self._route(head=True)

        def _route(self, head: bool) -> None:
            self._head = head
            url = urlsplit(self.path)
            query_token = parse_qs(url.query).get("token", [None])[0]
            if not server.host_allowed(self.headers.get("Host"), self.connection.getsockname()[0]):
                self._send(HTTPStatus.FORBIDDEN, "text/plain",
                           b"host not allowed: open this server by its address, or start it with "
                           b"--serve-allow-host NAME\n")
                server.refused["host"] += 1
                return
            if not server.token_ok(self.headers.get("Authorization"), query_token, self._cookie()):
                self._send(HTTPStatus.UNAUTHORIZED, "text/plain", b"token required: open /?token=TOKEN\n",
                           extra={"WWW-Authenticate": 'Bearer realm="vgg-edge"'})
                server.refused["token"] += 1
                return
            extra = {}
            if server.token is not None and query_token is not None:
                extra["Set-Cookie"] = f"{_COOKIE}={server.token}; Path=/; HttpOnly; SameSite=Strict"
            if url.path == "/":
                page = PAGE.format(title=html.escape(server.title, quote=True)).encode()
                self._send(HTTPStatus.OK, "text/html; charset=utf-8", page, extra=extra)
            elif url.path == "/status":
                _, _, status = server.snapshot()
                self._send(HTTPStatus.OK, "application/json", json.dumps(status).encode(), extra=extra)
            elif url.path == "/frame.jpg":
                _, jpeg, _ = server.snapshot()
                if jpeg is None:
                    self._send(HTTPStatus.SERVICE_UNAVAILABLE, "text/plain", b"no frame yet\n")
                else:
                    self._send(HTTPStatus.OK, "image/jpeg", jpeg, extra=extra)
            elif url.path == "/stream.mjpg":
                if not server.try_stream_slot():
                    server.refused["viewers"] += 1
                    self._send(HTTPStatus.SERVICE_UNAVAILABLE, "text/plain",
                               f"too many viewers ({server.max_clients}); close one or raise "
                               "--serve-max-clients\n".encode())
                    return
                try:
                    self._stream(head)
                finally:
                    server.release_stream_slot()
            else:
                self._send(HTTPStatus.NOT_FOUND, "text/plain", b"not found\n")

        def _cookie(self) -> str | None:
            for part in (self.headers.get("Cookie") or "").split(";"):
                name, _, value = part.strip().partition("=")
                if name == _COOKIE:
                    return value
            return None

        def _common_headers(self) -> None:
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Referrer-Policy", "no-referrer")  # a ?token= URL must not leak onwards
            self.send_header("Content-Security-Policy", "frame-ancestors 'none'")
            self.send_header("Connection", "close")  # one request per connection: no idle keep-alive threads

        def _send(self, status: HTTPStatus, content_type: str, body: bytes, extra: dict | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self._common_headers()
            self.end_headers()
            if not self._head:
                self.wfile.write(body)

        def _stream(self, head: bool) -> None:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={_BOUNDARY}")
            self._common_headers()
            self.end_headers()
            if head:
                return
            last = 0
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

    return Handler
