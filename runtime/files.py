"""Atomic file writing, shared by the runtime and the converter: readers never see half a file."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from runtime.errors import ToolkitError


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: Path, data: bytes) -> Path:
    """Writes a file through a temporary sibling and ``os.replace``: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes 0600; artifacts are meant to be copied and shared
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(path: Path, payload: Any) -> Path:
    return write_bytes_atomic(path, (json.dumps(payload, indent=2, sort_keys=False) + "\n").encode("utf-8"))


def write_text_atomic(path: Path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(path.anchor or ".")


def check_writable(path: Path, flag: str, folder: bool = False) -> None:
    """Refuses, before a run, an output path that could not be written at its end.

    Args:
        path: A file to be written (``folder=False``) or a folder to be filled (``folder=True``).
        flag: The command-line flag that named it, for the message.
        folder: Whether ``path`` is a folder.

    Raises:
        ToolkitError: One line naming the path, why, and the flag to change.
    """
    path = Path(os.path.abspath(path))
    if folder and path.exists() and not path.is_dir():
        raise ToolkitError(f"{flag} {path}: is a file, not a folder; pass a folder")
    if not folder and path.is_dir():
        raise ToolkitError(f"{flag} {path}: is a folder; pass a file path")
    existing = _nearest_existing(path if folder else path.parent)
    if not existing.is_dir():
        raise ToolkitError(f"{flag} {path}: {existing} is a file, so nothing can be written under it; pick another path")
    try:  # a real write: os.access says yes to root even on a read-only file system
        handle, probe = tempfile.mkstemp(prefix=".write-test-", dir=existing)
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise ToolkitError(f"{flag} {path}: cannot write in {existing} ({error.strerror}); pick a writable path") from None
