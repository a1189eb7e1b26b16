"""The K210 variant: KPU-friendly layers matching the plan, strongest-channel initialization, refusal of a
variant that cannot fit before any compile."""

from __future__ import annotations

import json

import numpy as np
import pytest

from convert.k210 import KmodelOptions, choose_plan, main as kmodel_main
from convert.k210_plan import VGG_BLOCKS, plan_vgg
from convert.k210_student import build_student, init_from_backbone, student_conv_names
from runtime.errors import ToolkitError


def test_student_layers_follow_the_plan_and_the_kpu_rules():
    plan = plan_vgg("vgg16", 0.25, 64)
    student = build_student(plan)
    convs = [layer for layer in student.layers if layer.name.startswith("block") and "conv" in layer.name]
    assert [layer.name for layer in convs] == student_conv_names("vgg16")
    planned = {layer.name: layer for layer in plan.layers}
    for layer in convs:
        assert layer.kernel_size == (3, 3) and layer.strides == (1, 1) and layer.padding == "same"
        assert layer.filters == planned[layer.name].out_shape[2]
    pools = [layer for layer in student.layers if layer.name.endswith("_pool")]
    assert len(pools) == len(VGG_BLOCKS["vgg16"]) and all(p.pool_size == (2, 2) for p in pools)
    assert student.output_shape == (None, 2)
    assert sum(int(np.prod(w.shape)) for w in student.weights) == pytest.approx(plan.params, rel=0.01)


def test_init_keeps_the_strongest_channels_of_the_backbone():
    import keras

    full = build_student(plan_vgg("vgg16", 1.0, 32))  # stands in for the full backbone: same layer names
    rng = np.random.default_rng(0)
    for name in student_conv_names("vgg16"):
        layer = full.get_layer(name)
        kernel, bias = layer.get_weights()
        layer.set_weights([rng.normal(size=kernel.shape).astype(np.float32), rng.normal(size=bias.shape).astype(np.float32)])
    narrow = build_student(plan_vgg("vgg16", 0.25, 32))
    report = init_from_backbone(narrow, full, "vgg16")

    kernel, bias = full.get_layer("block1_conv1").get_weights()
    strongest = np.sort(np.argsort(np.abs(kernel).sum(axis=(0, 1, 2)))[::-1][:16])
    got_kernel, got_bias = narrow.get_layer("block1_conv1").get_weights()
    np.testing.assert_array_equal(got_kernel, kernel[..., strongest])
    np.testing.assert_array_equal(got_bias, bias[strongest])
    # the next layer reads exactly those channels
    kernel2, _ = full.get_layer("block1_conv2").get_weights()
    got2, _ = narrow.get_layer("block1_conv2").get_weights()
    assert got2.shape == (3, 3, 16, 16)
    assert all(np.any(np.all(np.isclose(kernel2[:, :, strongest, :], got2[..., [j]]), axis=(0, 1, 2)))
               for j in range(16))
    assert all(0.25 < share < 1.0 for share in report.kept_l1_share.values())
    assert keras  # imported for the models above


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


@pytest.mark.parametrize("hint_weight", [0.0, 1.0])
def test_distill_trains_the_student_and_leaves_no_extra_layer(hint_weight):
    from convert.k210 import distill

    plan = plan_vgg("vgg16", 0.125, 32)
    student = build_student(plan)
    before = [w.copy() for w in student.get_weights()]
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (16, 32, 32, 3)).astype(np.uint8)
    labels = np.arange(16) % 2
    teacher_logits = np.where(np.eye(2)[labels] > 0, 2.0, -2.0).astype(np.float32)
    features = rng.normal(size=(16, 2, 2, 512)).astype(np.float16)  # block4_pool of a 512-channel teacher at 32
    options = KmodelOptions(artifacts=None, epochs=2, batch_size=8, hint_weight=hint_weight)
    history = distill(student, images, teacher_logits, labels, images[:4], labels[:4], options,
                      features if hint_weight else None)
    assert [entry["epoch"] for entry in history] == [1, 2]
    assert all(np.isfinite(entry["loss"]) for entry in history)
    assert any(not np.array_equal(a, b) for a, b in zip(before, student.get_weights()))
    assert "hint_regressor" not in [layer.name for layer in student.layers]
