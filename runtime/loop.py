"""The camera loop: capture -> preprocess -> infer -> postprocess -> output, timed per stage.

Every frame is timed with ``time.perf_counter()`` over the whole frame, split into the wait for a
frame (``capture_ms``), ``preprocess_ms`` (resize, normalize, quantize), ``invoke_ms`` (set the input,
run, read and dequantize the output) and ``postprocess_ms`` (smoothing, top-k, annotation, output).
``latency_ms`` is the sum of the last three: the time from having a frame to having its answer.
"""

from __future__ import annotations

import collections
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable, Protocol

import cv2
import numpy as np

from runtime.capture import FrameGrabber
from runtime.errors import ToolkitError
from runtime.files import check_writable
from runtime.interpreter import Classifier
from runtime.sources import Frame

_FPS_WINDOW = 30  # frames: the "fps" field is the loop rate over the most recent frames
_WARMUP_FRAMES = 20  # frames before the resident-memory baseline is taken (allocator and interpreter settle)
_GET_TIMEOUT_S = 0.25  # how often a waiting loop wakes up to look at the stop flag
# frames: percentiles in the summary cover at most the most recent frames, so that a service running for
# weeks keeps a bounded history.
_SUMMARY_WINDOW = 10_000


def _window() -> collections.deque:
    return collections.deque(maxlen=_SUMMARY_WINDOW)


@dataclass
class LoopOptions:
    """What bounds the loop and how scores are smoothed.

    Attributes:
        max_frames: Stop after this many frames (None: no limit).
        duration_s: Stop after this many seconds (None: no limit).
        smoothing: Average the scores over the last N frames (1: no smoothing).
        top_k: Classes reported per frame.
        min_score: The confidence floor: a frame whose best (smoothed) score is below it is reported as
            ``unknown_label`` (None: no floor). Most camera frames show none of the classes.
        unknown_label: The label of frames below the floor.
    """

    max_frames: int | None = None
    duration_s: float | None = None
    smoothing: int = 1
    top_k: int = 1
    min_score: float | None = None
    unknown_label: str = "unknown"


@dataclass
class FrameResult:
    """The answer for one frame and how long each stage took."""

    frame: Frame
    scores: np.ndarray  # smoothed class probabilities
    label: str
    score: float
    top: list[tuple[str, float]]
    capture_ms: float
    preprocess_ms: float
    invoke_ms: float
    postprocess_ms: float = 0.0
    fps: float = 0.0
    below_floor: bool = False  # the best score is under --min-score: ``label`` is the unknown label

    @property
    def latency_ms(self) -> float:
        return self.preprocess_ms + self.invoke_ms + self.postprocess_ms

    def to_record(self) -> dict:
        """The JSON line of ``--headless``. Field names are a stable interface: add, never rename."""
        record = {
            "frame": self.frame.index,
            "time": round(time.time(), 3),
            "source_time_s": round(self.frame.timestamp_s, 4),
            "label": self.label,
            "score": round(self.score, 4),
            "latency_ms": round(self.latency_ms, 2),
            "fps": round(self.fps, 2),
            "capture_ms": round(self.capture_ms, 2),
            "preprocess_ms": round(self.preprocess_ms, 2),
            "invoke_ms": round(self.invoke_ms, 2),
            "postprocess_ms": round(self.postprocess_ms, 2),
        }
        if len(self.top) > 1:
            record["top"] = [[label, round(score, 4)] for label, score in self.top]
        if self.below_floor:  # "label" is the unknown label; "score" stays the best class's
            record["below_min_score"] = True
            record["best_label"] = self.top[0][0]
        if self.frame.name:
            record["file"] = self.frame.name
        return record


class Sink(Protocol):
    """Somewhere results go: JSON lines, a window, saved images, the MJPEG server."""

    needs_annotation: bool

    def emit(self, result: FrameResult, annotated_bgr: np.ndarray | None) -> None: ...

    def close(self) -> None: ...


class ScoreSmoother:
    """Mean of the class scores over the last ``window`` frames."""

    def __init__(self, window: int):
        self._history: collections.deque[np.ndarray] = collections.deque(maxlen=max(1, window))

    def update(self, scores: np.ndarray) -> np.ndarray:
        self._history.append(scores)
        if len(self._history) == 1:
            return scores
        return np.mean(self._history, axis=0)


class FpsMeter:
    """Frames per second over the last ``_FPS_WINDOW`` frames, from their completion times."""

    def __init__(self, window: int = _FPS_WINDOW):
        self._times: collections.deque[float] = collections.deque(maxlen=window)

    def tick(self, now: float) -> float:
        self._times.append(now)
        if len(self._times) < 2:
            return 0.0
        return (len(self._times) - 1) / (self._times[-1] - self._times[0])


def annotate(frame_rgb: np.ndarray, result: FrameResult) -> np.ndarray:
    """A B, G, R copy of the frame with label, score, FPS and latency drawn in (for OpenCV and JPEG)."""
    canvas = cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR)
    scale = max(0.4, canvas.shape[1] / 800)
    thickness = max(1, round(scale * 2))
    lines = [f"{result.label} {result.score:.0%}", f"{result.fps:.1f} fps  {result.latency_ms:.0f} ms"]
    y = 0
    for text in lines:
        (width, height), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        y += height + base + 6
        cv2.rectangle(canvas, (0, y - height - base - 6), (width + 12, y + 2), (0, 0, 0), cv2.FILLED)
        cv2.putText(canvas, text, (6, y - base), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness,
                    cv2.LINE_AA)
    return canvas


class JsonLinesSink:
    """One JSON object per frame (see :meth:`FrameResult.to_record`), flushed at once for pipes."""

    needs_annotation = False

    def __init__(self, stream: IO[str]):
        self.stream = stream

    def emit(self, result: FrameResult, annotated_bgr: np.ndarray | None) -> None:
        self.stream.write(json.dumps(result.to_record()) + "\n")
        self.stream.flush()

    def close(self) -> None:
        pass


class SaveEverySink:
    """Writes every Nth annotated frame as ``frame_000123.jpg`` into a folder."""

    needs_annotation = True

    def __init__(self, folder: Path, every: int):
        self.folder = Path(folder)
        self.every = every
        check_writable(self.folder, "--save-dir", folder=True)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ToolkitError(f"--save-dir {self.folder}: cannot create the folder ({error.strerror}); "
                               "pick a writable folder") from None

    def emit(self, result: FrameResult, annotated_bgr: np.ndarray | None) -> None:
        if annotated_bgr is not None and result.frame.index % self.every == 0:
            path = self.folder / f"frame_{result.frame.index:06d}.jpg"
            tmp = path.with_suffix(".tmp.jpg")
            ok, encoded = cv2.imencode(".jpg", annotated_bgr)
            try:
                if not ok:
                    raise OSError("JPEG encoding failed")
                tmp.write_bytes(encoded.tobytes())
                tmp.replace(path)
            except OSError as error:  # e.g. the disk filled up or the folder was removed during the run
                tmp.unlink(missing_ok=True)
                raise ToolkitError(f"--save-dir {self.folder}: cannot write {path.name} "
                                   f"({error.strerror or error}); free space or pick another folder") from None

    def close(self) -> None:
        pass


class WindowSink:
    """An OpenCV window with the overlay; pressing q or Esc asks the loop to stop."""

    needs_annotation = True
    _TITLE = "vgg-edge"

    def __init__(self, stop: threading.Event):
        self.stop = stop

    def emit(self, result: FrameResult, annotated_bgr: np.ndarray | None) -> None:
        cv2.imshow(self._TITLE, annotated_bgr)
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
            self.stop.set()

    def close(self) -> None:
        cv2.destroyAllWindows()


def display_available() -> bool:
    """True where an OpenCV window can open: a GUI-enabled OpenCV build and a display to draw on."""
    import os

    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GUI:"):
            return line.split(":", 1)[1].strip().upper() not in ("NONE", "")
    return False


def resident_mb() -> float | None:
    """This process's resident memory (VmRSS) in MB; None where /proc is not there (a chroot, not Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _peak(peak: float | None, now: float | None) -> float | None:
    return now if peak is None else peak if now is None else max(peak, now)


@dataclass
class RunSummary:
    """What a run did, printed at the end (and written with ``--summary``)."""

    frames: int = 0
    stopped_by: str = ""
    wall_s: float = 0.0
    latencies_ms: collections.deque = field(default_factory=_window)
    stage_ms: dict[str, collections.deque] = field(default_factory=lambda: collections.defaultdict(_window))
    rss_mb_baseline: float | None = None  # None: unknown (no /proc)
    rss_mb_end: float | None = None
    rss_mb_peak: float | None = None
    dropped: int = 0
    reconnects: int = 0
    source_stats: dict = field(default_factory=dict)
    min_score: float | None = None  # the confidence floor of the run (None: none)
    unknown_label: str = "unknown"
    below_floor: int = 0  # frames reported as the unknown label

    def to_dict(self) -> dict:
        def pct(values, q):
            return round(float(np.percentile(values, q)), 2) if values else None

        return {
            "frames": self.frames,
            "stopped_by": self.stopped_by,
            "wall_s": round(self.wall_s, 3),
            "fps": round(self.frames / self.wall_s, 2) if self.wall_s > 0 else None,
            "percentile_frames": min(self.frames, _SUMMARY_WINDOW),
            "latency_ms": {"p50": pct(self.latencies_ms, 50), "p95": pct(self.latencies_ms, 95),
                           "max": pct(self.latencies_ms, 100)},
            "stages_ms_median": {name: pct(values, 50) for name, values in self.stage_ms.items()},
            "rss_mb": {"after_warmup": _rounded(self.rss_mb_baseline), "end": _rounded(self.rss_mb_end),
                       "peak": _rounded(self.rss_mb_peak), "warmup_frames": _WARMUP_FRAMES},
            "dropped_frames": self.dropped,
            "reconnects": self.reconnects,
            **({"min_score": self.min_score, "unknown_label": self.unknown_label,
                "frames_below_min_score": self.below_floor,
                "share_below_min_score": round(self.below_floor / self.frames, 4) if self.frames else None}
               if self.min_score is not None else {}),
            **self.source_stats,
        }

    def one_line(self) -> str:
        data = self.to_dict()
        latency = data["latency_ms"]
        return (f"summary: {data['frames']} frames in {data['wall_s']:.1f} s ({data['fps'] or 0:.1f} fps), "
                f"latency p50 {latency['p50']} ms p95 {latency['p95']} ms, stopped by {data['stopped_by']}, "
                f"dropped {data['dropped_frames']}, reconnects {data['reconnects']}, "
                + (f"RSS {data['rss_mb']['after_warmup']} -> {data['rss_mb']['end']} MB" if data["rss_mb"]["end"] is not None
                   else "RSS unknown (no /proc)")
                + (f", {data['frames_below_min_score']} frames ({100 * (data['share_below_min_score'] or 0):.1f}%) "
                   f"below --min-score {self.min_score:g} ({self.unknown_label})" if self.min_score is not None else ""))


def classify_frame(classifier: Classifier, frame: Frame, smoother: ScoreSmoother, top_k: int,
                   capture_ms: float, min_score: float | None = None, unknown_label: str = "unknown") -> FrameResult:
    """Preprocesses, runs and reads one frame (no output): the loop's per-frame work, timed. Below
    ``min_score`` the frame's label is ``unknown_label``."""
    t0 = time.perf_counter()
    if frame.tensor is None:
        frame.tensor = classifier.input_tensor_rgb(frame.image_rgb)
        frame.preprocess_ms = (time.perf_counter() - t0) * 1e3
    tensor = frame.tensor
    t1 = time.perf_counter()
    raw = classifier.invoke(tensor)
    t2 = time.perf_counter()
    scores = smoother.update(raw)
    order = np.argsort(scores)[::-1][:max(1, top_k)]
    labels = classifier.metadata.labels
    top = [(labels[i], float(scores[i])) for i in order]
    below = min_score is not None and top[0][1] < min_score
    return FrameResult(frame=frame, scores=scores, label=unknown_label if below else top[0][0], score=top[0][1],
                       top=top, capture_ms=capture_ms, preprocess_ms=frame.preprocess_ms,
                       invoke_ms=(t2 - t1) * 1e3, postprocess_ms=(time.perf_counter() - t2) * 1e3,
                       below_floor=below)


def run_loop(classifier: Classifier, grabber: FrameGrabber, options: LoopOptions, sinks: list[Sink],
             stop: threading.Event, on_result: Callable[[FrameResult], None] | None = None) -> RunSummary:
    """Runs frames from a started grabber through the classifier until a bound, the end, or ``stop``.

    One function on purpose: it is the frame loop (capture -> preprocess -> infer -> postprocess -> sinks ->
    timing), and reading its stages in order, with the per-frame timing around them, is the point.

    Args:
        classifier: The model with its metadata.
        grabber: A started :class:`FrameGrabber`.
        options: Bounds, smoothing, top-k.
        sinks: Outputs; frames are annotated only if one of them needs it.
        stop: Set by a signal handler (or a window's q key) to end the run cleanly.
        on_result: Called with every result (tests and the benchmark use it).

    Returns:
        The run summary. Raises ToolkitError if the source fails for good.
    """
    summary = RunSummary(min_score=options.min_score, unknown_label=options.unknown_label)
    smoother = ScoreSmoother(options.smoothing)
    fps_meter = FpsMeter()
    annotate_frames = any(sink.needs_annotation for sink in sinks)
    started = time.perf_counter()
    summary.rss_mb_baseline = resident_mb()
    try:
        while True:
            if stop.is_set():
                summary.stopped_by = "signal"
                break
            if options.max_frames is not None and summary.frames >= options.max_frames:
                summary.stopped_by = "max-frames"
                break
            if options.duration_s is not None and time.perf_counter() - started >= options.duration_s:
                summary.stopped_by = "duration"
                break
            wait_start = time.perf_counter()
            frame = grabber.get(timeout=_GET_TIMEOUT_S)
            if frame is None:
                if grabber.finished:
                    summary.stopped_by = "end of source"
                    break
                continue  # timed out waiting: look at the stop conditions again
            capture_ms = (time.perf_counter() - wait_start) * 1e3
            result = classify_frame(classifier, frame, smoother, options.top_k, capture_ms, options.min_score,
                                    options.unknown_label)
            post_start = time.perf_counter()
            result.fps = fps_meter.tick(post_start)
            annotated = annotate(frame.image_rgb, result) if annotate_frames else None
            result.postprocess_ms += (time.perf_counter() - post_start) * 1e3
            for sink in sinks:
                sink.emit(result, annotated)
            if on_result is not None:
                on_result(result)
            summary.frames += 1
            summary.below_floor += result.below_floor
            summary.latencies_ms.append(result.latency_ms)
            for name in ("capture", "preprocess", "invoke", "postprocess"):
                summary.stage_ms[name].append(getattr(result, f"{name}_ms"))
            if summary.frames == _WARMUP_FRAMES:
                summary.rss_mb_baseline = resident_mb()
            if summary.frames % 100 == 0:
                summary.rss_mb_peak = _peak(summary.rss_mb_peak, resident_mb())
    finally:
        summary.wall_s = time.perf_counter() - started
        summary.rss_mb_end = resident_mb()
        summary.rss_mb_peak = _peak(summary.rss_mb_peak, summary.rss_mb_end)
        summary.dropped = grabber.dropped
        summary.reconnects = grabber.reconnects
        summary.source_stats = grabber.source.stats()
        for sink in sinks:
            sink.close()
    return summary
