"""The drift gate: int8 against float on the test set, per-layer blame, and the automatic float-fallback fix."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from convert.artifacts import write_json_atomic, write_text_atomic
from convert.config import ConvertOptions, FixMode
from convert.data import Prepared
from convert.float_model import FloatModel, runtime_metadata
from convert.schema import DRIFT_JSON_FILE, DRIFT_MD_FILE
from convert.tflite import drift
from convert.tflite import report as report_files
from convert.tflite.export import ExportContext, Target, export, export_tflite_int8, quantization_debugger
from convert.tflite.ops import TFLiteReport, check_full_integer, inspect_tflite, producer_chain
from runtime.metadata import ModelMetadata
from runtime.preprocess import normalize
from runtime.timing import time_calls

FIX_FLOAT_LAYER_STEPS = (1, 2, 4, 8)  # float sets tried, blamed op first; each is quantized from the one calibration
LATENCY_RUNS = 10  # invokes per model when the fix's latency cost is measured (median)


@dataclass
class QuantizeOutcome:
    """The int8 model's drift and what was done about it."""

    report: dict
    passed: bool
    int8_path: Path
    float_path: Path


@dataclass
class FixOutcome:
    """What the automatic fix did, in one shape whether it was not attempted, found nothing, or fixed.

    Fields that do not apply to the outcome are None and left out of the report.
    """

    method: str
    summary: str
    steps: list[str]
    float_layers: list[dict] = field(default_factory=list)
    blamed: dict | None = None
    float_ops: list[str] | None = None
    bytes_before: int | None = None
    bytes_after: int | None = None
    latency_ms_before: float | None = None
    latency_ms_after: float | None = None
    output_dtype_after: str | None = None
    validation_images: int | None = None
    test_top1_agreement_before: float | None = None  # the full-integer model's
    test_top1_agreement_after: float | None = None
    test_scores: np.ndarray | None = None  # the fixed model's test scores; None when nothing was fixed
    model_after: TFLiteReport | None = None  # the fixed model's op inspection (the report's int8_model)

    @property
    def fixed(self) -> bool:
        return self.test_scores is not None

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name not in ("test_scores", "model_after") and getattr(self, f.name) is not None}


@dataclass
class _Measured:
    """The int8 model against the float model on the test set."""

    int8_scores: np.ndarray
    test: dict  # drift.compare of float vs int8
    passed: bool


def _stratified_positions(labels: np.ndarray, count: int | None) -> np.ndarray:
    """Evenly spread positions over a label-sorted list, so a prefix-sized subset keeps every class."""
    if count is None or count >= len(labels):
        return np.arange(len(labels))
    return np.unique(np.linspace(0, len(labels) - 1, count).round().astype(np.int64))


def quantize_and_check(float_model: FloatModel, prepared: Prepared, calibration: np.ndarray,
                       options: ConvertOptions, out_dir: Path, work_dir: Path) -> QuantizeOutcome:
    """Exports float and int8 TFLite, checks the int8 ops, measures drift, and fixes it if asked.

    Steps: 1. export both models and check that the int8 one is integer throughout; 2. run both on the test
    set; 3. blame layers with the QuantizationDebugger; 4. with ``--fix auto`` and a missed budget, leave
    the blamed layers in float (:func:`_auto_fix`) and measure again (a fallback that misses the budget on
    the test set too is undone: the full-integer model stays); 5. write the drift report.

    Args:
        float_model: The float model and its reference scores.
        prepared: Decoded data.
        calibration: float32 (N, H, W, 3) calibration inputs.
        options: Run options (budget, fix mode, I/O type, evaluation sizes).
        out_dir: Where the TFLite files and report go.
        work_dir: Scratch folder.
    """
    ctx = ExportContext(model=float_model.model, out_dir=out_dir, work_dir=work_dir, calibration=calibration,
                        io_type=options.io_type)
    written = export(ctx, [Target.TFLITE_FLOAT, Target.TFLITE_INT8])
    int8_path, float_path = written[Target.TFLITE_INT8], written[Target.TFLITE_FLOAT]
    int8_report = inspect_tflite(int8_path)
    check_full_integer(int8_report, int8_path, options.io_type.value)

    metadata = runtime_metadata(float_model, prepared.spec)
    measured = _measure(float_model, prepared, metadata, int8_path, options)
    float_tflite = _float_tflite_check(float_model, prepared, metadata, float_path, options)
    layers, debug_images = [], 0
    if options.debug_images:  # 0: no per-layer report (the debugger holds a float and an int8 copy of the model)
        debug_positions = _stratified_positions(prepared.dataset.test.labels, options.debug_images)
        debug_inputs = normalize(prepared.test_rgb[debug_positions], prepared.spec.normalization)
        layers, debug_images = drift.layer_errors(quantization_debugger(ctx, debug_inputs)), len(debug_inputs)

    fix = None
    if not measured.passed and options.fix is FixMode.AUTO:
        fix = _auto_fix(ctx, float_model, prepared, metadata, layers, options, int8_path)
        fix.test_top1_agreement_before = measured.test["top1_agreement"]
        if fix.fixed:
            fixed = _measured(float_model, prepared, fix.test_scores, options)
            fix.test_top1_agreement_after = fixed.test["top1_agreement"]
            if fixed.passed:
                measured, int8_report = fixed, fix.model_after
            else:
                # The fallback's cost (size, speed, float ops an integer-only target cannot run) bought no
                # pass, so the full-integer model is what stays written, and what the report describes.
                _restore_full_integer(ctx)
                fix.summary += (f"; it met the budget on the held-out validation images, but on the test set "
                                f"agreement is {fixed.test['top1_agreement']:.2%}, still below it, so the "
                                f"full-integer model ({measured.test['top1_agreement']:.2%}) is kept")

    report = _report(float_model, prepared, options, measured, float_tflite, layers, debug_images,
                     int8_report.to_dict(), fix)
    n_classes = len(float_model.labels)
    report_files.write_plots(out_dir, float_model.labels if n_classes <= 20 else [str(i) for i in range(n_classes)],
                             report["confusion"], np.abs(float_model.test_scores - measured.int8_scores).max(1),
                             layers)
    write_json_atomic(out_dir / DRIFT_JSON_FILE, report)
    write_text_atomic(out_dir / DRIFT_MD_FILE, report_files.render_markdown(report))
    return QuantizeOutcome(report, measured.passed, int8_path, float_path)


def _test_labels(float_model: FloatModel, prepared: Prepared) -> np.ndarray | None:
    """True labels where accuracy means something (not for VGG's 1000-class top on cats and dogs)."""
    return prepared.dataset.test.labels if float_model.top_k == 1 else None


def _measured(float_model: FloatModel, prepared: Prepared, int8_scores: np.ndarray,
              options: ConvertOptions) -> _Measured:
    test = drift.compare(float_model.test_scores, int8_scores, _test_labels(float_model, prepared))
    return _Measured(int8_scores, test, test["top1_agreement"] >= options.min_agreement)


def _measure(float_model: FloatModel, prepared: Prepared, metadata: ModelMetadata, int8_path: Path,
             options: ConvertOptions) -> _Measured:
    """The int8 model on every test image, through the runtime's own path."""
    scores = drift.run_classifier(int8_path, metadata, prepared.test_rgb, "int8 TFLite on test", options.threads)
    return _measured(float_model, prepared, scores, options)


def _float_tflite_check(float_model: FloatModel, prepared: Prepared, metadata: ModelMetadata, float_path: Path,
                        options: ConvertOptions) -> dict | None:
    """The float TFLite against Keras on ``--float-tflite-eval`` stratified test images (None: none asked)."""
    positions = _stratified_positions(prepared.dataset.test.labels, options.float_tflite_eval)
    if not len(positions):
        return None
    labels = _test_labels(float_model, prepared)
    scores = drift.run_classifier(float_path, metadata, prepared.test_rgb[positions], "float TFLite on test",
                                  options.threads)
    return drift.compare(float_model.test_scores[positions], scores, labels[positions] if labels is not None else None)


def _report(float_model: FloatModel, prepared: Prepared, options: ConvertOptions, measured: _Measured,
            float_tflite: dict | None, layers: list, layers_measured_on: int, int8_model: dict,
            fix: FixOutcome | None) -> dict:
    """``drift_report.json``: the verdict, the test drift, the per-layer error, the fix."""
    dataset = prepared.dataset
    test_labels = _test_labels(float_model, prepared)
    n_classes = len(float_model.labels)
    float_top, int8_top = float_model.test_scores.argmax(1), measured.int8_scores.argmax(1)
    if test_labels is not None:
        confusion = {"float": drift.confusion_matrix(test_labels, float_top, n_classes),
                     "int8": drift.confusion_matrix(test_labels, int8_top, n_classes)}
    else:
        confusion = {"int8 vs float top-1 (rows: float)": drift.confusion_matrix(float_top, int8_top, n_classes)}
    verdict = "PASS" if measured.passed else "FAIL"
    if measured.passed and fix is not None:
        verdict = "PASS with float fallback"
    test = measured.test
    test_files = [p.relative_to(dataset.root).as_posix() for p in dataset.test.paths]
    return {
        "model": _model_line(float_model.description),
        "weights": float_model.description.get("weights"),
        "verdict": verdict,
        "budget": {"min_top1_agreement": options.min_agreement},
        "test": {
            "n": test["n"],
            "accuracy_float": test.get("accuracy_reference"),
            "accuracy_int8": test.get("accuracy_candidate"),
            "top1_agreement": test["top1_agreement"],
            "mean_abs_prob_diff": test["mean_abs_prob_diff"],
            "max_abs_prob_diff": test["max_abs_prob_diff"],
        },
        "float_tflite": float_tflite,
        "confusion": confusion,
        "worst_disagreements": drift.worst_disagreements(test_files, float_model.test_scores, measured.int8_scores,
                                                         float_model.labels),
        "layers_measured_on": int(layers_measured_on),
        "layers": [layer.to_dict() for layer in layers],
        "worst_layer": layers[0].to_dict() if layers else None,
        "int8_model": int8_model,
        "fix": None if fix is None else fix.to_dict(),
    }


def _auto_fix(ctx: ExportContext, float_model: FloatModel, prepared: Prepared, metadata: ModelMetadata,
              layers: list, options: ConvertOptions, int8_path: Path) -> FixOutcome:
    """Leaves the worst layer and the ops feeding it in float, in growing sets, until the budget is met.

    The sets are chosen on held-out training images, never on the test set. A set stops being run once it
    has more disagreements than the budget allows (``drift.check_budget``), so only the set that passes is
    run on every validation image. Without a fix, the full-integer model is restored at ``int8_path``.
    """
    validation_rgb = prepared.train_rgb[float_model.validation_index]
    reference = float_model.held_out_scores()
    baseline = drift.check_budget(int8_path, metadata, validation_rgb, reference, options.min_agreement,
                                  "fix: int8 on validation", options.threads)
    steps = [f"full int8 on {len(validation_rgb)} held-out images: {baseline.describe()}"]
    if baseline.passed:
        summary = (f"not attempted: the full-integer model already meets the budget on the {len(validation_rgb)} "
                   "held-out validation images, so no float fallback can be chosen on them; the test drift comes "
                   "from images near the decision boundary: a better-margined float model is needed")
        return FixOutcome("float fallback", summary, steps)
    baseline_latency = _median_latency_ms(int8_path, metadata, validation_rgb[0], options.threads)
    baseline_bytes = int8_path.stat().st_size
    blamed = layers[0]
    chain = producer_chain(ctx.written[Target.TFLITE_FLOAT], blamed.tensor_name, max(FIX_FLOAT_LAYER_STEPS))
    errors = {layer.tensor_name: layer for layer in layers}
    chosen: list = []
    for count in sorted({min(step, len(chain)) for step in FIX_FLOAT_LAYER_STEPS}):
        chosen = chain[:count]
        ctx.float_fallback_nodes = tuple(tensor for _, tensor in chosen)
        export_tflite_int8(ctx)
        check = drift.check_budget(int8_path, metadata, validation_rgb, reference, options.min_agreement,
                                   f"fix: {count} float op(s)", options.threads)
        names = ", ".join(f"{op} {drift.short_layer_name(tensor)}" for op, tensor in chosen)
        steps.append(f"{count} op(s) in float ({names}): {check.describe()}")
        if check.passed:
            after = inspect_tflite(int8_path)
            latency = _median_latency_ms(int8_path, metadata, validation_rgb[0], options.threads)
            bytes_after = int8_path.stat().st_size
            return FixOutcome(
                method="float fallback (selective quantization) of the blamed layer and the ops feeding it",
                summary=(f"{count} op(s) left in float ({', '.join(op for op, _ in chosen)}); "
                         f"size {baseline_bytes / 1e6:.2f} -> {bytes_after / 1e6:.2f} MB, "
                         f"latency {baseline_latency:.1f} -> {latency:.1f} ms"),
                steps=steps, blamed=blamed.to_dict(),
                float_layers=[errors[tensor].to_dict() if tensor in errors else {"op": op, "tensor": tensor}
                              for op, tensor in chosen],
                float_ops=after.float_ops, bytes_before=baseline_bytes, bytes_after=bytes_after,
                latency_ms_before=baseline_latency, latency_ms_after=latency, output_dtype_after=after.output_dtype,
                validation_images=int(len(validation_rgb)), model_after=after,
                test_scores=drift.run_classifier(int8_path, metadata, prepared.test_rgb, "fixed int8 on test",
                                                 options.threads))
    # Not fixable this way: restore the full-integer model so the rejected artifacts show the original.
    _restore_full_integer(ctx)
    summary = (f"no fix with up to {len(chosen)} float op(s) before {blamed.op_name} {blamed.short_name}; "
               f"a better-margined float model is needed ({float_model.remedy})")
    return FixOutcome("float fallback", summary, steps, blamed=blamed.to_dict())


def _restore_full_integer(ctx: ExportContext) -> None:
    """Rewrites the int8 file without any float fallback (quantized from the one calibration again)."""
    ctx.float_fallback_nodes = ()
    export_tflite_int8(ctx)


def _median_latency_ms(model_path: Path, metadata: ModelMetadata, image_rgb: np.ndarray, threads: int | None) -> float:
    from runtime.interpreter import Classifier

    classifier = Classifier(model_path, metadata, num_threads=threads)
    tensor = classifier.input_tensor(normalize(image_rgb, metadata.input.normalization))
    return time_calls(lambda: classifier.invoke(tensor), LATENCY_RUNS).median_ms


def _model_line(description: dict) -> str:
    """What the report's first line calls the model: ours by backbone and head, a brought one by its file."""
    if "model_file" not in description:
        return f"{description.get('arch')} + {description.get('head')} head"
    retrained = ", head retrained here (--retrain-head)" if description.get("retrained_head") else ""
    return (f"brought {description['head']} {description['model_file']} ({description.get('model_format')}; "
            f"{description.get('arch')}; preprocess {description.get('preprocess')}; output "
            f"{description.get('output')}{retrained})")
