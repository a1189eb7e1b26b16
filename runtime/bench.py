"""``python -m runtime.bench``: what the camera loop costs on top of the model, and thread scaling.

1. The real loop (``run_loop`` with JSON lines written to /dev/null) on a video file, once with
   preprocessing in the loop and once in the capture thread: per-frame medians of capture wait,
   preprocess, invoke and postprocess, and the loop's FPS against 1 / median invoke time.
2. The int8 model's invoke latency at 1, 2 and all threads (median of ``--repeats``).

Timings on a shared machine are noisy: compare numbers from one run, not across runs.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from runtime.argtypes import OneLineParser, int_in_range, non_negative_int, positive_int
from runtime.capture import FrameGrabber, PreprocessIn
from runtime.cli import run_main
from runtime.cpu import this_cpu
from runtime.errors import ToolkitError
from runtime.files import write_json_atomic
from runtime.interpreter import Classifier, TFLiteModel, interpreter_backend
from runtime.loop import JsonLinesSink, LoopOptions, run_loop
from runtime.metadata import DEFAULT_ARTIFACTS, INT8_TFLITE_FILE, locate_model
from runtime.sources import VideoFileSource
from runtime.timing import time_calls

BENCH_FILE = "bench_runtime.json"
LOOP_OVERHEAD_GOAL = 0.05  # the loop may add at most 5% on top of the model's invoke time


def bench_loop(model_path: Path, video: Path, frames: int, warmup: int, threads: int | None,
               mode: PreprocessIn, isolated_invoke_ms: float) -> dict:
    """Runs the real loop over ``warmup + frames`` frames of a video; statistics over the last ``frames``."""
    model_path, metadata = locate_model(model_path)
    classifier = Classifier(model_path, metadata, num_threads=threads)
    prepare = classifier.input_tensor_rgb if mode is PreprocessIn.CAPTURE_THREAD else None
    grabber = FrameGrabber(VideoFileSource(video), loop=True, prepare=prepare).start()
    results = []
    completed: list[float] = []

    def record(result):
        results.append(result)
        completed.append(time.perf_counter())

    with open(os.devnull, "w") as devnull:
        try:
            run_loop(classifier, grabber, LoopOptions(max_frames=warmup + frames), [JsonLinesSink(devnull)],
                     threading.Event(), on_result=record)
        finally:
            grabber.stop()
    measured = results[warmup:]
    stages = {name: float(np.median([getattr(r, f"{name}_ms") for r in measured]))
              for name in ("capture", "preprocess", "invoke", "postprocess")}
    loop_fps = (len(measured) - 1) / (completed[-1] - completed[warmup])
    invoke_fps = 1e3 / stages["invoke"]
    isolated_fps = 1e3 / isolated_invoke_ms
    frame_shape = measured[0].frame.image_rgb.shape
    return {
        "preprocess_in": mode.value,
        "frame_size": f"{frame_shape[1]}x{frame_shape[0]}",
        "frames": len(measured),
        "stages_ms_median": {k: round(v, 3) for k, v in stages.items()},
        "latency_ms_median": round(float(np.median([r.latency_ms for r in measured])), 3),
        "latency_ms_p95": round(float(np.percentile([r.latency_ms for r in measured], 95)), 3),
        "loop_fps": round(loop_fps, 2),
        "invoke_only_fps": round(invoke_fps, 2),
        "loop_overhead": round(invoke_fps / loop_fps - 1, 4),
        # Against an invoke with nothing else running (the thread sweep): includes what the capture
        # thread's decoding takes away from the interpreter's threads.
        "overhead_vs_isolated_invoke": round(isolated_fps / loop_fps - 1, 4),
    }


def model_size_copy(video: Path, out: Path, width: int, height: int, max_frames: int = 300) -> Path:
    """The first frames of ``video`` resized to the model's input size: the loop with nothing to resize."""
    capture = cv2.VideoCapture(str(video))
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), 15.0, (width, height))
    try:
        for _ in range(max_frames):
            ok, frame_bgr = capture.read()
            if not ok:
                break
            writer.write(cv2.resize(frame_bgr, (width, height), interpolation=cv2.INTER_AREA))
    finally:
        capture.release()
        writer.release()
    return out


def bench_threads(model_path: Path, metadata, repeats: int) -> list[dict]:
    """Median invoke latency of the model at 1, 2 and all cores (a fixed mid-grey input)."""
    counts = sorted({1, 2, os.cpu_count() or 1})
    rows = []
    for count in counts:
        model = TFLiteModel(model_path, num_threads=count)
        tensor = model.input_tensor(np.full((metadata.input.height, metadata.input.width, 3), 128, np.float32))
        latency = time_calls(lambda: model.invoke(tensor), repeats)
        rows.append({"threads": count, "invoke_ms_median": round(latency.median_ms, 2),
                     "invoke_ms_p95": round(latency.p95_ms, 2)})
    return rows


def render(report: dict) -> str:
    lines = [f"runtime bench: {report['model']} on {report['machine']} ({report['interpreter']})",
             *([report["cpu"]["notice"]] if "cpu" in report else []), "",
             "| preprocess in | frame | capture | preprocess | invoke | postprocess | loop fps | 1/invoke fps "
             "| overhead | vs isolated invoke |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in report["loop"]:
        s = row["stages_ms_median"]
        lines.append(f"| {row['preprocess_in']} | {row['frame_size']} | {s['capture']:.2f} | {s['preprocess']:.2f} | "
                     f"{s['invoke']:.2f} | {s['postprocess']:.2f} | {row['loop_fps']:.2f} | {row['invoke_only_fps']:.2f} | "
                     f"{row['loop_overhead']:+.1%} | {row['overhead_vs_isolated_invoke']:+.1%} |")
    lines += ["", "| threads | invoke ms (median) | p95 |", "|---|---|---|"]
    lines += [f"| {row['threads']} | {row['invoke_ms_median']:.2f} | {row['invoke_ms_p95']:.2f} |" for row in report["threads"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m runtime.bench", description=__doc__.splitlines()[0],
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEFAULT_ARTIFACTS,
                        help=f"artifacts folder (its {INT8_TFLITE_FILE}) or a .tflite")
    parser.add_argument("--video", type=Path, required=True, help="video file the loop reads (make camera builds one)")
    parser.add_argument("--frames", type=int_in_range(2, 1_000_000, "a rate needs two frames"), default=200, help="frames measured per loop run")
    parser.add_argument("--warmup", type=non_negative_int, default=20, help="frames run before measuring")
    parser.add_argument("--repeats", type=positive_int, default=30, help="invokes per thread count")
    parser.add_argument("--threads", type=positive_int, default=None, help="interpreter threads in the loop runs; None = all")
    parser.add_argument("--out", type=Path, default=None, help=f"JSON report (default: {BENCH_FILE} beside the model)")
    args = parser.parse_args(argv)

    def body() -> int:
        model_path, metadata = locate_model(args.model)
        if not args.video.is_file():
            raise ToolkitError(f"{args.video}: no such video; build it with `make demo-video` or pass --video")
        cpu = this_cpu()
        print(cpu.notice(), flush=True)
        threads = bench_threads(model_path, metadata, args.repeats)
        loop_threads = args.threads or os.cpu_count()
        isolated_ms = next(row["invoke_ms_median"] for row in threads if row["threads"] == loop_threads)
        with tempfile.TemporaryDirectory() as tmp:
            small = model_size_copy(args.video, Path(tmp) / "model_size.avi", metadata.input.width, metadata.input.height)
            runs = [(args.video, PreprocessIn.LOOP), (args.video, PreprocessIn.CAPTURE_THREAD), (small, PreprocessIn.LOOP)]
            loop = [bench_loop(model_path, video, args.frames, args.warmup, args.threads, mode, isolated_ms)
                    for video, mode in runs]
        report = {
            "model": str(model_path),
            "machine": f"{cpu.name}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}",
            "cpu": cpu.to_dict(),
            "interpreter": interpreter_backend(),
            "python": platform.python_version(),
            "loop_threads": loop_threads,
            "goal_loop_overhead": LOOP_OVERHEAD_GOAL,
            "loop": loop,
            "threads": threads,
        }
        out = args.out or model_path.parent / BENCH_FILE
        write_json_atomic(out, report)
        print(render(report))
        print(f"\nwrote {out}")
        return 0

    return run_main(body)


if __name__ == "__main__":
    sys.exit(main())
