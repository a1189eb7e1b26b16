"""The converter's command line: bad input gives one line, a non-zero exit and nothing on disk."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from convert.__main__ import build_parser, main
from tests import ROOT
from tests.conftest import make_tree

_RUN_LIMIT_S = 300  # seconds: a tiny conversion reaches its staging folder in well under this


def _run(capsys, argv):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.err.strip().splitlines()


@pytest.mark.parametrize(
    "setup, extra, message",
    [
        (lambda root: None, ["--data", "{root}/nope"], "data folder not found"),
        (lambda root: make_tree(root, {"cat": 3}, "train") and make_tree(root, {"cat": 2}, "test"), [],
         "at least two class folders"),
        (lambda root: _tree(root), ["--calib", "50"], "50 calibration images asked for but only 12"),
        (lambda root: _tree(root), ["--weights", "{root}/missing.weights.h5"], "weights file not found"),
        (lambda root: _tree(root), ["--arch", "vgg19", "--weights", "hed"], "hed weights exist only for vgg16"),
        (lambda root: _tree(root), ["--head", "imagenet", "--weights", "hed", "--input-size", "224"],
         "no fc6/fc7/predictions"),
        (lambda root: _tree(root), ["--head", "block4-conv", "--fine-tune", "on", "--weights", "hed"],
         "--fine-tune on trains block5"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, setup, extra, message):
    root = tmp_path / "data"
    setup(root)
    out = tmp_path / "out"
    argv = ["--data", str(root), "--out", str(out), "--input-size", "32", "--calib", "4"]
    argv += [arg.format(root=root) for arg in extra]
    code, err = _run(capsys, argv)
    assert code == 2
    errors = [line for line in err if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0] == err[-1] and message in errors[0], err  # progress bars may precede it
    assert not any("Traceback" in line for line in err)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name != "data"] == []  # no staging leftovers


def _tree(root):
    make_tree(root, {"cat": 6, "dog": 6}, "train")
    make_tree(root, {"cat": 2, "dog": 2}, "test", start_seed=50)


def test_flags_are_kebab_case_with_choices():
    parser = build_parser()
    flags = [option for action in parser._actions for option in action.option_strings if option.startswith("--")]
    assert all("_" not in flag for flag in flags)
    head = next(action for action in parser._actions if "--head" in action.option_strings)
    assert [choice.value for choice in head.choices] == ["auto", "gap", "flatten-mlp", "block4-conv", "imagenet"]


def test_invalid_choice_exits_non_zero(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--io", "int4"])
    assert info.value.code == 2


def _one_error_line(err: list[str], message: str) -> None:
    errors = [line for line in err if "error: " in line]
    assert len(errors) == 1 and errors[0] == err[-1] and message in errors[0], err  # progress bars may precede it
    assert not any("Traceback" in line or "absl" in line or "cuda" in line.lower() for line in err), err


@pytest.mark.parametrize("flag, value", [
    ("--max-train", "-3"), ("--max-train", "0"), ("--max-test", "-1"), ("--input-size", "7"),
    ("--input-size", "100000"), ("--seed", "-1"), ("--seed", str(2**32)), ("--float-tflite-eval", "-5"),
    ("--learning-rate", "nan"), ("--learning-rate", "-1"), ("--learning-rate", "inf"), ("--l2", "-1"),
    ("--dropout", "1"), ("--test-fraction", "1"), ("--test-fraction", "0"), ("--min-agreement", "1.5"),
    ("--calib", "0"), ("--epochs", "0"), ("--batch-size", "-2"), ("--debug-images", "0"), ("--threads", "0"),
])
def test_bad_numeric_flag_is_one_line_before_any_work(tmp_path, capsys, flag, value):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as info:
        main(["--data", str(tmp_path), "--out", str(out), flag, value])
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2
    assert len(err) == 1 and err[0].startswith("python -m convert: error: argument " + flag) and value in err[0], err
    assert not out.exists()


def test_out_equal_to_the_data_folder_is_refused_and_the_photos_survive(tmp_path, capsys):
    root = tmp_path / "data"
    _tree(root)
    before = sorted((p, p.read_bytes()) for p in root.rglob("*.jpg"))
    for out in (root, root / "train", tmp_path):
        code, err = _run(capsys, ["--data", str(root), "--out", str(out), "--input-size", "32", "--calib", "4"])
        assert code == 2
        _one_error_line(err, "the data folder")
        assert sorted((p, p.read_bytes()) for p in root.rglob("*.jpg")) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_a_folder_the_converter_did_not_write_is_refused_and_untouched(tmp_path, capsys):
    root = tmp_path / "data"
    _tree(root)
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("three years of work")
    file_out = tmp_path / "notes.txt"
    file_out.write_text("notes")
    for out, message in ((home, "holds no metadata.json written by `make convert`"), (file_out, "is a file")):
        code, err = _run(capsys, ["--data", str(root), "--out", str(out), "--input-size", "32", "--calib", "4"])
        assert code == 2
        _one_error_line(err, message)
    assert [p.name for p in home.iterdir()] == ["thesis.tex"] and file_out.read_text() == "notes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "home", "notes.txt"]


def test_a_class_whose_images_all_fail_to_decode_is_refused(tmp_path, capsys):
    root = tmp_path / "data"
    _tree(root)
    for path in (root / "train" / "dog").iterdir():
        path.write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    out = tmp_path / "out"
    code, err = _run(capsys, ["--data", str(root), "--out", str(out), "--input-size", "32", "--calib", "4",
                              "--weights", "hed"])
    assert code == 2
    _one_error_line(err, "class 'dog' has 0 usable train image(s) of 6 (6 undecodable")
    assert f"{root / 'train' / 'dog'}:" in err[-1]
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_an_empty_calibration_manifest_is_one_line(tmp_path, capsys):
    root = tmp_path / "data"
    _tree(root)
    manifest = tmp_path / "manifest.json"
    manifest.write_text('{"version": 1, "items": []}')
    code, err = _run(capsys, ["--data", str(root), "--out", str(tmp_path / "out"), "--input-size", "32",
                              "--calib", "4", "--weights", "hed", "--calib-manifest", str(manifest)])
    assert code == 2
    _one_error_line(err, "lists no images")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_an_interrupt_removes_staging_and_work_folders_and_keeps_out(tmp_path, sig, code):
    """The signal comes while the run is writing its staging folder: the worst moment for leftovers."""
    root = tmp_path / "data"
    make_tree(root, {"cat": 12, "dog": 12}, "train")
    make_tree(root, {"cat": 4, "dog": 4}, "test", start_seed=100)
    out = tmp_path / "out"
    out.mkdir()
    (out / "metadata.json").write_text('{"format_version": 1, "task": "image-classification"}')
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-m", "convert", "--data", str(root), "--out", str(out), "--input-size", "32",
         "--calib", "4", "--weights", "hed", "--epochs", "1", "--float-tflite-eval", "2", "--debug-images", "1"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TMPDIR": str(scratch)})
    try:
        deadline = time.monotonic() + _RUN_LIMIT_S
        while process.poll() is None and time.monotonic() < deadline and not (
                list(tmp_path.glob(".out.staging-*")) and list(scratch.glob("convert-work-*"))):
            time.sleep(0.02)
        assert process.poll() is None, "the run ended before its staging and work folders could be caught"
        process.send_signal(sig)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    lines = err.strip().splitlines()
    assert process.returncode == code, (process.returncode, err)
    _one_error_line(lines, f"interrupted by {signal.Signals(sig).name}; staging and work folders removed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "out", "tmp"]
    assert list(scratch.iterdir()) == []
    assert [p.name for p in out.iterdir()] == ["metadata.json"]  # OUT as it was


def test_tensorflow_start_up_lines_do_not_precede_the_error(tmp_path):
    """In a fresh process TensorFlow's C++ side prints absl and CUDA lines on import; they are silenced."""
    root = tmp_path / "data"
    _tree(root)
    for path in (root / "test" / "cat").iterdir():
        path.write_bytes(b"GIF89a broken")  # the class keeps no test image: refused after TensorFlow loaded
    done = subprocess.run(
        [sys.executable, "-m", "convert", "--data", str(root), "--out", str(tmp_path / "out"), "--input-size", "32",
         "--calib", "4", "--weights", "hed"], cwd=ROOT, capture_output=True, text=True, timeout=_RUN_LIMIT_S)
    lines = [line for line in done.stderr.replace("\r", "\n").splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr
    _one_error_line(lines, "class 'cat' has 0 usable test image(s) of 2 (2 undecodable")
    assert all(line.startswith(("decode ", "error: ")) for line in lines), lines  # progress bars and our line


def test_a_whole_conversion_prints_no_tensorflow_log_lines(tmp_path):
    """TensorFlow's C++ log lines (`E0000 ... node_def_util.cc] NodeDef mentions attribute
    use_unbounded_threadpool ...` while the head trains on a tf.data pipeline) stay out of a run without -v."""
    import os
    import re

    root = tmp_path / "data"
    _tree(root)
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}  # as a user runs it
    done = subprocess.run(
        [sys.executable, "-m", "convert", "--data", str(root), "--out", str(tmp_path / "out"), "--input-size", "32",
         "--calib", "4", "--weights", "hed", "--epochs", "1", "--float-tflite-eval", "2", "--debug-images", "1",
         "--min-agreement", "0"], cwd=ROOT, capture_output=True, text=True, timeout=_RUN_LIMIT_S, env=env)
    assert done.returncode == 0, done.stderr
    logged = [line for line in done.stderr.replace("\r", "\n").splitlines() if re.match(r"[EWIF]\d{4} ", line)]
    assert logged == []
    # make kmodel's teacher targets: a row for every training image (their check against the teacher is
    # tests/k210/test_pipeline_slow.py's end-to-end run; tests/k210/test_teacher_cache.py the reading)
    import numpy as np

    with np.load(tmp_path / "out" / "teacher_targets.npz") as cached:
        files = sorted((path.relative_to(root).as_posix() for path in (root / "train").rglob("*.jpg")))
        assert sorted(cached["files"].tolist()) == files
        assert cached["log_probs"].shape == (len(files), 2) and np.allclose(np.exp(cached["log_probs"]).sum(1), 1)
        assert cached["maps"].shape == (len(files), 2, 2, 128)  # the hed weights' block4-conv head at 32 px


@pytest.mark.parametrize("module, argv", [
    ("convert.k210.plan", ["--blocks", "0"]),
    ("convert.k210.plan", ["--width", "0"]),
    ("convert.k210.plan", ["--classes", "1"]),
    ("convert.bench", ["--runs", "0"]),
    ("runtime.bench", ["--video", "x.avi", "--frames", "1"]),
    ("runtime.bench", ["--video", "x.avi", "--repeats", "0"]),
])
def test_other_commands_refuse_bad_numbers_in_one_line(capsys, module, argv):
    import importlib

    with pytest.raises(SystemExit) as info:
        importlib.import_module(module).main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and len(err) == 1 and f"argument {argv[-2]}" in err[0], err


def test_help_shows_the_values_users_type():
    text = build_parser().format_help()
    assert "{vgg16,vgg19}" in text and "{auto,gap,flatten-mlp,block4-conv,imagenet}" in text
    assert "Arch." not in text and "HeadKind." not in text


def test_an_interrupt_swallowed_by_a_finalizer_is_raised_at_the_next_checkpoint(capsys):
    """Python runs the handler in whatever the main thread does next; inside a __del__ its exception is lost."""
    from convert.progress import progress
    from runtime import cli

    class Finalized:
        def __del__(self):
            cli._raise_interrupted(signal.SIGTERM, None)  # what the signal handler does, at the worst moment

    done = []

    def body():
        Finalized()  # Python prints "Exception ignored in ..." and carries on
        for item in progress(range(3), "work"):
            done.append(item)
        return 0

    assert cli.run_main(body, interrupted="checked") == 143
    assert done == [] and "interrupted by SIGTERM; checked" in capsys.readouterr().err


def test_a_signal_inside_signals_deferred_is_raised_when_the_block_ends():
    from runtime import cli

    events = []

    def body():
        with cli.signals_deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)  # the handler has run by now, in this thread
            events.append("finished the block")
        events.append("after the block")
        return 0

    assert cli.run_main(body) == 143 and events == ["finished the block"]
    assert signal.getsignal(signal.SIGTERM) is not cli._raise_interrupted  # handlers restored


def test_no_debug_images_needs_fix_none(tmp_path, capsys):
    """--debug-images 0 turns off the per-layer blame; the automatic fix is chosen by it, so it is refused."""
    with pytest.raises(SystemExit) as info:
        main(["--data", str(tmp_path), "--out", str(tmp_path / "out"), "--debug-images", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and len(err) == 1 and "--fix none" in err[0]
    parsed = build_parser().parse_args(["--debug-images", "0", "--fix", "none"])
    assert parsed.debug_images == 0


def test_a_download_failure_keeps_its_cause_in_the_notice():
    """keras' download error starts with the whole URL; the offline notice (the weights) and the error (the
    public archive) must still show why it failed."""
    from runtime.errors import download_failure

    url = "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/" + "x" * 60 + "_notop.h5"
    error = Exception(f"URL fetch failure on {url}: None -- [Errno -2] Name or service not known\nmore")
    assert download_failure(error) == "URL fetch failure on <url>: None -- [Errno -2] Name or service not known"
    assert download_failure(Exception()) == "Exception"
