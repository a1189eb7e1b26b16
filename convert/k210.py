"""``python -m convert.k210`` (``make kmodel``): the float VGG + head in OUT -> a K210 kmodel, measured.

Steps: plan a VGG variant that fits the K210 (convert/k210_plan.py) -> build it and initialize it from the
backbone's strongest channels -> distill it from OUT's float model on the training set -> float TFLite ->
nncase uint8 PTQ with OUT's calibration images -> ``model_k210.kmodel`` (uint8 RGB in, planar) -> run the
test set through nncase's K210 simulator -> ``k210_report.json`` / ``.md`` and a ``k210`` section in
``metadata.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from calibration.select import read_manifest
from convert.artifacts import write_json_atomic, write_text_atomic
from convert.k210_compile import (
    DEFAULT_TOOLCHAIN,
    KmodelInput,
    compile_kmodel,
    simulate_kmodel,
    toolchain_python,
    toolchain_route,
)
from convert.k210_plan import Deployment, Plan, largest_fitting, plan_vgg
from runtime.argtypes import positive_int
from runtime.errors import ToolkitError
from runtime.metadata import METADATA_FILE, ModelMetadata, read_metadata
from runtime.preprocess import InputSpec, load_image_rgb, resize_rgb

log = logging.getLogger(__name__)

KMODEL_FILE = "model_k210.kmodel"
K210_FLOAT_TFLITE_FILE = "model_k210_float.tflite"
K210_FLOAT_KERAS_FILE = "model_k210_float.keras"
REPORT_JSON, REPORT_MD = "k210_report.json", "k210_report.md"
LABELS_HEADER = "k210_labels.h"  # for the board program (firmware_notes/k210_board/main.c)
# Goals of issue 4.
MAX_ACCURACY_GAP = 0.03  # kmodel (simulator) within 3 points of the full float VGG16 + head
MIN_AGREEMENT = 0.98  # kmodel vs its own float variant, top-1
SIMULATOR_PROCESSES = 2  # nncase's simulator runs on one core; one process per core here
HINT_LAYER = "block4_pool"  # the student layer whose feature map hint distillation matches to the teacher's
TEACHER_HINT_LAYER = "vgg16_to_block4_pool"  # the teacher's conv base, cut at block4_pool


@dataclass
class KmodelOptions:
    """A ``make kmodel`` run.

    Attributes:
        artifacts: The ``make convert`` folder: its float model is the teacher, its calibration list is used.
        data: Data root; None = the one recorded in the artifacts' metadata.
        arch: VGG family member of the student.
        width: Width multiplier; None = the planner's choice.
        input_size: Square input size; None = the planner's choice.
        deployment: Budget the plan must fit (with room to spare).
        max_gmacs: Compute cap for the planner's choice (keeps the distillation inside ``make kmodel``'s time).
        epochs: Distillation epochs (the best on the held-out images is kept).
        temperature: Distillation temperature.
        hard_label_weight: Weight of the true-label loss beside the distillation loss.
        hint_weight: Weight of the block4 feature-map (hint) loss; 0 = off.
        learning_rate: Adam's (constant) learning rate.
        batch_size: Training batch size.
        sim_images: Test images run through the simulator; None = all.
        max_train: Training images per class (None = all): for quick runs and tests.
        max_test: Test images per class (None = all).
        layout: Input layout the board feeds ("NCHW": planar, as the K210 camera's AI buffer).
        toolchain: The ``make k210-toolchain`` folder.
        seed: Everything random.
    """

    artifacts: Path
    data: Path | None = None
    arch: str = "vgg16"
    width: float | None = None
    input_size: int | None = None
    deployment: Deployment = Deployment.STANDALONE_SDK
    max_gmacs: float = 1.0
    epochs: int = 10
    temperature: float = 2.0
    hard_label_weight: float = 0.3
    hint_weight: float = 0.0
    learning_rate: float = 3e-4
    batch_size: int = 32
    sim_images: int | None = None
    max_train: int | None = None
    max_test: int | None = None
    layout: str = "NCHW"
    toolchain: Path = DEFAULT_TOOLCHAIN
    seed: int = 0
    timings_s: dict = field(default_factory=dict)


def choose_plan(options: KmodelOptions, classes: int) -> Plan:
    """The planned variant; a variant that cannot fit is refused with the planner's reasons, before any work.

    Raises:
        ToolkitError: Nothing fits, or the asked-for variant does not.
    """
    if options.width is not None and options.input_size is not None:
        plan = plan_vgg(options.arch, options.width, options.input_size, classes, options.deployment)
    else:
        plan = largest_fitting(options.arch, classes, options.deployment, options.max_gmacs)
        if plan is None:
            raise ToolkitError(f"no {options.arch} variant fits the {options.deployment.value} budget under "
                               f"{options.max_gmacs} GMAC; raise --max-gmacs or pick --deployment")
    if not plan.fits:
        raise ToolkitError(f"{options.arch} x{plan.width:g} at {plan.input_size} does not fit the K210: "
                           f"{'; '.join(plan.problems)}; see `python -m convert.k210_plan`")
    return plan


def _timed(options: KmodelOptions, name: str, started: float) -> None:
    options.timings_s[name] = round(time.perf_counter() - started, 1)
    log.info("%s: %.1f s", name, options.timings_s[name])


def _decode(paths, size: int, desc: str) -> np.ndarray:
    from convert.data import Split, decode_split

    split = Split(paths=list(paths), labels=np.zeros(len(paths), np.int64))
    kept, images = decode_split(split, InputSpec(size, size), desc)
    if len(kept.paths) != len(paths):
        raise ToolkitError(f"{len(paths) - len(kept.paths)} images could not be decoded now but could be when OUT was "
                           "made; the data set changed: rerun `make convert`")
    return images


def distill(student, train_rgb: np.ndarray, teacher_logits: np.ndarray, labels: np.ndarray, val_rgb: np.ndarray,
            val_labels: np.ndarray, options: KmodelOptions, teacher_features: np.ndarray | None = None) -> list[dict]:
    """Trains ``student`` on the teacher's softened outputs (and the true labels), with horizontal flips.

    With ``teacher_features`` (the teacher's block4 feature maps, scaled to unit RMS) and
    ``options.hint_weight`` > 0, a 1x1 regressor on the student's ``HINT_LAYER`` is also trained to
    reproduce them (FitNets-style hints); the regressor is dropped afterwards. Keeps the weights of the
    epoch with the best held-out accuracy. Returns the per-epoch history.
    """
    import keras
    import tensorflow as tf

    from convert.head import predict_batched
    from convert.k210_student import LOGITS_LAYER
    from convert.progress import progress

    classes = teacher_logits.shape[1]
    temperature, alpha = options.temperature, options.hard_label_weight
    hints = teacher_features is not None and options.hint_weight > 0
    outputs = [student.get_layer(LOGITS_LAYER).output]
    if hints:
        outputs.append(keras.layers.Conv2D(teacher_features.shape[-1], 1, name="hint_regressor")(
            student.get_layer(HINT_LAYER).output))
    trainer = keras.Model(student.input, outputs)

    def distillation_loss(y_true, y_pred):
        soft_teacher = tf.nn.softmax(y_true[:, :classes] / temperature)
        kd = -tf.reduce_sum(soft_teacher * tf.nn.log_softmax(y_pred / temperature), axis=1) * temperature ** 2
        hard = -tf.reduce_sum(y_true[:, classes:] * tf.nn.log_softmax(y_pred), axis=1)
        return (1 - alpha) * kd + alpha * hard

    targets = np.concatenate([teacher_logits, np.eye(classes, dtype=np.float32)[labels]], axis=1).astype(np.float32)
    def flip(image, target, *features):
        # One coin per image flips the pixels and, with them, the teacher's feature map (axis 1 = width).
        flipped = tf.random.uniform([], seed=options.seed) < 0.5
        image = tf.cond(flipped, lambda: tf.reverse(image, [1]), lambda: image)
        if not features:
            return tf.cast(image, tf.float32), target
        hint = tf.cast(features[0], tf.float32)
        return tf.cast(image, tf.float32), (target, tf.cond(flipped, lambda: tf.reverse(hint, [1]), lambda: hint))

    tensors = (train_rgb, targets, teacher_features.astype(np.float16)) if hints else (train_rgb, targets)
    dataset = (tf.data.Dataset.from_tensor_slices(tensors)
               .shuffle(len(train_rgb), seed=options.seed, reshuffle_each_iteration=True)
               .map(flip)
               .batch(options.batch_size)
               .prefetch(2))
    trainer.compile(optimizer=keras.optimizers.Adam(options.learning_rate),
                    loss=[distillation_loss, "mse"] if hints else distillation_loss,
                    loss_weights=[1.0, options.hint_weight] if hints else None)
    history, best_accuracy, best_weights = [], -1.0, None
    for epoch in progress(range(options.epochs), "distill", total=options.epochs, unit="epoch"):
        fit = trainer.fit(dataset, epochs=1, verbose=0)
        val_scores = predict_batched(student, val_rgb.astype(np.float32))
        val_accuracy = float(np.mean(val_scores.argmax(1) == val_labels))
        history.append({"epoch": epoch + 1, "loss": float(fit.history["loss"][-1]), "val_accuracy": val_accuracy})
        log.info("epoch %d: loss %.4f, held-out accuracy %.4f", epoch + 1, history[-1]["loss"], val_accuracy)
        if val_accuracy > best_accuracy:
            best_accuracy, best_weights = val_accuracy, student.get_weights()
    student.set_weights(best_weights)
    return history


def simulate_parallel(kmodel: Path, images_rgb: np.ndarray, kmodel_input: KmodelInput, work: Path,
                      toolchain: Path) -> np.ndarray:
    """The simulator on ``SIMULATOR_PROCESSES`` chunks at once (it is single-threaded)."""
    chunks = np.array_split(np.arange(len(images_rgb)), SIMULATOR_PROCESSES)
    with ThreadPoolExecutor(SIMULATOR_PROCESSES) as pool:
        parts = pool.map(lambda item: simulate_kmodel(kmodel, images_rgb[item[1]], kmodel_input,
                                                      work / f"simulate_{item[0]}", toolchain)[0],
                         enumerate(chunks))
        return np.concatenate(list(parts))


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def run(options: KmodelOptions) -> dict:
    """The whole ``make kmodel``; returns the report. Raises ToolkitError on bad input or a tool failure."""
    import keras

    from convert.backbone import build_backbone
    from convert.config import Arch
    from convert.data import limit_per_class, scan_dataset
    from convert.drift import compare, run_classifier
    from convert.export import ExportContext, Target, export
    from convert.head import predict_batched
    from convert.k210_student import build_student, init_from_backbone
    from convert.pipeline import held_out_index

    started_all = time.perf_counter()
    artifacts = Path(options.artifacts)
    teacher_path = artifacts / "model_float.keras"
    if not teacher_path.is_file():
        raise ToolkitError(f"{teacher_path}: no float model; run `make convert` first (make kmodel starts from it)")
    metadata = read_metadata(artifacts)
    provenance = metadata.extra.get("provenance", {})
    plan = choose_plan(options, len(metadata.labels))
    toolchain_python(options.toolchain)  # fail before the long part if nncase is not there
    log.info(plan.summary())

    started = time.perf_counter()
    data_root = Path(options.data or provenance.get("data_root", ""))
    dataset = scan_dataset(data_root)
    if provenance.get("dataset_sha256") and dataset.fingerprint() != provenance["dataset_sha256"]:
        raise ToolkitError(f"{data_root}: not the data set {artifacts} was made from (SHA-256 differs); "
                           "pass the same DATA= as for `make convert`, or rerun it")
    dataset.train = limit_per_class(dataset.train, options.max_train, options.seed)
    dataset.test = limit_per_class(dataset.test, options.max_test, options.seed)
    size, teacher_size = plan.input_size, metadata.input.height
    train_rgb = _decode(dataset.train.paths, size, "decode train (student size)")
    teacher_rgb = train_rgb if size == teacher_size else _decode(dataset.train.paths, teacher_size,
                                                                 "decode train (teacher size)")
    test_paths = dataset.test.paths
    test_labels = dataset.test.labels
    test_rgb = _decode(test_paths, size, "decode test")
    items = read_manifest(artifacts / provenance.get("calibration", {}).get("manifest", "calibration_manifest.json"))
    calibration = np.stack([resize_rgb(load_image_rgb(dataset.root / item.file), InputSpec(size, size))
                            for item in items])
    position = {p.relative_to(dataset.root).as_posix(): i for i, p in enumerate(dataset.train.paths)}
    held_out = held_out_index(dataset.train.labels, {position[i.file] for i in items if i.file in position},
                              options.seed)
    fit_index = np.setdiff1d(np.arange(len(train_rgb)), held_out)
    _timed(options, "decode", started)

    started = time.perf_counter()
    keras.utils.set_random_seed(options.seed)
    teacher = keras.models.load_model(teacher_path)
    teacher_features = None
    if options.hint_weight > 0:
        if TEACHER_HINT_LAYER not in [layer.name for layer in teacher.layers]:
            raise ToolkitError(f"{teacher_path}: no {TEACHER_HINT_LAYER} layer for hints (head not block4-conv?); "
                               "drop --hint-weight")
        # The teacher is a chain (pixels -> caffe_preprocess -> conv base -> head): call its layers again
        # to expose the conv base's output beside the head's.
        pixels = keras.Input(teacher.input.shape[1:])
        x, features = pixels, None
        for layer in teacher.layers[1:]:
            x = layer(x)
            features = x if layer.name == TEACHER_HINT_LAYER else features
        both = keras.Model(pixels, [x, features])
        outputs = [both.predict_on_batch(teacher_rgb[i:i + 16].astype(np.float32)) for i in range(0, len(teacher_rgb), 16)]
        teacher_probs = np.concatenate([np.asarray(o[0], np.float32) for o in outputs])
        teacher_features = np.concatenate([np.asarray(o[1], np.float16) for o in outputs])
        rms = float(np.sqrt(np.mean(np.square(teacher_features[:64].astype(np.float32)))))
        teacher_features = (teacher_features / np.float16(rms)).astype(np.float16)
    else:
        teacher_probs = predict_batched(teacher, teacher_rgb.astype(np.float32))
    teacher_logits = np.log(np.clip(teacher_probs, 1e-7, 1.0)).astype(np.float32)
    del teacher_rgb
    _timed(options, "teacher outputs", started)

    started = time.perf_counter()
    student = build_student(plan, seed=options.seed)
    weights = provenance.get("weights", "hed")
    backbone = build_backbone(Arch(plan.arch), weights if weights in ("imagenet", "hed") else "hed", 224)
    init = init_from_backbone(student, backbone.model, plan.arch)
    labels = dataset.train.labels
    history = distill(student, train_rgb[fit_index], teacher_logits[fit_index], labels[fit_index],
                      train_rgb[held_out], labels[held_out], options,
                      None if teacher_features is None else teacher_features[fit_index])
    _timed(options, "distill", started)

    started = time.perf_counter()
    kmodel_input = KmodelInput(size, size, layout=options.layout)
    with tempfile.TemporaryDirectory(prefix="kmodel-export-") as tmp:
        ctx = ExportContext(model=student, out_dir=Path(tmp), work_dir=Path(tmp))
        written = export(ctx, [Target.KERAS, Target.TFLITE_FLOAT])
        float_tflite = artifacts / K210_FLOAT_TFLITE_FILE
        os.replace(written[Target.TFLITE_FLOAT], float_tflite)
        os.replace(written[Target.KERAS], artifacts / K210_FLOAT_KERAS_FILE)
    work = artifacts / "k210_work"
    kmodel, compiled = compile_kmodel(float_tflite, calibration, kmodel_input, artifacts / KMODEL_FILE, work / "compile",
                                      options.toolchain)
    _timed(options, "export and compile", started)

    started = time.perf_counter()
    count = len(test_rgb) if options.sim_images is None else min(options.sim_images, len(test_rgb))
    rng = np.random.default_rng(options.seed)
    chosen = np.sort(rng.permutation(len(test_rgb))[:count]) if count < len(test_rgb) else np.arange(len(test_rgb))
    student_meta = ModelMetadata(labels=metadata.labels, input=InputSpec(size, size))
    float_scores = run_classifier(float_tflite, student_meta, test_rgb, "student float TFLite on test")
    kmodel_scores = simulate_parallel(kmodel, test_rgb[chosen], kmodel_input, work, options.toolchain)
    _timed(options, "evaluate", started)

    teacher_accuracy = metadata.extra.get("results", {}).get("accuracy_float")
    float_cmp = compare(float_scores, float_scores, test_labels)
    sim_cmp = compare(float_scores[chosen], kmodel_scores, test_labels[chosen])
    kmodel_accuracy = sim_cmp["accuracy_candidate"]
    report = {
        "plan": {"arch": plan.arch, "width": plan.width, "input_size": plan.input_size, "params": plan.params,
                 "gmacs": round(plan.macs / 1e9, 3), "deployment": plan.deployment.value,
                 "budget_bytes": plan.budget_bytes, "planned_main_memory_bytes": plan.main_memory_bytes,
                 "peak_kpu_bytes": plan.peak_kpu_bytes, "peak_kpu_layer": plan.peak_kpu_layer.name,
                 "summary": plan.summary()},
        "init_kept_l1_share": init.kept_l1_share,
        "distillation": {"epochs": options.epochs, "temperature": options.temperature,
                         "hard_label_weight": options.hard_label_weight, "hint_weight": options.hint_weight,
                         "learning_rate": options.learning_rate,
                         "fit_images": int(len(fit_index)), "held_out_images": int(len(held_out)),
                         "history": history, "teacher": str(teacher_path.name), "backbone_init": backbone.source},
        "kmodel": {"file": KMODEL_FILE, "bytes": kmodel.stat().st_size, "sha256": _sha256(kmodel), "version": 5,
                   "nncase_memory_bytes": compiled["memory"], "compile_s": compiled["compile_s"],
                   "calibration_images": int(len(calibration)), "toolchain": toolchain_route(options.toolchain),
                   "input": {"dtype": "uint8", "layout": kmodel_input.layout, "shape": kmodel_input.shape,
                             "color_order": "RGB", "pixel_range": [0, 255], "resize": "squash"},
                   "output": {"dtype": "float32", "shape": [1, len(metadata.labels)], "activation": "softmax"}},
        "results": {
            "test_images": int(len(test_rgb)),
            "simulated_images": int(count),
            "accuracy_full_float_vgg": teacher_accuracy,
            "accuracy_k210_float": float_cmp["accuracy_reference"],
            "accuracy_k210_float_on_simulated": sim_cmp["accuracy_reference"],
            "accuracy_kmodel_simulator": kmodel_accuracy,
            "top1_agreement_kmodel_vs_float": sim_cmp["top1_agreement"],
            "mean_abs_prob_diff": sim_cmp["mean_abs_prob_diff"],
            "max_abs_prob_diff": sim_cmp["max_abs_prob_diff"],
            "goal_accuracy_gap": MAX_ACCURACY_GAP,
            "goal_agreement": MIN_AGREEMENT,
            "meets_accuracy_goal": (teacher_accuracy is not None and count == len(test_rgb)
                                    and teacher_accuracy - kmodel_accuracy <= MAX_ACCURACY_GAP),
            "meets_agreement_goal": sim_cmp["top1_agreement"] >= MIN_AGREEMENT,
        },
        "timings_s": {**options.timings_s, "total": round(time.perf_counter() - started_all, 1)},
        "options": {key: (str(value) if isinstance(value, (Path, Deployment)) else value)
                    for key, value in asdict(options).items() if key != "timings_s"},
    }
    write_json_atomic(artifacts / REPORT_JSON, report)
    write_text_atomic(artifacts / REPORT_MD, render_markdown(report))
    write_text_atomic(artifacts / LABELS_HEADER, labels_header(metadata.labels, size, size))
    _update_metadata(artifacts, report)
    return report


def _update_metadata(artifacts: Path, report: dict) -> None:
    path = artifacts / METADATA_FILE
    data = json.loads(path.read_text(encoding="utf-8"))
    data["k210"] = {**report["kmodel"], "plan": report["plan"]["summary"], "results": report["results"]}
    for name in (KMODEL_FILE, K210_FLOAT_TFLITE_FILE):
        data.setdefault("artifacts", {})[name] = {"sha256": _sha256(artifacts / name),
                                                  "bytes": (artifacts / name).stat().st_size}
    write_json_atomic(path, data)


def labels_header(labels: list[str], width: int, height: int) -> str:
    """A C header with the labels and input size, for the board program."""
    quoted = ", ".join(json.dumps(label) for label in labels)
    return (f"/* Written by `make kmodel`: what model_k210.kmodel expects and answers. */\n#pragma once\n"
            f"#define K210_NUM_CLASSES {len(labels)}\n#define K210_INPUT_W {width}\n#define K210_INPUT_H {height}\n"
            f"static const char *const K210_LABELS[K210_NUM_CLASSES] = {{{quoted}}};\n")


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def render_markdown(report: dict) -> str:
    r, k = report["results"], report["kmodel"]
    memory = k["nncase_memory_bytes"]
    lines = [
        "# K210 kmodel report", "",
        f"Plan: {report['plan']['summary']}", "",
        "| | accuracy |", "|---|---|",
        f"| full float VGG + head (make convert) | {_pct(r['accuracy_full_float_vgg'])} |",
        f"| K210 variant, float ({r['test_images']} test images) | {_pct(r['accuracy_k210_float'])} |",
        f"| kmodel in nncase's simulator ({r['simulated_images']} test images) | {_pct(r['accuracy_kmodel_simulator'])} |",
        "",
        f"Top-1 agreement kmodel vs its float variant: {_pct(r['top1_agreement_kmodel_vs_float'])} "
        f"(goal >= {_pct(r['goal_agreement'])}: {'met' if r['meets_agreement_goal'] else 'MISSED'}); mean/max abs "
        f"prob diff {r['mean_abs_prob_diff']:.4f} / {r['max_abs_prob_diff']:.4f}.",
        f"Accuracy gap to the full float model: goal <= {100 * r['goal_accuracy_gap']:.0f} points: "
        f"{'met' if r['meets_accuracy_goal'] else 'MISSED'}.", "",
        f"kmodel: {k['bytes']:,} bytes (V5), input {k['input']['dtype']} {k['input']['layout']} {k['input']['shape']} "
        f"{k['input']['color_order']}; nncase memory: " + ", ".join(f"{n} {v:,} B" for n, v in memory.items()), "",
        f"Toolchain: {k['toolchain']}. Timings (s): " + ", ".join(f"{n} {v}" for n, v in report["timings_s"].items()),
    ]
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m convert.k210", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts/vgg16_cats_dogs"),
                        help="the make convert folder (teacher, calibration list); the kmodel is written there")
    parser.add_argument("--data", type=Path, default=None, help="data root; None = the one recorded in metadata.json")
    parser.add_argument("--arch", type=str, default="vgg16", choices=["vgg16", "vgg19"])
    parser.add_argument("--width", type=float, default=None, help="width multiplier; None = planner's choice")
    parser.add_argument("--input-size", type=positive_int, default=None, help="input size; None = planner's choice")
    parser.add_argument("--deployment", type=str, default=Deployment.STANDALONE_SDK.value,
                        choices=[d.value for d in Deployment], help="memory budget to fit")
    parser.add_argument("--max-gmacs", type=float, default=1.0, help="compute cap for the planner's choice")
    parser.add_argument("--epochs", type=positive_int, default=10, help="distillation epochs")
    parser.add_argument("--temperature", type=float, default=2.0, help="distillation temperature")
    parser.add_argument("--hint-weight", type=float, default=0.0,
                        help="weight of the block4 feature-map (hint) loss; 0 = off")
    parser.add_argument("--sim-images", type=str, default="all", help="test images run in the simulator (N or all)")
    parser.add_argument("--max-train", type=positive_int, default=None, help="training images per class (quick runs)")
    parser.add_argument("--max-test", type=positive_int, default=None, help="test images per class (quick runs)")
    parser.add_argument("--layout", type=str, default="NCHW", choices=["NCHW", "NHWC"], help="kmodel input layout")
    parser.add_argument("--toolchain", type=Path, default=DEFAULT_TOOLCHAIN, help="make k210-toolchain's folder")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    options = KmodelOptions(
        artifacts=args.artifacts, data=args.data, arch=args.arch, width=args.width, input_size=args.input_size,
        deployment=Deployment(args.deployment), max_gmacs=args.max_gmacs, epochs=args.epochs,
        temperature=args.temperature, hint_weight=args.hint_weight, sim_images=None if args.sim_images == "all" else int(args.sim_images),
        max_train=args.max_train, max_test=args.max_test, layout=args.layout, toolchain=args.toolchain,
        seed=args.seed,
    )
    try:
        report = run(options)
    except ToolkitError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(render_markdown(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
