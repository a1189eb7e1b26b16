"""The one exception type for errors a user can cause (bad paths, bad images, mismatched models)."""


class ToolkitError(Exception):
    """An error the user can fix: the message names the file and the fix, in one line.

    The command-line entry points print ``str(error)`` and exit non-zero; nothing else catches it.
    """
