"""make student: the variant's folder name and its bad input (the export itself: tests/k210/test_pipeline_slow.py,
which shares its small make convert output with the make kmodel run)."""

from __future__ import annotations

import pytest

from convert.k210.options import KmodelOptions
from convert.k210.pipeline import StudentShape, choose_plan
from convert.pi.student import build_parser, main, variant_dir_name, variants_asked, width_at_size


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


def test_width_and_size_go_together(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--width", "0.5"])
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and "--input-size" in err and len(err.splitlines()) == 1


def test_a_variant_is_width_at_size():
    assert width_at_size("0.375@224") == (0.375, 224)
    for bad in ("0.375", "0.375@", "@224", "0@224", "0.5@-3", "a@b", "0.5@160@2"):
        with pytest.raises(Exception, match="WIDTH@SIZE"):
            width_at_size(bad)


def variants_of(argv):
    parser = build_parser()
    return variants_asked(parser, parser.parse_args(argv))


def test_variants_keep_their_order_and_the_width_size_pair_comes_last():
    assert variants_of(["--variant", "0.25@160", "--variant", "0.375@224"]) == [(0.25, 160), (0.375, 224)]
    assert variants_of(["--variant", "0.25@160", "--width", "0.5", "--input-size", "128"]) == [(0.25, 160), (0.5, 128)]


@pytest.mark.parametrize("argv, message", [
    ([], "no variant"),
    (["--variant", "0.25@160", "--variant", "0.25@160"], "0.25@160 asked more than once"),
    (["--variant", "0.25@160", "--width", "0.25", "--input-size", "160"], "asked more than once"),
    (["--variant", "0.25"], "WIDTH@SIZE"),
])
def test_bad_variant_lists_are_one_line_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and message in err and len(err.splitlines()) == 1
