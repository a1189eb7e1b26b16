"""Tiny seeded Keras models with the same shape of graph as the real ones (in-graph caffe normalization)."""

from __future__ import annotations

import numpy as np

SIZE = 16  # pixels: tiny, so each conversion takes about a second


def tiny_classifier(seed: int = 0, n_classes: int = 2, fragile: bool = False,
                    train_pixels: np.ndarray | None = None, train_labels: np.ndarray | None = None):
    """RGB pixels -> caffe normalization -> conv -> pool -> GAP -> dense softmax.

    Given training images, the dense layer is a logistic regression fit on them. With ``fragile`` it is
    the trap of issue 2 in miniature: the pooled features are a large common offset plus small class
    differences (under one int8 step of the pooled tensor), and the regression is fit on *standardized*
    features and deployed with the standardization folded into the dense layer.
    """
    import keras

    from convert.backbone import caffe_preprocess_layer

    keras.utils.set_random_seed(seed)
    pixels = keras.Input((SIZE, SIZE, 3), name="image_rgb")
    conv = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv")
    pooled = keras.layers.GlobalAveragePooling2D(name="gap")(
        keras.layers.MaxPooling2D(2, name="pool")(conv(caffe_preprocess_layer()(pixels))))
    dense = keras.layers.Dense(n_classes, activation="softmax", name="predictions")
    model = keras.Model(pixels, dense(pooled), name="tiny")
    if fragile:
        kernel, _ = conv.get_weights()
        conv.set_weights([kernel * 0.01, np.full(8, 100.0, np.float32)])
    if train_pixels is not None:
        features = np.asarray(keras.Model(pixels, pooled).predict_on_batch(train_pixels), np.float64)
        if fragile:
            mean, std = features.mean(0), features.std(0) + 1e-9
            weights, bias = fit_logistic((features - mean) / std, train_labels, n_classes)
            weights, bias = weights / std[:, None], bias - (mean / std) @ weights
        else:
            weights, bias = fit_logistic(features, train_labels, n_classes)
        dense.set_weights([weights.astype(np.float32), bias.astype(np.float32)])
    return model


def fit_logistic(features: np.ndarray, labels: np.ndarray, n_classes: int, steps: int = 2000, rate: float = 0.1):
    """Plain softmax regression by gradient descent, no penalty (as an unregularized LR fit would be)."""
    scale = np.abs(features).max() or 1.0
    x = features / scale  # for a stable step size; undone on the weights below
    weights, bias = np.zeros((x.shape[1], n_classes)), np.zeros(n_classes)
    onehot = np.eye(n_classes)[labels]
    for _ in range(steps):
        logits = x @ weights + bias
        probs = np.exp(logits - logits.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
        grad = (probs - onehot) / len(x)
        weights -= rate * x.T @ grad
        bias -= rate * grad.sum(0)
    return weights / scale, bias


def random_pixels(count: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, SIZE, SIZE, 3)).astype(np.float32)


def keras_scores(model, pixels: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict_on_batch(pixels), np.float32)


COLOUR_SIZE = 32  # pixels
COLOUR_LABELS = ["red", "green", "blue"]


def colour_classifier():
    """RGB pixels -> mean of each channel -> softmax: says which of R, G, B dominates the frame.

    A frame whose channels arrive swapped is answered with the wrong colour, so this model makes the
    colour order of every frame source visible in its output label.
    """
    import keras

    pixels = keras.Input((COLOUR_SIZE, COLOUR_SIZE, 3), name="image_rgb")
    means = keras.layers.GlobalAveragePooling2D(name="gap")(pixels)
    dense = keras.layers.Dense(3, activation="softmax", name="predictions")
    model = keras.Model(pixels, dense(means), name="colour")
    # 0.04 per level: a 100-level lead of one channel over the others gives it about 98%.
    dense.set_weights([np.eye(3, dtype=np.float32) * 0.04, np.zeros(3, np.float32)])
    return model


def colour_calibration(count: int = 48, seed: int = 3) -> np.ndarray:
    """Calibration frames for the colour model: noise plus solid primaries, so every range is seen."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (count, COLOUR_SIZE, COLOUR_SIZE, 3)).astype(np.float32)
    for i, colour in enumerate(np.eye(3) * 255):
        frames[i] = colour
    return frames


# The two shapes the Keras transfer-learning tutorials leave (issue 16), in miniature: a VGG-named conv base
# nested in a Sequential with a Flatten-Dense head (one sigmoid unit), and a head trained on conv features
# alone (softmax). ``k`` is the Keras module that builds them: keras (Keras 3) or tf_keras (Keras 2).
TUTORIAL_SIZE = 32  # pixels


def tutorial_base(k, size: int = TUTORIAL_SIZE):
    """A two-block VGG-style conv base as a functional model (the part the tutorials nest)."""
    pixels = k.Input((size, size, 3))
    x = k.layers.Conv2D(8, 3, padding="same", activation="relu", name="block1_conv1")(pixels)
    x = k.layers.MaxPooling2D(2, name="block1_pool")(x)
    x = k.layers.Conv2D(8, 3, padding="same", activation="relu", name="block2_conv1")(x)
    x = k.layers.MaxPooling2D(2, name="block2_pool")(x)
    return k.Model(pixels, x, name="vgg_tiny")


def tutorial_whole_model(k, last_activation: str = "sigmoid", size: int = TUTORIAL_SIZE):
    """``Sequential([base, Flatten(), Dense(16, relu), Dropout(0.5), Dense(1, sigmoid)])``."""
    return k.Sequential([k.Input((size, size, 3)), tutorial_base(k, size), k.layers.Flatten(),
                         k.layers.Dense(16, activation="relu"), k.layers.Dropout(0.5),
                         k.layers.Dense(1, activation=last_activation)])


def train_tutorial_model(model, pixels_rgb: np.ndarray, labels: np.ndarray, scale: float = 1 / 255,
                         epochs: int = 30, seed: int = 0):
    """A few seeded epochs on ``pixels_rgb * scale`` (the tutorials' rescale=1./255), binary labels."""
    import keras

    keras.utils.set_random_seed(seed)
    loss = "binary_crossentropy" if model.output_shape[-1] == 1 else "sparse_categorical_crossentropy"
    if model.layers[-1].get_config().get("activation") == "linear":
        loss = keras.losses.BinaryCrossentropy(from_logits=True)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=loss)
    model.fit(pixels_rgb.astype(np.float32) * scale, labels.astype(np.float32 if model.output_shape[-1] == 1 else np.int64),
              epochs=epochs, batch_size=16, verbose=0)
    return model


def keras2_copy(model_k3, build):
    """The same architecture built by tf-keras (Keras 2) with ``model_k3``'s weights: ``build(tf_keras)``."""
    import tf_keras

    copy = build(tf_keras)
    copy.set_weights(model_k3.get_weights())
    return copy
