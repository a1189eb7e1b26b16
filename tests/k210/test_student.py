"""convert/k210/student.py: a narrowed copy of the teacher from KPU-friendly layers and its initialization
from the teacher (strongest channels, least-squares refit)."""

from __future__ import annotations

import numpy as np
import pytest

from convert.config import HeadKind
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


@pytest.mark.parametrize("head_kind", [HeadKind.BLOCK4_CONV, HeadKind.GAP])
def test_teacher_layout_and_the_mirrored_student(make_teacher, head_kind):
    from convert.k210.pipeline import StudentShape, student_shape

    teacher = make_teacher(head_kind)
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


def test_init_keeps_the_strongest_channels_of_the_teacher(make_teacher):
    teacher = make_teacher(HeadKind.BLOCK4_CONV)
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


def test_reconstruction_brings_the_narrow_net_closer_to_the_teacher(make_teacher):
    teacher = make_teacher(HeadKind.BLOCK4_CONV)
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


def test_full_width_student_reproduces_the_teacher(make_teacher):
    teacher = make_teacher(HeadKind.GAP)
    layout = teacher_layout(teacher)
    images = np.random.default_rng(4).integers(0, 256, (6, 32, 32, 3)).astype(np.uint8)
    student = build_student(plan_vgg("vgg16", 1.0, 32, 2))
    report = init_from_teacher(student, layout, images, reconstruct=False)
    assert report.head == "copied"
    np.testing.assert_allclose(student.predict_on_batch(images.astype(np.float32)),
                               teacher.predict_on_batch(images.astype(np.float32)), atol=1e-5)


def test_a_narrow_gap_head_is_fit_to_the_teacher_logits(make_teacher):
    teacher = make_teacher(HeadKind.GAP)
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


def test_a_bfloat16_student_copies_into_the_float32_model():
    plan = plan_vgg("vgg16", 0.125, 32, 2, blocks=4, reduce_channels=128)
    mixed, plain = build_student(plan, seed=2, dtype="mixed_bfloat16"), build_student(plan)
    assert mixed.get_layer("block1_conv1").compute_dtype == "bfloat16"
    assert all(w.dtype == np.float32 for w in mixed.get_weights())  # float32 variables
    plain.set_weights(mixed.get_weights())
    images = np.random.default_rng(7).integers(0, 256, (4, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(plain.predict_on_batch(images), mixed.predict_on_batch(images), atol=0.05)
