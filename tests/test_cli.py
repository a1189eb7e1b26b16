"""The converter's command line: bad input gives one line, a non-zero exit and nothing on disk."""

from __future__ import annotations

import pytest

from convert.__main__ import build_parser, main
from tests.conftest import make_tree


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
