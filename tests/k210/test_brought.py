"""make kmodel from a brought model (python -m convert --model/--head-model): the student takes the teacher's
normalization and input size, its convs start from the VGG inside the user's model, its pooled head is fit
to the teacher's logits; then nncase compiles and simulates it."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from convert.config import OutputKind, Preprocess
from convert.k210.options import KmodelOptions
from convert.k210.pipeline import StudentShape, choose_plan, student_shape
from convert.k210.plan import plan_vgg
from convert.k210.student import brought_teacher_layout, build_student, init_from_teacher
from convert.schema import Provenance
from tests.conftest import make_tree

SIZE = 32  # pixels


def _vgg(seed=0):
    import keras

    keras.utils.set_random_seed(seed)
    return keras.applications.VGG16(weights=None, include_top=False, input_shape=(SIZE, SIZE, 3))


def _whole_classifier(preprocess=Preprocess.RESCALE):
    """The tutorials' first shape, wrapped as convert/brought.py wraps it."""
    import keras

    from convert.brought import _classifier

    user = keras.Sequential([keras.Input((SIZE, SIZE, 3)), _vgg(), keras.layers.Flatten(),
                             keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1, activation="sigmoid")])
    return _classifier(user, preprocess, OutputKind.SIGMOID, SIZE)


def _head_classifier():
    """The second shape: a head on the backbone's features, joined as convert/brought.py joins it."""
    import keras

    from convert.brought import _classifier

    vgg = _vgg(1)
    head = keras.Sequential([keras.Input(vgg.output.shape[1:]), keras.layers.Flatten(),
                             keras.layers.Dense(2, activation="softmax")])
    return _classifier(keras.Model(vgg.input, head(vgg.output)), Preprocess.CAFFE, OutputKind.SOFTMAX, SIZE)


@pytest.mark.parametrize("build, normalization", [(_whole_classifier, "rescale"), (_head_classifier, "caffe")])
def test_the_vgg_inside_a_brought_model_is_found(build, normalization):
    layout = brought_teacher_layout(build(), normalization)
    assert (layout.arch, layout.blocks, layout.head) == ("vgg16", 5, None)
    assert "block5_conv3" in [layer.name for layer in layout.trunk.layers]
    assert layout.normalize.name == f"{normalization}_preprocess"


def test_a_full_width_student_of_a_brought_teacher_copies_its_convs_and_fits_its_head():
    from convert.k210.distill import teacher_outputs

    teacher = _whole_classifier()
    layout = brought_teacher_layout(teacher, "rescale")
    plan = replace(plan_vgg("vgg16", 1.0, SIZE, 2), normalization="rescale")
    student = build_student(plan)
    assert student.get_layer("rescale_preprocess") is not None  # the teacher's normalization, not caffe
    images = np.random.default_rng(0).integers(0, 256, (12, SIZE, SIZE, 3)).astype(np.uint8)
    logits, maps = teacher_outputs(teacher, layout, images, maps=False)
    np.testing.assert_allclose(np.exp(logits), teacher.predict(images.astype(np.float32), verbose=0), atol=1e-6)
    assert maps is None
    report = init_from_teacher(student, layout, images, logits, reconstruct=False)
    assert report.head == "fitted"  # a pooled dense of our own, fit to the teacher's logits
    import keras

    features = keras.Model(student.input, student.get_layer("block5_pool").output)
    expected = layout.trunk(layout.normalize(images.astype(np.float32)))
    np.testing.assert_allclose(features.predict(images.astype(np.float32), verbose=0), expected, rtol=1e-4, atol=1e-4)


def test_a_brought_model_without_vgg_convs_starts_the_student_from_random_weights():
    import keras

    from convert.brought import _classifier

    other = keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.Conv2D(4, 3, name="conv"),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2, activation="softmax")])
    layout = brought_teacher_layout(_classifier(other, Preprocess.RAW, OutputKind.SOFTMAX, SIZE), "raw")
    assert layout.trunk is None and layout.normalize(3.0) == 3.0
    report = init_from_teacher(build_student(plan_vgg("vgg16", 0.25, SIZE, 2)), layout, np.zeros((2, SIZE, SIZE, 3)))
    assert report.head == "random"


@pytest.mark.parametrize("arch, expected", [("vgg19", "vgg19"), ("vgg16", "vgg16"), ("other", "vgg16")])
def test_the_student_of_a_brought_model_is_a_whole_vgg_with_a_pooled_head(arch, expected):
    for head in ("model", "head-model"):
        assert student_shape(Provenance(arch=arch, head=head)) == StudentShape(expected)


def test_the_plan_follows_the_teacher_input_size_where_a_variant_fits():
    options = KmodelOptions(artifacts=None)
    assert choose_plan(options, 2, prefer_size=150).input_size == 150
    assert choose_plan(options, 2, prefer_size=4000).input_size == choose_plan(options, 2).input_size
    assert choose_plan(replace(options, input_size=128), 2, prefer_size=150).input_size == 128  # the flag wins


def test_make_kmodel_from_a_brought_whole_model(toolchain, tmp_path, capsys):
    """A Keras 2-style whole model (nested VGG16 + Flatten head, sigmoid, rescale) -> int8 -> kmodel."""
    import keras

    from convert.__main__ import main as convert_main
    from convert.k210.__main__ import main as kmodel_main
    from tests.tiny_models import train_tutorial_model

    data = make_tree(tmp_path / "data", {"cat": 24, "dog": 24}, "train")
    make_tree(data, {"cat": 10, "dog": 10}, "test", start_seed=300)
    vgg = _vgg()
    vgg.trainable = False
    user = keras.Sequential([keras.Input((SIZE, SIZE, 3)), vgg, keras.layers.Flatten(),
                             keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1, activation="sigmoid")])
    from runtime.preprocess import InputSpec, load_image_rgb, resize_rgb

    train = sorted((data / "train").rglob("*.jpg"))
    pixels = np.stack([resize_rgb(load_image_rgb(p), InputSpec(SIZE, SIZE)) for p in train]).astype(np.float32)
    train_tutorial_model(user, pixels, np.array([p.parent.name == "dog" for p in train], np.int64), epochs=20)
    user.save(tmp_path / "cats_and_dogs.keras")
    out = tmp_path / "out"
    assert convert_main(["--model", str(tmp_path / "cats_and_dogs.keras"), "--preprocess", "rescale", "--data",
                         str(data), "--out", str(out), "--calib", "8", "--float-tflite-eval", "0", "--debug-images", "0",
                         "--fix", "none", "--min-agreement", "0"]) == 0  # the gate is not what this tests
    assert kmodel_main(["--artifacts", str(out), "--toolchain", str(toolchain), "--width", "0.25", "--epochs", "1",
                        "--sim-images", "all"]) == 0
    capsys.readouterr()
    report = json.loads((out / "k210_report.json").read_text())
    assert report["plan"]["input_size"] == SIZE  # the teacher's size
    assert report["init"]["dense"] == "fitted" and "block1_conv1" in report["init"]["relative_error"]
    assert report["results"]["simulated_images"] == 20 and report["results"]["top1_agreement_kmodel_vs_float"] >= 0.9
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["k210"]["input"]["shape"] == [1, 3, SIZE, SIZE] and metadata["provenance"]["head"] == "model"
