"""The tail every command line shares: a user's error is one ``error:`` line, an interrupt ends cleanly.

``run_main(body)`` runs a command's work and turns what can end it into an exit code:

- :class:`ToolkitError` (bad input the user can fix): ``error: <message>`` on stderr, exit code 2;
- SIGINT or SIGTERM: raised as :class:`Interrupted` in the main thread, so every ``with`` block on the
  way out (staging folders, temporary folders) cleans up; then one line and exit code 128 + the signal
  number (130, 143), as a shell reports it. A second signal while cleaning up is ignored.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from typing import Callable, Iterator

from runtime.errors import ToolkitError

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived; a BaseException so that no ``except Exception`` swallows it."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_received: list[int] = []  # the signal that arrived, kept for check_interrupted()


_deferring: list[bool] = []  # non-empty inside signals_deferred(): a signal is noted, raised at its end


def _raise_interrupted(signum, _frame) -> None:
    for sig in _SIGNALS:  # clean-up on the way out must not be cut short by a second signal
        signal.signal(sig, signal.SIG_IGN)
    _received.append(signum)
    if not _deferring:
        raise Interrupted(signum)


def check_interrupted() -> None:
    """Raises :class:`Interrupted` again if a signal arrived whose exception was swallowed.

    Python runs a signal handler in whatever the main thread executes next; when that is a finalizer
    (``__del__``, a weakref callback, which TensorFlow's objects have), the exception it raises is printed
    as "ignored" and lost. Long loops and the final swap call this, so such a run still ends as interrupted.
    """
    if _received:
        raise Interrupted(_received[0])


def run_main(body: Callable[[], int], interrupted: str = "nothing was left half-written") -> int:
    """Runs ``body()`` and returns its exit code; errors and interrupts become one line and a code.

    Args:
        body: The command's work; returns the exit code for a normal end.
        interrupted: What the interrupt line adds after "interrupted by SIGTERM".
    """
    previous = {}
    _received.clear()
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, _raise_interrupted) for sig in _SIGNALS}
    try:
        return body()
    except ToolkitError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 2
    except Interrupted as stop:
        print(f"error: interrupted by {stop}; {interrupted}", file=sys.stderr, flush=True)
        return 128 + stop.signum
    finally:
        _received.clear()  # the interrupt belonged to this run; a later run in the same process starts clean
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def signals_deferred(raise_after: bool = True) -> Iterator[None]:
    """Holds an interrupt back while a folder is made and registered for clean-up, or OUT is swapped.

    Between ``mkdtemp`` returning and its ``with`` block owning the folder, or between the two renames of a
    swap, an exception would leave a folder behind or no OUT at all. A signal arriving inside is noted and
    raised as :class:`Interrupted` when the block ends (unless ``raise_after`` is False: a swap that
    completed has finished the run, and saying "interrupted, OUT as it was" would then be false). Python
    runs signal handlers in the main thread whatever thread the kernel picked, so a flag defers them where
    ``pthread_sigmask`` in one thread would not: TensorFlow's threads would still take the signal.
    """
    _deferring.append(True)
    try:
        yield
    finally:
        _deferring.pop()
    if raise_after and not _deferring:
        check_interrupted()
