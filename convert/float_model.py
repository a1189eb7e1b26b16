"""The float-model stage: a VGG backbone, a head trained on its cached features, the float scores."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from convert.backbone import Backbone, build_backbone
from convert.config import ConvertOptions, FineTune, HeadKind, WeightsSource
from convert.data import Prepared
from convert.head import (
    assemble,
    default_epochs,
    extract_features,
    extract_features_int8,
    feature_extractor,
    head_input,
    predict_batched,
    teacher_targets,
    train_head,
)
from convert.progress import progress
from runtime.errors import ToolkitError
from runtime.metadata import ModelMetadata
from runtime.preprocess import InputSpec

VALIDATION_IMAGES = 200  # held-out training images the automatic fix is chosen on (never the test set)


MAKE_CONVERT_REMEDY = "see make convert's --fine-tune, --l2, --head"
BROUGHT_REMEDY = "see --retrain-head, which fine-tunes the brought head on the int8 conv base's features too"
RETRAINED_REMEDY = "see --retrain-head with more --epochs"


@dataclass
class FloatModel:
    """A trained float model and its scores on the test and validation images.

    Attributes:
        model: The single Keras model (RGB pixels in, softmax scores out).
        labels: Class names, output order.
        test_scores: (N_test, C) float scores on ``Prepared.test_rgb``.
        validation_index: Indices into ``Prepared.train_rgb`` held out for choosing a fix.
        validation_scores: Float scores on those images, or a function that computes them when first
            asked (:meth:`held_out_scores`; a brought model is scored on them only if the fix needs them).
        description: What was built (head, fine-tuning, epochs, history, weights).
        top_k: Classes a device should show.
        normalization: The normalization inside the graph (metadata.json's ``in_model_normalization``).
        teacher_targets: For ``make kmodel``: the model's outputs on every training image, in
            ``Prepared.train_rgb``'s order (:func:`convert.head.teacher_targets`); None when not computed.
        remedy: The drift report's advice when no float fallback meets the budget: the flags of the command
            that made this model which give it wider margins.
    """

    model: object
    labels: list[str]
    test_scores: np.ndarray
    validation_index: np.ndarray
    validation_scores: np.ndarray | Callable[[], np.ndarray]
    description: dict = field(default_factory=dict)
    top_k: int = 1
    normalization: str = "caffe"
    teacher_targets: dict | None = None
    remedy: str = MAKE_CONVERT_REMEDY

    def held_out_scores(self) -> np.ndarray:
        """``validation_scores``, computed on first use when they were given as a function."""
        if callable(self.validation_scores):
            self.validation_scores = self.validation_scores()
        return self.validation_scores


def held_out_index(labels: np.ndarray, exclude: set[int], seed: int, trained_here: bool = True) -> np.ndarray:
    """A stratified, seeded sample of training images held out of training and calibration.

    The automatic fix is chosen on these: images the model has fit have larger margins than new ones,
    so they would hide drift that the test set then shows. A model trained here gives a tenth of its
    training images (up to ``VALIDATION_IMAGES``); a brought model (``trained_here`` False) trains on none
    of them here, so up to ``VALIDATION_IMAGES`` of those calibration did not take are held out.
    """
    rng = np.random.default_rng(seed + 1)
    share = len(labels) // 10 if trained_here else len(labels) - len(exclude)
    count = min(VALIDATION_IMAGES, max(len(np.unique(labels)), share))
    chosen = []
    for label in np.unique(labels):
        members = np.array([i for i in np.flatnonzero(labels == label) if i not in exclude], np.int64)
        share = max(1, round(count * np.mean(labels == label)))
        if len(members) < share:  # a small run where calibration took (nearly) every image: reuse some
            excluded = np.array([i for i in np.flatnonzero(labels == label) if i in exclude], np.int64)
            members = np.concatenate([members, rng.permutation(excluded)[:share - len(members)]])
        chosen.extend(rng.permutation(members)[:share].tolist())
    return np.sort(np.array(chosen, np.int64))


def choose_head(options: ConvertOptions, backbone: Backbone) -> tuple[HeadKind, bool]:
    """The head and whether block5 is fine-tuned, with ``auto`` resolved for the backbone's weights.

    Raises:
        ToolkitError: ``--fine-tune on`` with a head that does not read block5.
    """
    head_kind = options.head
    if head_kind is HeadKind.AUTO:
        head_kind = HeadKind.GAP if backbone.source == WeightsSource.IMAGENET.value else HeadKind.BLOCK4_CONV
    fine_tune = {FineTune.ON: True, FineTune.OFF: False}.get(options.fine_tune)
    if fine_tune and head_input(head_kind) != "block5_pool":
        raise ToolkitError(f"--fine-tune on trains block5, which the {head_kind.value} head does not read; "
                           "use --head gap or flatten-mlp with it")
    if fine_tune is None:  # auto: block5 is retrained only where the head reads it and the weights are weak
        fine_tune = head_input(head_kind) == "block5_pool" and backbone.source == WeightsSource.HED.value
    return head_kind, fine_tune


def train_float_model(options: ConvertOptions, prepared: Prepared, calibration_index: set[int],
                      calibration: np.ndarray, backbone: Backbone | None = None,
                      features: tuple[np.ndarray, np.ndarray] | None = None) -> FloatModel:
    """Builds the backbone, trains the head on cached features, and scores the float model.

    Args:
        options: Run options.
        prepared: Decoded data.
        calibration_index: Training images used for calibration (kept out of the validation set).
        calibration: The calibration inputs (for the int8 backbone of the quantization-aware head).
        backbone: A backbone already built from ``options`` (tests share one); built here if None.
        features: Block4 features of (train, test) images already computed with that backbone.
    """
    head_kind = options.head
    include_top = head_kind is HeadKind.IMAGENET
    if backbone is None:
        backbone = build_backbone(options.arch, options.weights, options.input_size, include_top, options.seed)
    if backbone.notice:
        print(backbone.notice, flush=True)
    validation_index = held_out_index(prepared.dataset.train.labels, calibration_index, options.seed)
    fit_index = np.setdiff1d(np.arange(len(prepared.train_rgb)), validation_index)
    description = {"weights": backbone.source, "arch": options.arch.value}

    if include_top:
        model = assemble(backbone, None, options.input_size)
        test_scores = _keras_scores(model, prepared.test_rgb, "float model on test")
        validation_scores = _keras_scores(model, prepared.train_rgb[validation_index], "float model on validation")
        description.update(head=head_kind.value, trained=False)
        return FloatModel(model, imagenet_labels(), test_scores, validation_index, validation_scores, description,
                          top_k=5)

    head_kind, fine_tune = choose_head(options, backbone)
    epochs = options.epochs or default_epochs(head_kind, fine_tune)
    learning_rate = options.learning_rate or (1e-4 if fine_tune else 1e-3)

    extractor = feature_extractor(backbone, options.input_size)
    if features is None:
        features = (extract_features(extractor, prepared.train_rgb, "features train"),
                    extract_features(extractor, prepared.test_rgb, "features test"))
    train_features, test_features = features
    labels = prepared.dataset.classes
    fit_features, fit_labels = train_features[fit_index], prepared.dataset.train.labels[fit_index]
    if options.quant_aware_head:
        with tempfile.TemporaryDirectory(prefix="convert-trunk-") as work:
            int8_features = extract_features_int8(extractor, calibration, prepared.train_rgb[fit_index], work,
                                                  "int8 features train", options.threads)
        description["int8_feature_error"] = float(np.abs(int8_features - fit_features).mean()
                                                  / np.abs(fit_features).mean())
        fit_features = np.concatenate([fit_features, int8_features])
        fit_labels = np.concatenate([fit_labels, fit_labels])
    result = train_head(backbone, head_kind, len(labels), fit_features, fit_labels, fine_tune, epochs,
                        options.batch_size, learning_rate, options.dropout, options.l2, options.seed)
    model = assemble(backbone, result.head, options.input_size, cut=head_input(head_kind))
    test_scores = predict_batched(result.tail, test_features)
    validation_scores = predict_batched(result.tail, train_features[validation_index])
    validation_labels = prepared.dataset.train.labels[validation_index]
    description.update(head=head_kind.value, fine_tune=fine_tune, quant_aware_head=options.quant_aware_head,
                       epochs=epochs, learning_rate=learning_rate, dropout=options.dropout, l2=options.l2,
                       batch_size=options.batch_size, history=result.history,
                       validation_images=int(len(validation_index)),
                       validation_accuracy=float((validation_scores.argmax(1) == validation_labels).mean()))
    return FloatModel(model, labels, test_scores, validation_index, validation_scores, description,
                      teacher_targets=teacher_targets(result, train_features))


RETRAIN_HEAD_EPOCHS = 5  # --retrain-head: a fine-tuning of a trained head, not a training from scratch
RETRAIN_HEAD_RATE = 1e-4


def brought_float_model(options: ConvertOptions, prepared: Prepared, calibration_index: set[int],
                        brought, calibration: np.ndarray) -> FloatModel:
    """The user's model (``convert/brought.py``) as the float model: nothing trained, only scored; with
    ``--retrain-head`` its head is fine-tuned first (and so reported).

    The held-out training images are chosen as for our own model: the automatic fix is chosen on them.
    """
    from convert.brought import check_keras2_rebuild, check_labels

    labels = check_labels(brought, prepared.dataset.classes, options.labels, prepared.dataset.root)
    if brought.read.rebuilt:
        check_keras2_rebuild(brought, prepared.test_rgb[:8], options.preprocess)
    validation_index = held_out_index(prepared.dataset.train.labels, calibration_index, options.seed,
                                      trained_here=options.retrain_head)
    description = brought.description(options.preprocess)
    if options.retrain_head:  # opt-in: the user's head, fine-tuned on the int8 conv base's features too
        from convert.brought import classifier_of, retrain_head

        fit_index = np.setdiff1d(np.arange(len(prepared.train_rgb)), validation_index)
        description["retrained_head"] = retrain_head(
            brought, options.preprocess, prepared.train_rgb[fit_index], prepared.dataset.train.labels[fit_index],
            calibration, options.epochs or RETRAIN_HEAD_EPOCHS, options.learning_rate or RETRAIN_HEAD_RATE,
            options.seed, options.threads)
        brought.model = classifier_of(brought, options.preprocess)  # the trained weights, also in the logit copy
    test_scores = _keras_scores(brought.model, prepared.test_rgb, "float model on test")
    model = brought.model

    def validation_scores() -> np.ndarray:  # only the fix reads them: a passing gate saves a third of the scoring
        return _keras_scores(model, prepared.train_rgb[validation_index], "float model on validation")

    return FloatModel(brought.model, labels, test_scores, validation_index, validation_scores, description,
                      normalization=options.preprocess.value,
                      remedy=RETRAINED_REMEDY if options.retrain_head else BROUGHT_REMEDY)


def _keras_scores(model, images_rgb: np.ndarray, desc: str) -> np.ndarray:
    batches = range(0, len(images_rgb), 16)
    return np.concatenate([np.asarray(model.predict_on_batch(images_rgb[i:i + 16].astype(np.float32)), np.float32)
                           for i in progress(batches, desc, unit="batch")])


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet class names through Keras' own index file; ``imagenet_<i>`` when offline."""
    import keras

    try:
        path = keras.utils.get_file(
            "imagenet_class_index.json",
            "https://storage.googleapis.com/download.tensorflow.org/data/imagenet_class_index.json",
            cache_subdir="models", file_hash="c2c37ea517e94d9795004a39431a14cb")
        index = json.loads(Path(path).read_text())
        return [index[str(i)][1] for i in range(1000)]
    except Exception as error:  # get_file raises a bare Exception on download failure
        print(f"notice: ImageNet class names unreachable ({str(error).splitlines()[0][:120]}); labels are imagenet_<index>",
              flush=True)
        return [f"imagenet_{i}" for i in range(1000)]


def runtime_metadata(float_model: FloatModel, spec: InputSpec) -> ModelMetadata:
    """What the runtime needs to run the float model's exports: labels, input, top-k."""
    return ModelMetadata(labels=list(float_model.labels), input=spec, in_model_normalization=float_model.normalization,
                         top_k=float_model.top_k)
