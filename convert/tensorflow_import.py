"""Importing TensorFlow without its start-up noise, for the command lines.

On import TensorFlow's C++ side writes lines such as "All log messages before absl::InitializeLog() is
called are written to STDERR" and "Could not find cuda drivers", and its first device query
"failed call to cuInit", straight to file descriptor 2, whatever ``TF_CPP_MIN_LOG_LEVEL`` says. They
would stand before every one-line ``error:`` of ours. Later lines (while training and converting) obey
``TF_CPP_MIN_LOG_LEVEL``, which is set before the import. Only the command lines call this (never at
import time); ``--verbose`` keeps everything.
"""

from __future__ import annotations

import contextlib
import os


@contextlib.contextmanager
def _stderr_silenced():
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tensorflow(verbose: bool = False) -> None:
    """Imports TensorFlow, Keras and the TFLite interpreter once, silencing the C++ start-up lines.

    Python-level errors (a broken install) still raise after stderr is restored, so they are seen.

    Args:
        verbose: Keep TensorFlow's own logging (``-v``): nothing is silenced.
    """
    if verbose:
        import tensorflow  # noqa: F401
        return
    # 3: C++ errors too. TensorFlow logs harmless ones at that level while it trains, e.g. "NodeDef mentions
    # attribute use_unbounded_threadpool which is not in the op definition" for each tf.data map of the head's
    # training; a real failure still raises in Python. A value the user set is kept.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _stderr_silenced():
        import keras  # noqa: F401
        import tensorflow as tf

        try:
            import ai_edge_litert.interpreter  # noqa: F401
        except ImportError:
            pass
        tf.config.list_physical_devices("GPU")  # the cuInit line comes with the first device query
