"""The one exception type for errors a user can cause (bad paths, bad images, mismatched models), and the
one-line form of a download failure."""

import re


class ToolkitError(Exception):
    """An error the user can fix: the message names the file and the fix, in one line.

    The command-line entry points print ``str(error)`` and exit non-zero; nothing else catches it.
    """


def download_failure(error: Exception) -> str:
    """A download error in one short line: its first line with any URL shortened to ``<url>`` (keras' message
    starts with the whole URL, which pushed the cause itself out of a 160-character notice)."""
    line = (str(error).splitlines() or [type(error).__name__])[0]
    return re.sub(r"https?://\S+?(:?)(\s|$)", r"<url>\1\2", line)[:160]
