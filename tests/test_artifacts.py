"""Atomic writes: readers never see half a file; a failed run leaves OUT as it was."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from convert.artifacts import StagingDir, check_out_folder, write_bytes_atomic
from runtime.errors import ToolkitError
from tests import ROOT


def test_write_bytes_atomic_leaves_no_temp(tmp_path):
    path = write_bytes_atomic(tmp_path / "a.bin", b"123")
    assert path.read_bytes() == b"123"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_artifacts_get_ordinary_permissions(tmp_path):
    import os
    import stat

    mask = os.umask(0o022)
    try:
        path = write_bytes_atomic(tmp_path / "a.bin", b"1")
        with StagingDir(tmp_path / "out") as staging:
            staging_mode = stat.S_IMODE(staging.path.stat().st_mode)
    finally:
        os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644 and staging_mode == 0o755


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    target = write_bytes_atomic(tmp_path / "a.bin", b"old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr("convert.artifacts.os.replace", broken_replace)
    with pytest.raises(OSError):
        write_bytes_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def _artifacts_folder(folder):
    """A folder as a conversion leaves it: its metadata.json says what wrote it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metadata.json").write_text(json.dumps({"format_version": 1, "task": "image-classification"}))
    (folder / "old.txt").write_text("old")
    return folder


def test_staging_commit_replaces_an_earlier_artifacts_folder(tmp_path):
    out = _artifacts_folder(tmp_path / "out")
    with StagingDir(out) as staging:
        (staging.path / "new.txt").write_text("new")
        staging.commit()
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_staging_commit_never_replaces_a_folder_it_did_not_write(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "photo.jpg").write_bytes(b"precious")  # appeared while the run was going on
    with pytest.raises(ToolkitError, match="holds no metadata.json.*new artifacts are in"):
        with StagingDir(out) as staging:
            (staging.path / "new.txt").write_text("new")
            staging.commit()
    assert (out / "photo.jpg").read_bytes() == b"precious"
    assert (staging.path / "new.txt").read_text() == "new"  # the finished run is kept, and said where


@pytest.mark.parametrize("make_out, message", [
    (lambda d: d / "data", "is the data folder"),
    (lambda d: d / "data" / "cat", "is the data folder .* or inside it"),
    (lambda d: d, "holds the data folder"),
    (lambda d: _file(d / "notes.txt"), "is a file, not a folder"),
    (lambda d: _file(d / "notes.txt") / "out", "is a file, so nothing can be written under it"),
    (lambda d: _file(d / "home" / "thesis.tex").parent, "not empty and holds no metadata.json"),
    (lambda d: _file(d / "out.rejected" / "x.jpg").parent.with_name("out"), "out.rejected: folder is not empty"),
    (lambda d: _link(d / "link", d / "elsewhere"), "is a symbolic link"),
    (lambda d: Path("/proc/vgg-edge-out"), "cannot write in /proc"),
])
def test_out_that_must_not_be_replaced_is_refused_and_untouched(tmp_path, make_out, message):
    data = tmp_path / "data"
    (data / "cat").mkdir(parents=True)
    (data / "cat" / "1.jpg").write_bytes(b"photo")
    out = make_out(tmp_path)
    before = _tree(tmp_path)
    with pytest.raises(ToolkitError, match=message) as info:
        check_out_folder(out, data)
    assert "\n" not in str(info.value)
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("make_out", [
    lambda d: d / "new" / "deeper",
    lambda d: _empty(d / "empty"),
    lambda d: _artifacts_folder(d / "earlier"),
])
def test_new_empty_or_earlier_artifacts_folders_are_accepted(tmp_path, make_out):
    out = make_out(tmp_path)
    before = _tree(tmp_path)
    check_out_folder(out, tmp_path / "data")
    assert _tree(tmp_path) == before  # the check itself writes nothing


def _tree(root):
    return sorted((str(p.relative_to(root)), p.is_dir() or p.read_bytes()) for p in root.rglob("*"))


def _file(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("mine")
    return path


def _empty(path):
    path.mkdir()
    return path


def _link(link, target):
    target.mkdir()
    link.symlink_to(target)
    return link


def test_staging_error_leaves_out_untouched(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with StagingDir(out) as staging:
            (staging.path / "half.bin").write_bytes(b"x")
            raise RuntimeError("conversion failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert (out / "old.txt").read_text() == "old"


def test_staging_reject_moves_aside(tmp_path):
    out = tmp_path / "out"
    with StagingDir(out) as staging:
        (staging.path / "report.md").write_text("fail")
        rejected = staging.reject(tmp_path / "out.rejected")
    assert not out.exists() and (rejected / "report.md").read_text() == "fail"


def test_every_package_folder_is_packaged():
    """pyproject.toml's packages.find must take convert/'s subpackages (convert.tflite, convert.k210) along."""
    import tomllib

    from setuptools import find_packages

    root = ROOT
    include = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    packaged = set(find_packages(root, include=include))
    folders = {p.parent.relative_to(root).as_posix().replace("/", ".") for p in root.glob("*/**/__init__.py")
               if not p.parent.relative_to(root).parts[0].startswith((".", "build"))}  # venvs, a wheel build
    assert {"convert", "convert.tflite", "convert.k210", "runtime", "calibration"} <= packaged
    assert {"tests", "tests.tflite", "tests.k210", "tests.runtime"} <= folders
    assert {f for f in folders - packaged if f.split(".")[0] != "tests"} == set()  # all but the tests installed
