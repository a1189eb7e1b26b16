"""Capture in its own thread: the newest camera frame only (no growing lag), every frame of a file.

A live camera keeps producing frames while the model runs; queueing them would make the output lag
further and further behind the scene. So for a live source the grabber keeps one slot and overwrites it
(counting the frames it dropped). A file source has no "now", so every frame is kept, with a short
read-ahead queue so that decoding overlaps inference.

A camera that fails to open or stops delivering is closed and reopened with exponential backoff; after
``RetryPolicy.attempts`` failures in a row the grabber gives up and ``get()`` raises the reason.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from runtime.choices import Choice
from runtime.errors import ToolkitError
from runtime.sources import CameraError, Frame, FrameSource

_READ_AHEAD = 2  # frames a file source decodes ahead of the model


class PreprocessIn(Choice):
    """Which thread turns frames into model inputs."""

    LOOP = "loop"  # in series with inference: no work spent on camera frames that are dropped
    CAPTURE_THREAD = "capture-thread"  # overlaps inference: the loop only invokes


@dataclass(frozen=True)
class RetryPolicy:
    """How a failing camera is retried.

    Attributes:
        attempts: Reopen attempts in a row before giving up.
        first_delay_s: Wait before the first reopen; doubled each time, up to ``max_delay_s``.
        max_delay_s: Longest wait between attempts.
    """

    attempts: int = 5
    first_delay_s: float = 0.5
    max_delay_s: float = 8.0

    def delays(self):
        delay = self.first_delay_s
        for _ in range(self.attempts):
            yield delay
            delay = min(delay * 2, self.max_delay_s)


class FrameGrabber:
    """Reads a source in a background thread; ``get()`` hands frames to the inference loop."""

    def __init__(self, source: FrameSource, retry: RetryPolicy = RetryPolicy(), loop: bool = False,
                 prepare: Callable[[np.ndarray], np.ndarray] | None = None):
        """
        Args:
            source: The frame source (not yet opened).
            retry: Reopen policy for live sources.
            loop: Start a finite source again at its end (a demo video on repeat).
            prepare: Turns a frame's RGB pixels into the model input in this thread, so that
                preprocessing overlaps inference instead of adding to it. The price with a camera much
                faster than the model is the work spent on frames that are then dropped.
        """
        self.source = source
        self.prepare = prepare
        self.retry = retry
        self.loop = loop and not source.live
        self.dropped = 0  # live frames overwritten before the loop took them
        self.reconnects = 0
        self._buffer: collections.deque[Frame] = collections.deque()
        self._cond = threading.Condition()
        self._finished = False
        self._error: ToolkitError | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)
        self._index = 0

    def start(self) -> "FrameGrabber":
        """Opens the source (retrying a camera) in the calling thread, so errors surface at once, then starts."""
        self._open_with_retry()
        self._thread.start()
        return self

    def get(self, timeout: float | None = None) -> Frame | None:
        """The next frame; None once a finite source has ended (or on timeout).

        Raises:
            ToolkitError: The source failed for good (a camera that did not come back, a corrupt file).
        """
        with self._cond:
            if not self._cond.wait_for(lambda: self._buffer or self._finished, timeout):
                return None
            if self._buffer:
                frame = self._buffer.popleft()
                self._cond.notify_all()
                return frame
            if self._error is not None:
                raise self._error
            return None

    @property
    def finished(self) -> bool:
        with self._cond:
            return self._finished and not self._buffer

    def stop(self) -> None:
        """Stops the thread and closes the source."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.source.close()

    def _open_with_retry(self) -> None:
        """Opens the source; a camera that fails is retried after growing delays, then given up on."""
        try:
            self.source.open()
            return
        except CameraError as error:
            last = error
        if not self.source.live:
            raise last
        for delay in self.retry.delays():
            if self._stop.wait(delay):
                raise ToolkitError(f"{self.source.description}: stopped while reconnecting")
            self.source.close()
            try:
                self.source.open()
                return
            except CameraError as error:
                last = error
        raise ToolkitError(
            f"{last} - gave up after {self.retry.attempts} retries; check the camera connection and --source"
        )

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    frame = self.source.read()
                except CameraError:
                    if not self.source.live:
                        raise
                    self.source.close()
                    self._open_with_retry()
                    self.reconnects += 1
                    continue
                if frame is None:
                    if self.loop and self._index > 0:
                        self.source.close()
                        self.source.open()
                        continue
                    break
                frame.index = self._index  # continuous numbering across reconnects and loops
                self._index += 1
                frame.grabbed_at = time.perf_counter()
                if self.prepare is not None:
                    frame.tensor = self.prepare(frame.image_rgb)
                    frame.preprocess_ms = (time.perf_counter() - frame.grabbed_at) * 1e3
                self._put(frame)
        except ToolkitError as error:
            with self._cond:
                self._error = error
        finally:
            with self._cond:
                self._finished = True
                self._cond.notify_all()

    def _put(self, frame: Frame) -> None:
        with self._cond:
            if self.source.live:
                self.dropped += len(self._buffer)
                self._buffer.clear()
            else:
                self._cond.wait_for(lambda: len(self._buffer) < _READ_AHEAD or self._stop.is_set())
            self._buffer.append(frame)
            self._cond.notify_all()
