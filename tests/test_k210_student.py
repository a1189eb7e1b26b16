"""The K210 variant: a narrowed copy of the teacher from KPU-friendly layers, its initialization from the
teacher (strongest channels, least-squares refit), distillation, refusal of a variant that cannot fit before
any compile."""

from __future__ import annotations

import json

import numpy as np
import pytest

from convert.config import HeadKind
from convert.k210.__main__ import main as kmodel_main
from convert.k210.options import KmodelOptions
from convert.k210.pipeline import choose_plan
from convert.k210.plan import VGG_BLOCKS, plan_vgg
from convert.k210.student import build_student, init_from_teacher, student_conv_names, teacher_layout
from convert.schema import Provenance
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


def _teacher(head_kind: HeadKind, size: int = 32, seed: int = 0):
    """A make-convert-shaped classifier with random weights: pixels -> caffe -> VGG16 trunk -> head."""
    import keras

    from convert.backbone import Backbone
    from convert.config import Arch
    from convert.head import assemble, build_head, head_input

    keras.utils.set_random_seed(seed)
    vgg = keras.applications.VGG16(weights=None, include_top=False, input_shape=(size, size, 3))
    rng = np.random.default_rng(seed)
    for layer in vgg.layers:  # He-scaled random filters with varied strength, so that channel choice matters
        if layer.get_weights():
            kernel, bias = layer.get_weights()
            scale = np.sqrt(2.0 / np.prod(kernel.shape[:3])) * rng.uniform(0.2, 1.8, kernel.shape[-1])
            layer.set_weights([(rng.normal(size=kernel.shape) * scale).astype(np.float32),
                               rng.normal(0, 0.1, bias.shape).astype(np.float32)])
    cut = head_input(head_kind)
    shape = tuple(int(d) for d in vgg.get_layer(cut).output.shape[1:])
    head = build_head(head_kind, shape, 2, 0.3, 0.0, seed)
    teacher = assemble(Backbone(vgg, Arch.VGG16, "random"), head, size, cut)
    # Scale and centre the dense layer so that the logits spread over a few units around 0 instead of
    # saturating the softmax.
    dense = head.get_layer("predictions")
    pixels = rng.integers(0, 256, (16, size, size, 3)).astype(np.float32)
    trunk_out = teacher.layers[2](teacher.get_layer("caffe_preprocess")(pixels))
    features = np.asarray(keras.Model(head.input, dense.input)(trunk_out))
    kernel, bias = dense.get_weights()
    margin = features @ (kernel[:, 1] - kernel[:, 0])
    scale = 2.0 / max(float(margin.std()), 1e-6)
    dense.set_weights([kernel * scale, np.array([0.0, -scale * float(margin.mean())], np.float32)])
    return teacher


@pytest.mark.parametrize("head_kind", [HeadKind.BLOCK4_CONV, HeadKind.GAP])
def test_teacher_layout_and_the_mirrored_student(head_kind):
    from convert.k210.pipeline import StudentShape, student_shape

    teacher = _teacher(head_kind)
    layout = teacher_layout(teacher)
    shape = student_shape(Provenance(arch="vgg16", head=head_kind.value))
    assert (layout.arch, layout.blocks, layout.reduce_channels) == (shape.arch, shape.blocks or 5, shape.reduce_channels)
    assert shape == (StudentShape("vgg16", 4, 128) if head_kind is HeadKind.BLOCK4_CONV else StudentShape("vgg16"))
    plan = plan_vgg("vgg16", 0.25, 32, 2, blocks=shape.blocks, reduce_channels=shape.reduce_channels)
    student = build_student(plan)
    convs = [layer.name for layer in student.layers if layer.name.startswith("block") and "conv" in layer.name]
    assert convs == student_conv_names("vgg16", layout.blocks)
    assert ("reduce" in [layer.name for layer in student.layers]) == (head_kind is HeadKind.BLOCK4_CONV)
    assert sum(int(np.prod(w.shape)) for w in student.weights) == pytest.approx(plan.params, rel=0.01)


def test_a_model_without_a_trained_head_is_refused():
    from convert.k210.pipeline import student_shape

    with pytest.raises(ToolkitError, match="no cats/dogs head to distill"):
        student_shape(Provenance(arch="vgg16", head="imagenet"))
    import keras

    plain = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3, name="block1_conv1")])
    with pytest.raises(ToolkitError, match="not a make convert classifier"):
        teacher_layout(plain)


def test_init_keeps_the_strongest_channels_of_the_teacher():
    teacher = _teacher(HeadKind.BLOCK4_CONV)
    layout = teacher_layout(teacher)
    narrow = build_student(plan_vgg("vgg16", 0.25, 32, 2, blocks=4, reduce_channels=128))
    images = np.random.default_rng(1).integers(0, 256, (4, 32, 32, 3)).astype(np.uint8)
    report = init_from_teacher(narrow, layout, images, reconstruct=False)

    kernel, bias = layout.trunk.get_layer("block1_conv1").get_weights()
    strongest = np.sort(np.argsort(np.abs(kernel).sum(axis=(0, 1, 2)))[::-1][:16])
    got_kernel, got_bias = narrow.get_layer("block1_conv1").get_weights()
    np.testing.assert_array_equal(got_kernel, kernel[..., strongest])
    np.testing.assert_array_equal(got_bias, bias[strongest])
    kernel2, _ = layout.trunk.get_layer("block1_conv2").get_weights()
    got2, _ = narrow.get_layer("block1_conv2").get_weights()
    assert got2.shape == (3, 3, 16, 16)  # the next layer reads exactly those channels
    assert all(np.any(np.all(np.isclose(kernel2[:, :, strongest, :], got2[..., [j]]), axis=(0, 1, 2)))
               for j in range(16))
    shares = dict(report.kept_l1_share)
    assert shares.pop("reduce") == pytest.approx(1.0)  # not narrowed: all its channels kept
    assert all(0.25 < share < 1.0 for share in shares.values())
    assert report.head == "copied"  # the reduce conv keeps all 128 channels: the teacher's dense fits as is


def test_reconstruction_brings_the_narrow_net_closer_to_the_teacher():
    teacher = _teacher(HeadKind.BLOCK4_CONV)
    layout = teacher_layout(teacher)
    images = np.random.default_rng(2).integers(0, 256, (8, 32, 32, 3)).astype(np.uint8)
    plan = plan_vgg("vgg16", 0.25, 32, 2, blocks=4, reduce_channels=128)
    plain, refit = build_student(plan), build_student(plan)
    init_from_teacher(plain, layout, images, reconstruct=False)
    report = init_from_teacher(refit, layout, images)
    assert set(report.relative_error) == set(student_conv_names("vgg16", 4)) | {"reduce"}
    for name, (before, after) in report.relative_error.items():
        # least squares lowers the error it minimizes (the first layer reads the same pixels: exact either way)
        assert after < before if name != "block1_conv1" else after < 1e-4, name
    # ... and on images it was not fit on, the refit net's logits are nearer the teacher's
    unseen = np.random.default_rng(3).integers(0, 256, (8, 32, 32, 3)).astype(np.float32)
    def margin(model):
        probs = np.clip(np.asarray(model.predict_on_batch(unseen)), 1e-7, 1.0)
        return np.log(probs[:, 1]) - np.log(probs[:, 0])

    errors = [np.mean((margin(model) - margin(teacher)) ** 2) for model in (plain, refit)]
    assert errors[1] < errors[0]


def test_full_width_student_reproduces_the_teacher():
    teacher = _teacher(HeadKind.GAP)
    layout = teacher_layout(teacher)
    images = np.random.default_rng(4).integers(0, 256, (6, 32, 32, 3)).astype(np.uint8)
    student = build_student(plan_vgg("vgg16", 1.0, 32, 2))
    report = init_from_teacher(student, layout, images, reconstruct=False)
    assert report.head == "copied"
    np.testing.assert_allclose(student.predict_on_batch(images.astype(np.float32)),
                               teacher.predict_on_batch(images.astype(np.float32)), atol=1e-5)


def test_a_narrow_gap_head_is_fit_to_the_teacher_logits():
    teacher = _teacher(HeadKind.GAP)
    layout = teacher_layout(teacher)
    images = np.random.default_rng(5).integers(0, 256, (12, 32, 32, 3)).astype(np.uint8)
    logits = np.log(np.clip(np.asarray(teacher.predict_on_batch(images.astype(np.float32))), 1e-7, 1.0))
    student = build_student(plan_vgg("vgg16", 0.25, 32, 2))
    with pytest.raises(ValueError, match="pass teacher_logits"):
        init_from_teacher(student, layout, images)
    report = init_from_teacher(student, layout, images, logits)
    assert report.head == "fitted"
    got = np.log(np.clip(np.asarray(student.predict_on_batch(images.astype(np.float32))), 1e-7, 1.0))
    margin = lambda x: x[:, 1] - x[:, 0]  # noqa: E731
    assert np.corrcoef(margin(got), margin(logits))[0, 1] > 0.5


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


@pytest.mark.parametrize("map_weight,dtype", [(0.0, None), (1.0, None), (1.0, "mixed_bfloat16")])
def test_distill_trains_the_student(map_weight, dtype):
    from convert.k210.distill import distill

    plan = plan_vgg("vgg16", 0.125, 32, 2, blocks=4, reduce_channels=128)
    student = build_student(plan, dtype=dtype)
    before = [w.copy() for w in student.get_weights()]
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (16, 32, 32, 3)).astype(np.uint8)
    labels = np.arange(16) % 2
    teacher_logits = np.where(np.eye(2)[labels] > 0, 2.0, -2.0).astype(np.float32)
    maps = np.abs(rng.normal(size=(16, 2, 2, 128))).astype(np.float16)  # the teacher head's 1x1-conv maps at 32
    options = KmodelOptions(artifacts=None, epochs=2, batch_size=8, map_weight=map_weight)
    history = distill(student, images, teacher_logits, labels, images[:4], labels[:4], options,
                      maps if map_weight else None)
    assert [entry["epoch"] for entry in history] == [0, 1, 2]
    assert history[0]["loss"] is None and all(np.isfinite(entry["loss"]) for entry in history[1:])
    assert any(not np.array_equal(a, b) for a, b in zip(before, student.get_weights()))
    assert "map_scale" not in [layer.name for layer in student.layers]  # the training-only layer stays out


@pytest.mark.parametrize("warmup_epochs", [0.0, 1.0])
def test_learning_rate_warms_up_then_decays_to_zero(warmup_epochs):
    from convert.k210.distill import learning_rate_schedule

    options = KmodelOptions(artifacts=None, epochs=4, learning_rate=1e-3, warmup_epochs=warmup_epochs)
    schedule = learning_rate_schedule(options, steps_per_epoch=10)
    rate = [float(schedule(step)) for step in range(41)]
    peak = int(warmup_epochs * 10)
    assert rate[peak] == pytest.approx(1e-3) and max(rate) == pytest.approx(1e-3)
    assert rate[40] == pytest.approx(0.0, abs=1e-9)
    assert all(a <= b for a, b in zip(rate[:peak], rate[1:peak + 1]))  # rising during the warm-up
    assert all(a >= b for a, b in zip(rate[peak:], rate[peak + 1:]))  # then falling
    if warmup_epochs:
        assert rate[0] == 0.0 and rate[5] == pytest.approx(0.5e-3)


def test_teacher_maps_are_averaged_onto_the_student_grid():
    from convert.k210.distill import resize_maps

    maps = np.arange(2 * 4 * 4 * 3, dtype=np.float32).reshape(2, 4, 4, 3).astype(np.float16)
    assert resize_maps(maps, 4) is maps  # same grid: untouched
    half = resize_maps(maps, 2)
    assert half.shape == (2, 2, 2, 3) and half.dtype == np.float16
    expected = maps.astype(np.float32).reshape(2, 2, 2, 2, 2, 3).mean(axis=(2, 4))  # 2x2 block means
    np.testing.assert_allclose(half.astype(np.float32), expected, rtol=1e-3)
    # The grid a plan's head pools: 14 for blocks 1-4 at 224, 10 at 160.
    assert plan_vgg("vgg16", 0.375, 160, 2, blocks=4, reduce_channels=128).feature_side == 10
    assert plan_vgg("vgg16", 0.25, 224, 2, blocks=4, reduce_channels=128).feature_side == 14


def test_any_size_student_becomes_the_fixed_size_model_with_the_same_outputs():
    from convert.k210.distill import rebuilt

    plan = plan_vgg("vgg16", 0.125, 32, 2, blocks=4, reduce_channels=128)
    free = build_student(plan, seed=1, any_size=True)
    images = np.random.default_rng(6).integers(0, 256, (3, 48, 48, 3)).astype(np.float32)
    free.predict_on_batch(images)  # trains and infers at other sizes too
    fixed = rebuilt(free, plan)
    assert tuple(fixed.input.shape) == (None, 32, 32, 3)
    np.testing.assert_allclose(fixed.predict_on_batch(images[:, :32, :32]), free.predict_on_batch(images[:, :32, :32]),
                               atol=1e-6)


def test_training_precision_follows_the_cpu(tmp_path):
    from convert.k210.distill import training_dtype

    zen4, older = tmp_path / "zen4", tmp_path / "older"
    zen4.write_text("flags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni\n")
    older.write_text("flags\t\t: fpu avx2 avx512f\n")
    assert training_dtype("auto", zen4) == "mixed_bfloat16"
    assert training_dtype("auto", older) == "float32"
    assert training_dtype("auto", tmp_path / "missing") == "float32"
    assert training_dtype("float32", zen4) == "float32" and training_dtype("bfloat16", older) == "mixed_bfloat16"


def test_a_bfloat16_student_copies_into_the_float32_model():
    plan = plan_vgg("vgg16", 0.125, 32, 2, blocks=4, reduce_channels=128)
    mixed, plain = build_student(plan, seed=2, dtype="mixed_bfloat16"), build_student(plan)
    assert mixed.get_layer("block1_conv1").compute_dtype == "bfloat16"
    assert all(w.dtype == np.float32 for w in mixed.get_weights())  # float32 variables
    plain.set_weights(mixed.get_weights())
    images = np.random.default_rng(7).integers(0, 256, (4, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(plain.predict_on_batch(images), mixed.predict_on_batch(images), atol=0.05)


@pytest.mark.parametrize("head_kind", [HeadKind.BLOCK4_CONV, HeadKind.GAP])
def test_teacher_outputs_match_the_teacher_and_bfloat16_stays_close(head_kind):
    from convert.head import predict_batched
    from convert.k210.distill import teacher_outputs

    teacher = _teacher(head_kind)
    layout = teacher_layout(teacher)
    images = np.random.default_rng(3).integers(0, 256, (40, 32, 32, 3)).astype(np.uint8)
    expected = np.log(np.clip(predict_batched(teacher, images.astype(np.float32)), 1e-7, 1.0))
    maps = head_kind is HeadKind.BLOCK4_CONV
    logits, fmaps = teacher_outputs(teacher, layout, images, maps)
    np.testing.assert_allclose(logits, expected, atol=1e-4)
    assert (fmaps is not None) == maps and (not maps or fmaps.shape == (40, 2, 2, 128))
    logits_bf16, _ = teacher_outputs(teacher, layout, images, maps, "mixed_bfloat16")
    # bf16 keeps 8 significant bits: the outputs move a little, far less than they differ between images.
    # That holds on every CPU; the tighter bound of the next test only where bf16 is native.
    drift = np.abs(np.exp(logits_bf16) - np.exp(expected)).max()
    assert 0 < drift < np.exp(expected)[:, 1].std() / BF16_SPREAD_FRACTION
    assert teacher.get_layer(layout.trunk.name).dtype_policy.name == "float32"  # the teacher itself untouched


# CPU-dependent. With native bf16 (avx512_bf16: the AMD EPYC Zen 4 this project was first measured on) the
# teacher's probabilities moved less than BF16_NATIVE_MAX_DRIFT on these 40 images, for both heads. On an
# AVX2-only EPYC, where TensorFlow emulates bf16 with other rounding, they moved 0.026 (block4-conv) and 0.070
# (gap); `make kmodel` does not distil in bf16 there (--precision auto picks float32). On both, the drift is
# under a third of the spread of the outputs between images (0.29 and 0.34): the CPU-independent bound.
BF16_NATIVE_MAX_DRIFT = 0.05
BF16_SPREAD_FRACTION = 3


@pytest.mark.parametrize("head_kind", [HeadKind.BLOCK4_CONV, HeadKind.GAP])
def test_native_bfloat16_moves_the_teacher_less_than_its_bound(head_kind):
    from convert.head import predict_batched
    from convert.k210.distill import BF16_CPU_FLAGS, teacher_outputs, training_dtype

    if training_dtype("auto") != "mixed_bfloat16":
        pytest.skip(f"this CPU has no bf16 instructions ({' or '.join(BF16_CPU_FLAGS)}): TensorFlow emulates bf16 "
                    "with other rounding, and `make kmodel` distils in float32 here (--precision auto)")
    teacher = _teacher(head_kind)
    images = np.random.default_rng(3).integers(0, 256, (40, 32, 32, 3)).astype(np.uint8)
    expected = predict_batched(teacher, images.astype(np.float32))
    logits_bf16, _ = teacher_outputs(teacher, teacher_layout(teacher), images, head_kind is HeadKind.BLOCK4_CONV,
                                     "mixed_bfloat16")
    assert np.abs(np.exp(logits_bf16) - expected).max() < BF16_NATIVE_MAX_DRIFT


def test_default_plan_is_the_wide_student_for_the_block4_head():
    from convert.k210.pipeline import StudentShape

    plan = choose_plan(KmodelOptions(artifacts=None), classes=2, shape=StudentShape("vgg16", 4, 128))
    assert (plan.width, plan.input_size) == (0.375, 224) and plan.fits


@pytest.mark.parametrize(("agreeing", "n", "expected"), [
    (97, 100, (0.9155, 0.9897)),  # Wilson score interval, z = 1.96 (the textbook values)
    (0, 10, (0.0, 0.2775)),
    (100, 100, (0.9630, 1.0)),
    (486, 500, (0.9536, 0.9832)),  # issue 4's seed-1 sample: 98% inside, so that sample did not settle the goal
])
def test_sampled_agreement_comes_with_its_95_percent_interval(agreeing, n, expected):
    from convert.k210.report import wilson_interval

    assert wilson_interval(agreeing, n) == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("value", ["0", "-3", "some"])
def test_sim_images_must_be_a_positive_count_or_all(tmp_path, capsys, value):
    from convert.k210.report import main as report_main

    for main in (kmodel_main, report_main):
        with pytest.raises(SystemExit) as exit_info:
            main(["--artifacts", str(tmp_path), "--sim-images", value])
        assert exit_info.value.code == 2 and "--sim-images" in capsys.readouterr().err


def test_kmodel_report_needs_the_kmodel_its_report_describes(tmp_path, capsys):
    from convert.k210.report import main as report_main
    from convert.schema import K210_REPORT_JSON as REPORT_JSON
    from convert.schema import KMODEL_FILE

    assert report_main(["--artifacts", str(tmp_path)]) == 2
    assert "run `make kmodel` first" in capsys.readouterr().err
    (tmp_path / KMODEL_FILE).write_bytes(b"LDMK\x05\x00\x00\x00 another build")
    (tmp_path / REPORT_JSON).write_text(json.dumps({"kmodel": {"sha256": "0" * 64}}))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert report_main(["--artifacts", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not the kmodel k210_report.json describes" in err[0] and "rerun `make kmodel`" in err[0]
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # nothing rewritten
