"""Atomic artifact writing, file fingerprints, and the rule for which folders a run may replace."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from calibration.select import file_sha256 as sha256_file  # one hashing helper for manifests and artifacts
from runtime.cli import check_interrupted, signals_deferred
from runtime.errors import ToolkitError
from runtime.files import check_writable, umask, write_bytes_atomic, write_json_atomic, write_text_atomic  # noqa: F401
from runtime.metadata import METADATA_FILE

REJECTED_SUFFIX = ".rejected"  # a run that fails its drift gate writes OUT.rejected instead of OUT


def rejected_path(out: Path) -> Path:
    """Where a run that failed its drift gate puts its artifacts: ``OUT.rejected`` beside OUT."""
    return out.with_name(out.name + REJECTED_SUFFIX)


def is_artifacts_folder(folder: Path) -> bool:
    """True when ``folder`` holds a ``metadata.json`` that a conversion wrote (so a new run may replace it)."""
    try:
        data = json.loads((folder / METADATA_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("task") == "image-classification" and "format_version" in data


def _replace_refusal(dest: Path) -> str | None:
    """Why a run must not replace ``dest``, or None when it may (missing, empty, or an artifacts folder)."""
    if dest.is_symlink():
        return f"{dest}: is a symbolic link; pass the folder it points to, or a new folder"
    if not dest.exists():
        return None
    if not dest.is_dir():
        return f"{dest}: is a file, not a folder; pass a new or empty folder as --out (OUT=), nothing was changed"
    if not any(dest.iterdir()) or is_artifacts_folder(dest):
        return None
    return (f"{dest}: folder is not empty and holds no {METADATA_FILE} written by `make convert`; "
            "pass a new or empty folder as --out (OUT=), nothing was changed")


def check_out_folder(out: Path, data: Path | None = None) -> None:
    """Refuses, before any work, an OUT that a run could not write or must not replace.

    A run replaces OUT (and, when its drift gate fails, ``OUT.rejected``) only where that folder is new,
    empty, or one a conversion wrote before (recognised by its ``metadata.json``). OUT may not be the data
    folder, lie inside it, or hold it. OUT's parent must be writable.

    Args:
        out: The artifacts folder asked for.
        data: The data root (None when there is none, e.g. a data set fetched later).

    Raises:
        ToolkitError: One line naming the folder and the fix; nothing on disk was changed.
    """
    out_abs = Path(os.path.abspath(out))
    if data is not None:
        out_real, data_real = out_abs.resolve(), Path(os.path.abspath(data)).resolve()
        if out_real == data_real or data_real in out_real.parents:
            raise ToolkitError(f"{out}: the artifacts folder is the data folder {data} or inside it; "
                               "pass an --out (OUT=) outside the data, nothing was changed")
        if out_real in data_real.parents:
            raise ToolkitError(f"{out}: the artifacts folder holds the data folder {data}; "
                               "pass an --out (OUT=) that does not contain the data, nothing was changed")
    for dest in (out_abs, rejected_path(out_abs)):
        reason = _replace_refusal(dest)
        if reason:
            raise ToolkitError(reason)
    if out_abs.parent.is_file():
        raise ToolkitError(f"{out}: {out_abs.parent} is a file, so nothing can be written under it; "
                           "pick another --out (OUT=)")
    check_writable(out_abs.parent, "--out", folder=True)


class StagingDir:
    """A run writes into a hidden sibling of OUT; only a finished run replaces OUT.

    ``commit()`` swaps the staging folder into place (the old OUT is removed only after the new one is
    there, and only if it is still new, empty or an artifacts folder); ``reject(dest)`` does the same into
    ``dest`` (for a run that failed its drift gate) so OUT stays untouched; leaving the ``with`` block
    without either removes the staging folder.
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
        reason = _replace_refusal(dest)  # checked at the start of the run too; something may have changed since
        if reason:
            self._done = True  # keep the finished artifacts: the user may want them
            raise ToolkitError(f"{reason} (it changed during the run; the new artifacts are in {self.path})")
        old = None
        check_interrupted()  # an interrupt that a finalizer swallowed must not let the run replace OUT
        with signals_deferred(raise_after=False):  # an interrupt between the two renames would leave no OUT
            if dest.exists():
                old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
                os.replace(dest, old)
            os.replace(self.path, dest)
            self._done = True
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return dest

    def commit(self) -> Path:
        return self._swap_into(self.out)

    def reject(self, dest: Path) -> Path:
        return self._swap_into(dest)
