"""The teacher's outputs on the training images, written by ``make convert`` for ``make kmodel``.

``make convert`` trains its head on cached block4 features, so the float model's outputs on every training
image (and the block4-conv head's 1x1-conv maps) cost it a pass of the head alone. ``make kmodel`` would
otherwise run the teacher's VGG blocks 1-4 on those images again: about 6 minutes on a CPU without bf16.
Before using them it runs the teacher on a few of the images and compares (:func:`check`); anything that
does not match (another model, another decode, another data set) falls back to the full pass.
"""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import numpy as np

from convert.schema import TEACHER_TARGETS_FILE

log = logging.getLogger(__name__)

PROBE_IMAGES = 4  # teacher runs make kmodel spends to check the cache
PROB_TOLERANCE = 1e-3  # max abs difference of a probability (float32 Keras on both sides; numeric noise ~1e-6)
MAP_TOLERANCE = 1e-2  # max abs difference of a map value over the maps' largest (float16 storage: ~5e-4)


def write(folder: Path, targets: dict[str, np.ndarray], files: list[str]) -> Path:
    """``targets`` (``log_probs`` (N, C) float32, optionally ``maps`` (N, H, W, K) float16) for the training
    images named by ``files`` (paths relative to the data root) -> ``folder/teacher_targets.npz``."""
    path = Path(folder) / TEACHER_TARGETS_FILE
    if len(files) != len(targets["log_probs"]):
        raise ValueError(f"{len(files)} files for {len(targets['log_probs'])} rows of teacher targets")
    with open(path, "wb") as handle:
        np.savez(handle, files=np.array(files), **targets)
    return path


def read(folder: Path, files: list[str], maps: bool) -> tuple[np.ndarray, np.ndarray | None] | None:
    """The cached (log-probabilities, maps or None) of ``files`` in their order, or None (with the reason
    logged) when there is no cache, it cannot be read, lacks one of the files or lacks the maps asked for."""
    path = Path(folder) / TEACHER_TARGETS_FILE
    if not path.is_file():
        log.info("%s: not there; the teacher runs on the training images", path)
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            cached_files = [str(name) for name in data["files"]]
            log_probs = data["log_probs"]
            cached_maps = data["maps"] if "maps" in data.files else None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        log.info("%s: unreadable (%s); the teacher runs on the training images", path, error)
        return None
    if maps and cached_maps is None:
        log.info("%s: holds no 1x1-conv maps; the teacher runs on the training images", path)
        return None
    row = {name: index for index, name in enumerate(cached_files)}
    missing = [name for name in files if name not in row]
    if missing or len(log_probs) != len(cached_files):
        log.info("%s: lacks %d of the training images (e.g. %s); the teacher runs on them all", path, len(missing),
                 missing[:1])
        return None
    rows = np.array([row[name] for name in files], dtype=np.int64)
    return log_probs[rows], (cached_maps[rows] if maps else None)


def check(cached: tuple[np.ndarray, np.ndarray | None], fresh: tuple[np.ndarray, np.ndarray | None]) -> str | None:
    """Why the cached targets of the probe images differ from the teacher's fresh outputs on them, or None.

    Probabilities must agree within :data:`PROB_TOLERANCE`, maps within :data:`MAP_TOLERANCE` of their
    largest value: far above the float noise of two runs of one model, far below what another model, resize
    or image gives."""
    cached_logs, cached_maps = cached
    fresh_logs, fresh_maps = fresh
    if cached_logs.shape != fresh_logs.shape:
        return f"{cached_logs.shape[1]} classes cached, the teacher has {fresh_logs.shape[1]}"
    prob_diff = float(np.abs(np.exp(cached_logs) - np.exp(fresh_logs)).max())
    if prob_diff > PROB_TOLERANCE:
        return f"probabilities differ by up to {prob_diff:.4f}"
    if cached_maps is not None and fresh_maps is not None:
        if cached_maps.shape != fresh_maps.shape:
            return f"maps of shape {cached_maps.shape[1:]} cached, the teacher's are {fresh_maps.shape[1:]}"
        scale = max(float(np.abs(fresh_maps.astype(np.float32)).max()), 1e-6)
        map_diff = float(np.abs(cached_maps.astype(np.float32) - fresh_maps.astype(np.float32)).max()) / scale
        if map_diff > MAP_TOLERANCE:
            return f"maps differ by up to {map_diff:.4f} of their largest value"
    return None
