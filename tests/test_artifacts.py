"""Atomic writes: readers never see half a file; a failed run leaves OUT as it was."""

from __future__ import annotations

import pytest

from convert.artifacts import StagingDir, write_bytes_atomic


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


def test_staging_commit_replaces_out(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with StagingDir(out) as staging:
        (staging.path / "new.txt").write_text("new")
        staging.commit()
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


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
