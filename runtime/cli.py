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


def _raise_interrupted(signum, _frame) -> None:
    for sig in _SIGNALS:  # clean-up on the way out must not be cut short by a second signal
        signal.signal(sig, signal.SIG_IGN)
    raise Interrupted(signum)


def run_main(body: Callable[[], int], interrupted: str = "nothing was left half-written") -> int:
    """Runs ``body()`` and returns its exit code; errors and interrupts become one line and a code.

    Args:
        body: The command's work; returns the exit code for a normal end.
        interrupted: What the interrupt line adds after "interrupted by SIGTERM".
    """
    previous = {}
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
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Holds SIGINT and SIGTERM back while a folder is made and registered for clean-up.

    Between ``mkdtemp`` returning and its ``with`` block owning the folder, an interrupt would leave it
    behind; held back, it is delivered (and raised) as soon as the block ends, when the clean-up is in place.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
