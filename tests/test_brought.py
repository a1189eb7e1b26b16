"""Bring your own model (convert/brought.py): the two tutorial shapes in miniature, saved by Keras 3 (.h5 and
.keras) and by Keras 2 (tf-keras, .h5), converted through the whole pipeline; and every bad input as one line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from convert.__main__ import main
from runtime.interpreter import Classifier
from runtime.metadata import read_metadata
from runtime.preprocess import InputSpec, load_image_rgb, resize_rgb
from tests.conftest import make_tree
from tests.tiny_models import (
    TUTORIAL_SIZE,
    keras2_copy,
    train_tutorial_model,
    tutorial_whole_model,
)

QUICK = ["--calib", "8", "--float-tflite-eval", "4", "--debug-images", "2"]
INT8_MAX_PROB_DIFF = 0.06  # int8 against float on these well-separated synthetic images: a few output steps


def _decoded(paths, size):
    return np.stack([resize_rgb(load_image_rgb(p), InputSpec(size, size)) for p in paths]).astype(np.float32)


@pytest.fixture(scope="module")
def tutorial(tmp_path_factory):
    """A data tree and the two tutorial shapes trained on it, each saved three ways."""
    import keras

    root = tmp_path_factory.mktemp("brought")
    data = make_tree(root / "data", {"cat": 24, "dog": 24}, "train")
    make_tree(data, {"cat": 10, "dog": 10}, "test", start_seed=300)
    train = sorted((data / "train").rglob("*.jpg"))
    labels = np.array([0 if p.parent.name == "cat" else 1 for p in train])
    pixels = _decoded(train, TUTORIAL_SIZE)

    whole = train_tutorial_model(tutorial_whole_model(keras), pixels, labels)
    files = {"whole": {}, "head": {}}
    for form, name in (("keras3 h5", "whole.h5"), ("keras3 keras", "whole.keras")):
        whole.save(root / name)
        files["whole"][form] = root / name
    keras2_copy(whole, tutorial_whole_model).save(root / "whole_keras2.h5")
    files["whole"]["keras2 h5"] = root / "whole_keras2.h5"

    # The second shape: a VGG16 (seeded random conv weights, as a --weights file) at 64 pixels, features
    # (2, 2, 512) with caffe normalization, and a softmax head fit on them alone.
    from convert.backbone import caffe_preprocess_layer

    keras.utils.set_random_seed(0)
    vgg = keras.applications.VGG16(weights=None, include_top=False, input_shape=(64, 64, 3))
    vgg.save_weights(root / "vgg16_64.weights.h5")
    features = np.asarray(vgg.predict(caffe_preprocess_layer()(_decoded(train, 64)), verbose=0))

    def head_model(k):
        return k.Sequential([k.Input(features.shape[1:]), k.layers.Conv2D(8, 1, activation="relu"),
                             k.layers.Flatten(), k.layers.Dense(8, activation="relu"), k.layers.Dropout(0.6),
                             k.layers.Dense(2, activation="softmax")])

    scale = 1.0 / float(np.abs(features).max())
    head = train_tutorial_model(head_model(keras), features, labels, scale=scale, epochs=60)
    kernel, bias = head.layers[0].get_weights()  # fold the feature scale into the first layer
    head.layers[0].set_weights([kernel * scale, bias])
    for name in ("head.h5", "head.keras"):
        head.save(root / name)
    files["head"]["keras3 h5"], files["head"]["keras3 keras"] = root / "head.h5", root / "head.keras"
    keras2_copy(head, head_model).save(root / "head_keras2.h5")
    files["head"]["keras2 h5"] = root / "head_keras2.h5"
    return {"root": root, "data": data, "files": files, "whole": whole, "head": head,
            "weights": root / "vgg16_64.weights.h5"}


@pytest.mark.parametrize("form", ["keras3 h5", "keras3 keras", "keras2 h5"])
def test_each_save_format_loads_to_the_same_model(tutorial, form):
    from convert.brought import load_keras_file

    model, read = load_keras_file(tutorial["files"]["whole"][form])
    probe = np.random.default_rng(0).uniform(0, 1, (4, TUTORIAL_SIZE, TUTORIAL_SIZE, 3)).astype(np.float32)
    np.testing.assert_allclose(model.predict(probe, verbose=0), tutorial["whole"].predict(probe, verbose=0), atol=1e-5)
    assert read.saved_by.startswith("Keras 2." if form.startswith("keras2") else "Keras 3.")
    # Keras 3 cannot load the Keras 2 file of the nested shape as it is: its config is rebuilt
    assert read.rebuilt == (form == "keras2 h5")


def test_keras3_alone_cannot_load_the_keras2_file(tutorial):
    """The defect the rebuild exists for (keras-team/keras#19670): if Keras 3 learns to load it, this fails
    and the rebuild can go."""
    import keras

    with pytest.raises(Exception, match="'list' object has no attribute 'shape'"):
        keras.models.load_model(tutorial["files"]["whole"]["keras2 h5"], compile=False)


def _convert(tmp_path, capsys, argv, name="out"):
    out = tmp_path / name
    code = main(argv + ["--out", str(out)] + QUICK)
    captured = capsys.readouterr()
    return code, out, captured


def _int8_scores(out, images_rgb):
    metadata = read_metadata(out)
    classifier = Classifier(out / "model_int8.tflite", metadata)
    return np.stack([classifier.predict(image) for image in images_rgb.astype(np.uint8)])


@pytest.mark.parametrize("form", ["keras2 h5", "keras3 keras"])
def test_a_whole_sigmoid_model_converts_with_its_own_size_and_labels(tutorial, tmp_path, capsys, monkeypatch, form):
    import convert.float_model

    scored = []  # what the float model was scored on: a passing gate needs no held-out scores (only the fix does)
    keras_scores = convert.float_model._keras_scores
    monkeypatch.setattr(convert.float_model, "_keras_scores",
                        lambda model, images, desc: scored.append(desc) or keras_scores(model, images, desc))
    code, out, captured = _convert(tmp_path, capsys, ["--model", str(tutorial["files"]["whole"][form]),
                                                      "--preprocess", "rescale", "--data", str(tutorial["data"])])
    assert code == 0, captured.err
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["labels"] == ["cat", "dog"] and (out / "labels.txt").read_text() == "cat\ndog\n"
    assert metadata["input"]["height"] == TUTORIAL_SIZE and metadata["input"]["in_model_normalization"] == "rescale"
    provenance = metadata["provenance"]
    assert provenance["head"] == "model" and provenance["trained"] is False and provenance["output"] == "sigmoid"
    assert provenance["preprocess"] == "rescale" and provenance["model_file"] == str(tutorial["files"]["whole"][form])
    assert ("config rebuilt" in provenance["model_format"]) == (form == "keras2 h5")
    if form == "keras2 h5":
        assert provenance["keras2_max_abs_diff"] <= 1e-4
    assert metadata["models"]["model_int8.tflite"]["float_ops"] == []
    assert metadata["results"]["top1_agreement"] >= 0.95 and metadata["results"]["accuracy_float"] >= 0.9
    assert metadata["results"]["verdict"] == "PASS" and scored == ["float model on test"]
    # The int8 model answers two probabilities: class 1 is the sigmoid's score, class 0 is 1 - it
    test = sorted((tutorial["data"] / "test").rglob("*.jpg"))
    pixels = _decoded(test, TUTORIAL_SIZE)
    sigmoid = tutorial["whole"].predict(pixels / 255.0, verbose=0)[:, 0]
    scores = _int8_scores(out, pixels)
    assert scores.shape == (len(test), 2)
    assert np.abs(scores[:, 1] - sigmoid).max() < INT8_MAX_PROB_DIFF
    assert np.abs(scores[:, 0] - (1 - sigmoid)).max() < INT8_MAX_PROB_DIFF
    assert "preprocess rescale   output sigmoid" in captured.out
    # The camera loop takes it as any conversion: a folder of the test photos, labels from the brought model
    from tests.runtime.helpers import run_cli

    done = run_cli("--model", out, "--source", tutorial["data"] / "test" / "dog", "--headless")
    assert done.returncode == 0, done.stderr
    answers = [json.loads(line)["label"] for line in done.stdout.splitlines()]
    assert len(answers) == 10 and answers.count("dog") >= 9


def test_a_head_alone_is_joined_to_the_named_backbone(tutorial, tmp_path, capsys):
    code, out, captured = _convert(tmp_path, capsys, [
        "--head-model", str(tutorial["files"]["head"]["keras2 h5"]), "--arch", "vgg16",
        "--weights", str(tutorial["weights"]), "--input-size", "64", "--preprocess", "caffe",
        "--labels", "kitty,puppy", "--data", str(tutorial["data"])])
    assert code == 0, captured.err
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["labels"] == ["kitty", "puppy"] and metadata["input"]["height"] == 64
    provenance = metadata["provenance"]
    assert provenance["head"] == "head-model" and provenance["output"] == "softmax"
    assert provenance["weights"] == f"file:{tutorial['weights']}" and provenance["arch"] == "vgg16"
    # the float model is the backbone and the head: the head's own answer on the backbone's features
    import keras

    from convert.backbone import caffe_preprocess_layer

    test = sorted((tutorial["data"] / "test").rglob("*.jpg"))
    pixels = _decoded(test, 64)
    vgg = keras.applications.VGG16(weights=None, include_top=False, input_shape=(64, 64, 3))
    vgg.load_weights(tutorial["weights"])
    expected = tutorial["head"].predict(vgg.predict(caffe_preprocess_layer()(pixels), verbose=0), verbose=0)
    assert metadata["results"]["accuracy_float"] == pytest.approx(
        float((expected.argmax(1) == np.array([0 if p.parent.name == "cat" else 1 for p in test])).mean()))
    assert np.abs(_int8_scores(out, pixels) - expected).max() < INT8_MAX_PROB_DIFF * 2


def test_logits_are_turned_into_probabilities(tutorial, tmp_path, capsys):
    import keras

    linear = tutorial_whole_model(keras, last_activation="linear")
    linear.set_weights(tutorial["whole"].get_weights())  # the same net without its sigmoid: one logit
    linear.save(tmp_path / "logits.keras")
    argv = ["--model", str(tmp_path / "logits.keras"), "--preprocess", "rescale", "--data", str(tutorial["data"])]
    code, out, captured = _convert(tmp_path, capsys, argv)
    assert code == 2 and "raw scores (no activation); pass --output logits" in captured.err
    assert not out.exists()
    code, out, captured = _convert(tmp_path, capsys, argv + ["--output", "logits"])
    assert code == 0, captured.err
    test = sorted((tutorial["data"] / "test").rglob("*.jpg"))
    pixels = _decoded(test, TUTORIAL_SIZE)
    sigmoid = tutorial["whole"].predict(pixels / 255.0, verbose=0)[:, 0]
    assert np.abs(_int8_scores(out, pixels)[:, 1] - sigmoid).max() < INT8_MAX_PROB_DIFF


def _custom_layer_model(path):
    import keras

    @keras.saving.register_keras_serializable(package="users_own")
    class Doubling(keras.layers.Layer):
        def call(self, x):
            return x * 2

    pixels = keras.Input((TUTORIAL_SIZE, TUTORIAL_SIZE, 3))
    scores = keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(Doubling()(pixels)))
    keras.Model(pixels, scores).save(path)
    del keras.saving.get_custom_objects()["users_own>Doubling"]  # as in a fresh process without the user's code


def _not_an_image_model(path):
    import keras

    keras.Sequential([keras.Input((10,)), keras.layers.Dense(2, activation="softmax")]).save(path)


def _weights_only(path):
    import keras

    tutorial_whole_model(keras).save_weights(path)


@pytest.mark.parametrize("make, name, extra, message", [
    (lambda p: p.write_text("not a model"), "model.h5", [], "not an HDF5 file"),
    (lambda p: p.write_text("not a model"), "model.keras", [], "a .keras file is a zip archive"),
    (lambda p: p.write_text("x"), "model.pb", [], "not a Keras model file (.keras or .h5)"),
    (lambda p: None, "missing.keras", [], "model file not found"),
    (_weights_only, "model.weights.h5", [], "holds weights only (model.save_weights)"),
    (_custom_layer_model, "custom.keras", [], "custom layer Doubling cannot be deserialized"),
    (_not_an_image_model, "vector.keras", [], "not an RGB image (height, width, 3)"),
    (None, "whole.keras", ["--input-size", "64"], "takes 32x32 images, not the --input-size 64"),
    (None, "whole.keras", ["--labels", "a,b,c"], "--labels: 3 names (a,b,c) for "),
])
def test_bad_model_files_are_one_line_naming_the_file(tutorial, tmp_path, capsys, make, name, extra, message):
    path = tutorial["root"] / name if make is None else tmp_path / name
    if make is not None:
        make(path)
    code, out, captured = _convert(tmp_path, capsys, ["--model", str(path), "--preprocess", "rescale",
                                                      "--data", str(tutorial["data"])] + extra)
    errors = captured.err.strip().splitlines()
    assert code == 2 and len(errors) == 1 and message in errors[0], captured.err
    assert str(path) in errors[0]
    assert not out.exists() and "Traceback" not in captured.err


def test_a_head_that_does_not_fit_the_backbone_names_both_shapes(tutorial, tmp_path, capsys):
    code, out, captured = _convert(tmp_path, capsys, [
        "--head-model", str(tutorial["files"]["head"]["keras3 keras"]), "--weights", str(tutorial["weights"]),
        "--input-size", "32", "--preprocess", "caffe", "--data", str(tutorial["data"])])
    errors = captured.err.strip().splitlines()
    assert code == 2 and len(errors) == 1 and not out.exists()
    assert "the head takes (2, 2, 512) but vgg16 at 32x32 gives (1, 1, 512)" in errors[0]


def test_a_data_set_with_other_classes_is_refused(tutorial, tmp_path, capsys):
    data = make_tree(tmp_path / "three", {"cat": 4, "dog": 4, "fox": 4}, "train")
    make_tree(data, {"cat": 2, "dog": 2, "fox": 2}, "test", start_seed=40)
    code, out, captured = _convert(tmp_path, capsys, ["--model", str(tutorial["files"]["whole"]["keras3 keras"]),
                                                      "--preprocess", "rescale", "--data", str(data)])
    errors = captured.err.strip().splitlines()
    assert code == 2 and not out.exists() and errors[-1].startswith("error: ")
    assert "3 class folders (cat, dog, fox) but" in errors[-1] and "has 2 classes" in errors[-1]


@pytest.mark.parametrize("argv, message", [
    (["--preprocess", "imagenet"], "unknown normalization 'imagenet'; use one of caffe, rescale, tf, torch, raw"),
    ([], "a brought model needs the normalization it was trained with: caffe|rescale|tf|torch|raw"),
])
def test_the_preprocess_flag_has_no_silent_default(tutorial, tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["--model", str(tutorial["files"]["whole"]["keras3 keras"]), "--data", str(tutorial["data"]),
              "--out", str(tmp_path / "out")] + argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["caffe", "rescale", "tf", "torch", "raw"])
def test_each_normalization_matches_its_definition(kind):
    from convert.backbone import preprocess_layer
    from convert.config import Preprocess

    pixels = np.random.default_rng(1).uniform(0, 255, (2, 4, 4, 3)).astype(np.float32)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    expected = {"caffe": pixels[..., ::-1] - np.array([103.939, 116.779, 123.68]), "rescale": pixels / 255,
                "tf": pixels / 127.5 - 1, "torch": (pixels / 255 - mean) / std, "raw": pixels}[kind]
    layer = preprocess_layer(Preprocess(kind))
    got = pixels if layer is None else np.asarray(layer(pixels))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


def test_retrain_head_is_an_opt_in_that_fine_tunes_only_the_head(tutorial, tmp_path, capsys):
    import keras

    source = tutorial["files"]["whole"]["keras3 keras"]
    code, out, captured = _convert(tmp_path, capsys, ["--model", str(source), "--preprocess", "rescale",
                                                      "--data", str(tutorial["data"]), "--retrain-head",
                                                      "--epochs", "2"])
    assert code == 0, captured.err
    assert "head retrained here (--retrain-head)" in captured.out
    retrained = json.loads((out / "metadata.json").read_text())["provenance"]["retrained_head"]
    assert retrained["epochs"] == 2 and len(retrained["loss"]) == 2 and retrained["images"] > 0
    user, converted = keras.models.load_model(source), keras.models.load_model(out / "model_float.keras")
    user_weights = user.get_weights()
    converted_weights = [w for w in converted.get_weights()]
    # the conv base is the user's, unchanged; the head's dense layers moved
    base = len(user.layers[0].get_weights())
    convs = [w for w in converted_weights if w.ndim == 4 and w.shape[:2] == (3, 3)]
    for got, expected in zip(convs, user_weights[:base:2]):
        np.testing.assert_array_equal(got, expected)
    assert not np.array_equal(converted_weights[-2], user_weights[-2])


def test_retrain_head_needs_a_brought_model(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--retrain-head", "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2 and "only for a brought model" in capsys.readouterr().err
