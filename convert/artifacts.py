"""Atomic artifact writing and file fingerprints."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from calibration.select import file_sha256 as sha256_file  # one hashing helper for manifests and artifacts


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: Path, data: bytes) -> Path:
    """Writes a file through a temporary sibling and ``os.replace``: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; artifacts are meant to be copied and shared
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


class StagingDir:
    """A run writes into a hidden sibling of OUT; only a finished run replaces OUT.

    ``commit()`` swaps the staging folder into place (the old OUT is removed only after the new one is
    there); ``reject(dest)`` moves it aside (for a run that failed its drift gate) so OUT stays untouched;
    leaving the ``with`` block without either removes it.
    """

    def __init__(self, out: Path):
        self.out = Path(out)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.staging-", dir=self.out.parent))
        os.chmod(self.path, 0o777 & ~_umask())  # mkdtemp makes 0700; OUT is meant to be shared
        self._done = False

    def __enter__(self) -> "StagingDir":
        return self

    def __exit__(self, *exc) -> None:
        if not self._done:
            shutil.rmtree(self.path, ignore_errors=True)

    def _swap_into(self, dest: Path) -> Path:
        old = None
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
            os.replace(dest, old)
        os.replace(self.path, dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        self._done = True
        return dest

    def commit(self) -> Path:
        return self._swap_into(self.out)

    def reject(self, dest: Path) -> Path:
        return self._swap_into(dest)
