"""Drift of a quantized model against its float model: agreement, probability drift, per-layer blame."""

from __future__ import annotations

import csv
import io
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from runtime.interpreter import Classifier
from runtime.metadata import ModelMetadata
from runtime.preprocess import normalize

log = logging.getLogger(__name__)

WORST_DISAGREEMENTS = 12  # rows listed in the report


def run_classifier(model_path: Path, metadata: ModelMetadata, images_rgb: np.ndarray, desc: str,
                   threads: int | None = None, delegates: bool = True) -> np.ndarray:
    """Scores of a TFLite model on already-resized uint8 RGB images, through the runtime's own path (with
    ``delegates=False``, TFLite's builtin kernels instead of XNNPACK's)."""
    from convert.progress import progress

    classifier = Classifier(model_path, metadata, num_threads=threads, delegates=delegates)
    return np.stack([
        classifier.predict(normalize(image, metadata.input.normalization))
        for image in progress(images_rgb, desc)
    ])


@dataclass
class BudgetCheck:
    """Whether a candidate model agrees with the reference often enough, measured until the answer is known.

    Attributes:
        passed: Top-1 agreement >= the budget on all ``n`` images.
        n: Images the budget is judged on.
        seen: Images run before the answer was known (``n`` when it passed).
        disagreements: Top-1 disagreements among the ``seen`` images.
        allowed: The most disagreements on ``n`` images that still meet the budget.
    """

    passed: bool
    n: int
    seen: int
    disagreements: int
    allowed: int

    @property
    def agreement(self) -> float | None:
        """Top-1 agreement on all ``n`` images; None when the check stopped early."""
        return 1.0 - self.disagreements / self.n if self.seen == self.n else None

    def describe(self) -> str:
        if self.agreement is not None:
            return f"validation agreement {self.agreement:.2%}"
        return (f"{self.disagreements} disagreements in the first {self.seen} of {self.n} images, more than the "
                f"{self.allowed} the budget allows (stopped there)")


def allowed_disagreements(n: int, min_agreement: float) -> int:
    """The most top-1 disagreements on ``n`` images with agreement >= ``min_agreement``."""
    return n - math.ceil(round(min_agreement * n, 9))  # round: 0.995 * 200 is 199.00000000000003


def check_budget(model_path: Path, metadata: ModelMetadata, images_rgb: np.ndarray, reference: np.ndarray,
                 min_agreement: float, desc: str, threads: int | None = None) -> BudgetCheck:
    """Runs the model image by image and stops once it has more disagreements than the budget allows.

    A candidate far from the budget is rejected after a few images instead of all of them; the answer is
    the same as running them all. Images go in a fixed shuffled order, so a failure that sits in one class
    (the images are sorted by class) is found as early as one spread over both.
    """
    from convert.progress import progress

    classifier = Classifier(model_path, metadata, num_threads=threads)
    n, allowed = len(images_rgb), allowed_disagreements(len(images_rgb), min_agreement)
    reference_top = reference.argmax(1)
    disagreements = 0
    order = np.random.default_rng(0).permutation(n)
    for seen, i in enumerate(progress(order, desc, total=n), start=1):
        scores = classifier.predict(normalize(images_rgb[i], metadata.input.normalization))
        disagreements += int(scores.argmax() != reference_top[i])
        if disagreements > allowed:
            return BudgetCheck(False, n, seen, disagreements, allowed)
    return BudgetCheck(True, n, n, disagreements, allowed)


def compare(reference: np.ndarray, candidate: np.ndarray, labels: np.ndarray | None) -> dict:
    """Agreement and probability drift of ``candidate`` against ``reference`` (both (N, C) scores)."""
    ref_top, cand_top = reference.argmax(1), candidate.argmax(1)
    delta = np.abs(reference - candidate)
    result = {
        "n": int(len(reference)),
        "top1_agreement": float((ref_top == cand_top).mean()),
        "mean_abs_prob_diff": float(delta.mean()),
        "max_abs_prob_diff": float(delta.max()),
    }
    if labels is not None:
        result["accuracy_reference"] = float((ref_top == labels).mean())
        result["accuracy_candidate"] = float((cand_top == labels).mean())
    return result


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, n_classes: int) -> list[list[int]]:
    matrix = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix.tolist()


def worst_disagreements(files: Sequence[str], reference: np.ndarray, candidate: np.ndarray,
                        class_names: Sequence[str], limit: int = WORST_DISAGREEMENTS) -> list[dict]:
    """Images whose probabilities moved most, disagreements first."""
    ref_top, cand_top = reference.argmax(1), candidate.argmax(1)
    delta = np.abs(reference - candidate).max(1)
    order = sorted(range(len(files)), key=lambda i: (ref_top[i] == cand_top[i], -delta[i]))[:limit]
    return [
        {
            "file": files[i],
            "float": class_names[ref_top[i]],
            "float_score": round(float(reference[i, ref_top[i]]), 4),
            "quantized": class_names[cand_top[i]],
            "quantized_score": round(float(candidate[i, cand_top[i]]), 4),
            "max_abs_prob_diff": round(float(delta[i]), 4),
        }
        for i in order
    ]


def short_layer_name(tensor_name: str) -> str:
    """An op's own name: the first of the fused names TFLite joins with ';', without the model prefix."""
    first = tensor_name.split(";")[0]
    return "/".join(part.removesuffix("_1") for part in first.split("/")[1:]) or first


@dataclass
class LayerError:
    """Quantization error of one op's output, from TFLite's QuantizationDebugger.

    ``rmse_over_scale`` is the RMS error in units of the output's quantization step: about 0.29 is the
    rounding floor (a uniform error of half a step); values far above 1 mean the op loses information.
    """

    op_name: str
    tensor_name: str
    rmse_over_scale: float
    scale: float
    max_abs_error: float

    @property
    def short_name(self) -> str:
        return short_layer_name(self.tensor_name)

    def to_dict(self) -> dict:
        return {"op": self.op_name, "layer": self.short_name, "tensor": self.tensor_name, "rmse_over_scale": round(self.rmse_over_scale, 4),
                "scale": self.scale, "max_abs_error": round(self.max_abs_error, 6)}


def layer_errors(debugger) -> list[LayerError]:
    """Per-layer error of the int8 model, worst first.

    Args:
        debugger: A QuantizationDebugger made with the inputs to measure on as its debug dataset (see
            ``export.quantization_debugger``).
    """
    from convert.tflite.export import interpreter_warnings_quiet

    with interpreter_warnings_quiet():
        debugger.run()
    buffer = io.StringIO()
    debugger.layer_statistics_dump(buffer)
    rows = []
    for row in csv.DictReader(io.StringIO(buffer.getvalue())):
        scale = float(row["scale"])
        mse = float(row["mean_squared_error"])
        rows.append(LayerError(
            op_name=row["op_name"], tensor_name=row["tensor_name"],
            rmse_over_scale=math.sqrt(mse) / scale if scale > 0 else float("inf"),
            scale=scale, max_abs_error=float(row["max_abs_error"]),
        ))
    return sorted(rows, key=lambda layer: layer.rmse_over_scale, reverse=True)
