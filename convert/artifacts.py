"""Atomic artifact writing and file fingerprints."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from calibration.select import file_sha256 as sha256_file  # one hashing helper for manifests and artifacts
from runtime.files import umask, write_bytes_atomic, write_json_atomic, write_text_atomic  # noqa: F401


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
        os.chmod(self.path, 0o777 & ~umask())  # mkdtemp makes 0700; OUT is meant to be shared
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
