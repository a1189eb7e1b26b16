"""``python -m runtime --model PATH --source SOURCE``: camera frames through the int8 classifier.

Output: an overlay window where a display and a GUI-enabled OpenCV exist, otherwise (and always with
``--headless``) one JSON line per frame on stdout. The run summary goes to stderr (and ``--summary``).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from runtime.argtypes import (
    OneLineParser,
    fraction_above_zero,
    non_negative_int,
    positive_float,
    positive_int,
    size_wh,
)
from runtime.capture import FrameGrabber, PreprocessIn, RetryPolicy
from runtime.cli import run_main
from runtime.cpu import this_cpu
from runtime.errors import ToolkitError
from runtime.files import check_writable, write_json_atomic
from runtime.interpreter import Classifier, interpreter_backend
from runtime.loop import JsonLinesSink, LoopOptions, SaveEverySink, WindowSink, display_available, run_loop
from runtime.metadata import DEFAULT_ARTIFACTS, INT8_TFLITE_FILE, locate_model
from runtime.server import (
    DEFAULT_MAX_CLIENTS,
    TOKEN_ENV,
    StreamServer,
    check_exposure,
    is_loopback,
    parse_host_port,
)
from runtime.sources import AUTO, open_source


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m runtime",
        description="Classify camera frames with a TFLite model written by `make convert` (no TensorFlow needed).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--model", type=Path, default=DEFAULT_ARTIFACTS,
                        help=f"artifacts folder (its {INT8_TFLITE_FILE} is used) or a .tflite with metadata.json beside it")
    parser.add_argument("--source", type=str, default=AUTO,
                        help="picamera2, a device index (0), a video file, an image folder or a quoted glob; "
                             "auto = Pi camera, else webcam 0, else --fallback-source")
    parser.add_argument("--fallback-source", type=str, default=None,
                        help="what --source auto uses when no camera is found (a video file or image folder)")
    parser.add_argument("--headless", action="store_true",
                        help="no window: one JSON line per frame on stdout (frame, label, score, latency_ms, fps, ...)")
    parser.add_argument("--max-frames", type=positive_int, default=None, help="stop after N frames")
    parser.add_argument("--duration", type=positive_float, default=None, help="stop after S seconds")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help=f"interpreter threads; None = all cores ({os.cpu_count()} here)")
    parser.add_argument("--smooth", type=positive_int, default=1,
                        help="average scores over the last N frames (1 = off)")
    parser.add_argument("--top-k", type=positive_int, default=None,
                        help="classes reported per frame; None = the metadata's top_k")
    parser.add_argument("--serve", type=str, default=None, metavar="HOST:PORT",
                        help="serve an MJPEG stream, a page and /status, e.g. 127.0.0.1:8080; an address beyond "
                             "loopback needs --serve-token or --serve-insecure")
    parser.add_argument("--serve-token", type=str, default=None, metavar="TOKEN",
                        help=f"require this token on every request (Authorization: Bearer, ?token=, or the page's "
                             f"cookie); default: ${TOKEN_ENV}")
    parser.add_argument("--serve-allow-host", type=str, action="append", default=[], metavar="NAME",
                        help="also accept this Host header name (loopback names, the bound address, the address "
                             "connected to and this machine's name are accepted); repeatable")
    parser.add_argument("--serve-insecure", action="store_true",
                        help="serve beyond loopback without a token: anyone who can reach the port sees the camera")
    parser.add_argument("--serve-max-clients", type=positive_int, default=DEFAULT_MAX_CLIENTS,
                        help="stream viewers at once; more are refused with 503 (idle connections hold no thread "
                             "and are closed after 10 s)")
    parser.add_argument("--save-every", type=positive_int, default=None, metavar="N",
                        help="save every Nth annotated frame as JPEG into --save-dir")
    parser.add_argument("--save-dir", type=Path, default=Path("artifacts/frames"), help="folder for --save-every")
    parser.add_argument("--loop", action="store_true", help="restart a video file or image folder at its end")
    parser.add_argument("--camera-size", type=size_wh, default="640x480", help="WIDTHxHEIGHT asked of a camera")
    parser.add_argument("--retries", type=non_negative_int, default=RetryPolicy.attempts,
                        help="camera reopen attempts (backoff doubles each time) before giving up")
    parser.add_argument("--retry-delay", type=positive_float, default=RetryPolicy.first_delay_s,
                        help="seconds before the first camera reopen")
    parser.add_argument("--preprocess-in", type=str, default=PreprocessIn.LOOP.value,
                        choices=[mode.value for mode in PreprocessIn],
                        help="where frames are resized and quantized: in the capture thread (overlaps inference) "
                             "or in the inference loop (no work spent on frames a camera then drops)")
    parser.add_argument("--min-score", type=fraction_above_zero, default=None, metavar="P",
                        help="confidence floor: a frame whose best score is below P is reported as --unknown-label "
                             "(JSON lines, overlay, /status; the summary counts them)")
    parser.add_argument("--unknown-label", type=str, default=LoopOptions.unknown_label,
                        help="the label of frames below --min-score")
    parser.add_argument("--summary", type=Path, default=None, help="also write the run summary as JSON here")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_main(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    """The camera loop; SIGINT/SIGTERM stop it (the summary is still printed), errors reach ``run_main``."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)} \
        if threading.current_thread() is threading.main_thread() else {}
    grabber = server = None
    try:
        if args.summary:
            check_writable(args.summary, "--summary")
        if args.serve:
            check_exposure(*parse_host_port(args.serve), _token(args), args.serve_insecure)
        model_path, metadata = locate_model(args.model)
        if args.min_score is not None and (not args.unknown_label.strip() or args.unknown_label in metadata.labels):
            raise ToolkitError(f"--unknown-label {args.unknown_label!r}: "
                               + ("is one of the model's labels" if args.unknown_label.strip() else "is empty")
                               + f" (the model's: {', '.join(metadata.labels[:5])}); pick another name")
        classifier = Classifier(model_path, metadata, num_threads=args.threads)
        source = open_source(args.source, args.camera_size, fallback=args.fallback_source)
        retry = RetryPolicy(attempts=args.retries, first_delay_s=args.retry_delay)
        sinks = []
        if args.save_every:
            sinks.append(SaveEverySink(args.save_dir, args.save_every))
        if args.serve:
            server = _start_server(args, f"{model_path.name}: {', '.join(metadata.labels[:5])}", source.description)
            sinks.append(server)
        if not args.headless and display_available():
            sinks.append(WindowSink(stop))
        else:
            sinks.append(JsonLinesSink(sys.stdout))
        print(f"model {model_path} ({classifier.input_dtype.name} input, {interpreter_backend()}, "
              f"{args.threads or os.cpu_count()} threads); source {source.description}", file=sys.stderr, flush=True)
        print(this_cpu().notice(), file=sys.stderr, flush=True)
        prepare = classifier.input_tensor_rgb if PreprocessIn(args.preprocess_in) is PreprocessIn.CAPTURE_THREAD else None
        grabber = FrameGrabber(source, retry, loop=args.loop, prepare=prepare).start()
        options = LoopOptions(max_frames=args.max_frames, duration_s=args.duration, smoothing=args.smooth,
                              top_k=args.top_k or metadata.top_k, min_score=args.min_score,
                              unknown_label=args.unknown_label)
        summary = run_loop(classifier, grabber, options, sinks, stop)
        print(summary.one_line(), file=sys.stderr, flush=True)
        if args.summary:
            try:
                write_json_atomic(args.summary, summary.to_dict())
            except OSError as error:
                raise ToolkitError(f"--summary {args.summary}: cannot write ({error.strerror}); "
                                   "pick a writable path") from None
    except BrokenPipeError:
        # stdout closed by the reader (`... | head`): a normal way to end a pipeline. Point stdout at
        # /dev/null so that the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        if grabber is not None:
            grabber.stop()
        if server is not None:
            server.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _token(args: argparse.Namespace) -> str | None:
    return args.serve_token or os.environ.get(TOKEN_ENV) or None


def _start_server(args: argparse.Namespace, title: str, source: str) -> StreamServer:
    host, port = parse_host_port(args.serve)
    token = _token(args)
    server = StreamServer(host, port, title=title, source=source, max_clients=args.serve_max_clients, token=token,
                          allowed_hosts=tuple(args.serve_allow_host), insecure=args.serve_insecure).start()
    print(f"serving on {server.url}{' (token required: open it with ?token=TOKEN)' if token else ''}",
          file=sys.stderr, flush=True)
    if not is_loopback(host) and not token:
        print(f"notice: --serve-insecure: no authentication on {args.serve}; anyone who can reach this port sees "
              "the camera", file=sys.stderr, flush=True)
    return server


if __name__ == "__main__":
    sys.exit(main())
