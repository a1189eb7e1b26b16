"""The K210 planner against what nncase 1.9 did with VGG16-shaped networks (issue 4, measured here)."""

from __future__ import annotations

import pytest

from convert.k210.plan import (
    KPU_RAM_BYTES,
    Deployment,
    kpu_bytes,
    largest_fitting,
    main,
    plan_vgg,
)

# (width, input size, nncase 1.9 compiled it without "Allocator has ran out of memory")
NNCASE_MEASURED = [
    (0.25, 224, True),
    (0.5, 128, True),
    (0.5, 160, True),
    (0.5, 192, True),
    (0.5, 224, False),
    (1.0, 128, True),
    (1.0, 160, False),
    (1.0, 224, False),
]


@pytest.mark.parametrize("width, size, compiled", NNCASE_MEASURED)
def test_kpu_verdict_agrees_with_nncase(width, size, compiled):
    assert plan_vgg("vgg16", width, size).fits_kpu is compiled


def test_kpu_row_layout_matches_nncase():
    # 64 pixels of one channel per 64-byte row; 2 channels of <= 32 pixels; 4 channels of <= 16 pixels.
    assert kpu_bytes(64, 1, 1) == 64 and kpu_bytes(65, 1, 1) == 128
    assert kpu_bytes(32, 1, 2) == 64 and kpu_bytes(32, 1, 3) == 128
    assert kpu_bytes(16, 1, 4) == 64 and kpu_bytes(16, 10, 5) == 2 * 10 * 64
    assert kpu_bytes(224, 224, 64) == 4 * 224 * 64 * 64


def test_parameter_counts_match_the_measured_kmodels():
    assert plan_vgg("vgg16", 0.25, 224).params == pytest.approx(0.92e6, rel=0.01)  # 915 KB kmodel
    assert plan_vgg("vgg16", 1.0, 128).params == pytest.approx(14.7e6, rel=0.01)  # the conv base's 14.7M


def test_full_width_at_128_compiles_but_does_not_fit_the_sdk_budget():
    plan = plan_vgg("vgg16", 1.0, 128)
    assert plan.fits_kpu and not plan.fits
    assert any("exceed" in problem and "standalone-sdk" in problem for problem in plan.problems)


def test_failure_names_the_layer_and_the_bytes_over():
    plan = plan_vgg("vgg16", 0.5, 224)
    (problem,) = plan.problems
    assert problem.startswith("block1_conv2: input 224x224x32 + output 112x112x32 need 2,293,760 bytes")
    assert f"{2_293_760 - KPU_RAM_BYTES:,} over" in problem


def test_deployments_have_different_budgets():
    plan = plan_vgg("vgg16", 0.5, 192)
    assert plan.fits
    assert not plan_vgg("vgg16", 0.5, 192, deployment=Deployment.MAIXPY).fits  # 3.8 MB of a 3.5 MB budget


def test_rules_beyond_memory():
    big = plan_vgg("vgg16", 0.125, 256)
    assert any("over the KPU's 320x240" in p for p in big.problems)
    small = plan_vgg("vgg16", 0.25, 96)
    assert any("under 4x4" in note for layer in small.layers for note in layer.notes)  # block5 at 3x3


def test_search_picks_the_most_compute_that_fits():
    plan = largest_fitting("vgg16")
    assert plan.fits and (plan.width, plan.input_size) == (0.5, 192)
    capped = largest_fitting("vgg16", max_gmacs=1.0)
    assert capped.fits and capped.macs <= 1e9 and (capped.width, capped.input_size) == (0.25, 224)


def test_cli_exit_codes(capsys):
    assert main(["--width", "0.25", "--input-size", "224"]) == 0
    assert "fits the standalone-sdk budget" in capsys.readouterr().out
    assert main(["--width", "1.0", "--input-size", "224"]) == 2
    out = capsys.readouterr().out
    assert "does NOT fit" in out and "block1_conv1" in out


def test_a_classifier_cut_at_block4_with_a_1x1_head():
    """The hed weights' block4-conv classifier: blocks 1-4, then a 1x1 conv of 128 (not narrowed)."""
    full = plan_vgg("vgg16", 0.25, 224)
    cut = plan_vgg("vgg16", 0.25, 224, blocks=4, reduce_channels=128)
    names = [layer.name for layer in cut.layers]
    assert names[-4:] == ["block4_conv3", "reduce", "gap", "predictions"] and "block5_conv1" not in names
    reduce = cut.layers[names.index("reduce")]
    assert reduce.kind == "conv1x1" and reduce.in_shape == (14, 14, 64 * 2) and reduce.out_shape == (14, 14, 128)
    assert reduce.weight_bytes == 128 * 128 + 8 * 128
    assert cut.params == full.params - 3 * (3 * 3 * 128 * 128) + 128 * 128  # weights (biases are per-channel bytes)
    assert cut.name == "vgg16 blocks 1-4 + 1x1 conv 128 x0.25 at 224" and cut.fits
    with pytest.raises(ValueError, match="blocks 1-5, not 6"):
        plan_vgg("vgg16", 0.25, 224, blocks=6)
    assert largest_fitting("vgg16", max_gmacs=1.0, blocks=4, reduce_channels=128).name == cut.name
