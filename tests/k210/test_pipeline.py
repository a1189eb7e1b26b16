"""convert/k210/pipeline.py and its CLI: the student shape and plan chosen, a variant that cannot fit or a
bad flag refused before any work."""

from __future__ import annotations

import json

import pytest

from convert.k210.__main__ import main as kmodel_main
from convert.k210.options import KmodelOptions
from convert.k210.pipeline import choose_plan
from runtime.errors import ToolkitError


def _fake_artifacts(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "model_float.keras").write_bytes(b"not read: the plan is refused first")
    metadata = {"labels": ["cat", "dog"], "input": {"height": 224, "width": 224}, "provenance": {}}
    (out / "metadata.json").write_text(json.dumps(metadata))
    return out


def test_a_variant_that_cannot_fit_is_refused_before_any_work(tmp_path, capsys):
    out = _fake_artifacts(tmp_path)
    code = kmodel_main(["--artifacts", str(out), "--width", "0.5", "--input-size", "224",
                        "--toolchain", str(tmp_path / "no_toolchain")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "block1_conv2: input 224x224x32 + output 112x112x32 need 2,293,760 bytes of KPU RAM, 196,608 over" in err[0]
    assert sorted(p.name for p in out.iterdir()) == ["metadata.json", "model_float.keras"]  # nothing written


def test_planner_choice_respects_the_compute_cap():
    plan = choose_plan(KmodelOptions(artifacts=None, max_gmacs=1.0), classes=2)
    assert (plan.width, plan.input_size) == (0.25, 224) and plan.fits
    with pytest.raises(ToolkitError, match="no vgg16 variant fits"):
        choose_plan(KmodelOptions(artifacts=None, max_gmacs=0.001), classes=2)


def test_missing_teacher_says_run_make_convert(tmp_path, capsys):
    assert kmodel_main(["--artifacts", str(tmp_path)]) == 2
    assert "run `make convert` first" in capsys.readouterr().err


@pytest.mark.parametrize("flag,value", [("--map-weight", "-1"), ("--map-weight", "nan"), ("--calibrate-method", "max"),
                                        ("--precision", "float16"), ("--warmup-epochs", "-1"),
                                        ("--init-images", "0")])
def test_bad_kmodel_flags_are_refused_by_the_parser(tmp_path, capsys, flag, value):
    with pytest.raises(SystemExit) as exit_info:
        kmodel_main(["--artifacts", str(tmp_path), flag, value])
    assert exit_info.value.code == 2 and flag in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_default_plan_is_the_wide_student_for_the_block4_head():
    from convert.k210.pipeline import StudentShape

    plan = choose_plan(KmodelOptions(artifacts=None), classes=2, shape=StudentShape("vgg16", 4, 128))
    assert (plan.width, plan.input_size) == (0.375, 224) and plan.fits


@pytest.mark.parametrize("value", ["0", "-3", "some"])
def test_sim_images_must_be_a_positive_count_or_all(tmp_path, capsys, value):
    from convert.k210.report import main as report_main

    for main in (kmodel_main, report_main):
        with pytest.raises(SystemExit) as exit_info:
            main(["--artifacts", str(tmp_path), "--sim-images", value])
        assert exit_info.value.code == 2 and "--sim-images" in capsys.readouterr().err


def test_a_calibration_subset_keeps_the_class_balance():
    """--calib-images N takes N of make convert's class-sorted calibration list, evenly spaced."""
    from convert.k210.pipeline import spread

    items = ["cat"] * 100 + ["dog"] * 100
    half = spread(items, 100)
    assert len(half) == 100 and half.count("cat") == half.count("dog") == 50
    assert spread(items, None) == items and spread(items, 500) == items
    assert spread(list(range(10)), 3) == [0, 4, 9]  # both ends and the middle
