"""make student: the variant's folder name and its bad input (the export itself: tests/k210/test_pipeline_slow.py,
which shares its small make convert output with the make kmodel run)."""

from __future__ import annotations

import pytest

from convert.k210.options import KmodelOptions
from convert.k210.pipeline import StudentShape, choose_plan
from convert.pi.student import main, variant_dir_name


def test_variant_folder_names_say_blocks_head_width_and_size():
    options = KmodelOptions(artifacts=None, width=0.375, input_size=224)
    head = choose_plan(options, 2, StudentShape(blocks=4, reduce_channels=128))
    assert variant_dir_name(head) == "vgg16_b4c128_x0.375_224"
    whole = choose_plan(KmodelOptions(artifacts=None, width=0.25, input_size=160), 2, StudentShape())
    assert variant_dir_name(whole) == "vgg16_x0.25_160"


def test_a_variant_too_big_for_the_k210_is_planned_for_a_pi_only():
    options = KmodelOptions(artifacts=None, width=1.0, input_size=224)
    with pytest.raises(Exception, match="does not fit the K210"):
        choose_plan(options, 2)
    assert not choose_plan(options, 2, for_kpu=False).fits


def test_missing_artifacts_are_one_line(tmp_path, capsys):
    code = main(["--artifacts", str(tmp_path / "nothing"), "--width", "0.5", "--input-size", "160"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "make convert" in err
    assert not (tmp_path / "nothing").exists()


def test_width_and_size_are_required(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--width", "0.5"])
    assert stop.value.code == 2 and "--input-size" in capsys.readouterr().err
