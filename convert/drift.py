"""``python -m convert.drift`` (``make drift IMAGES=...``): float against int8 on a folder of your own images.

The conversion measured drift on its test split; a device sees other photos. This runs the float and the
int8 TFLite of an artifacts folder on any folder, through the runtime's own preprocessing (no TensorFlow):

- a folder of class subfolders named as the model's labels, or one class's own folder, is *labelled*:
  accuracies of both models and their confusion matrices too;
- any other folder (images in it and in its subfolders) is *unlabelled*: agreement, probability
  differences, what each model predicts, the images that moved most.

It writes ``drift_images_<folder>.json`` and ``.md`` beside the conversion's own reports.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np

from convert.artifacts import write_json_atomic, write_text_atomic
from convert.data import SKIPPED_LISTED, Split, decode_split, image_files, relative_path, skipped_listing
from convert.schema import DEFAULT_ARTIFACTS, DRIFT_IMAGES_PREFIX, FLOAT_TFLITE_FILE, INT8_TFLITE_FILE
from convert.tflite.drift import compare, confusion_matrix, run_classifier, worst_disagreements
from runtime.argtypes import OneLineParser, positive_int
from runtime.cli import run_main
from runtime.errors import ToolkitError
from runtime.metadata import read_metadata
from runtime.sources import IMAGE_SUFFIXES


def scan_images(folder: Path, labels: list[str]) -> tuple[Split, bool, str]:
    """The images of ``folder``; labelled when its subfolders are all named as labels.

    Returns:
        (the images with label indices, -1 where unlabelled; whether labelled; a note on how it was read).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ToolkitError(f"{folder}: image folder not found; pass --images FOLDER (images, or class subfolders)")
    subfolders = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    names = [p.name for p in subfolders]
    if subfolders and set(names) <= set(labels):
        paths, indices, skipped = [], [], []
        for sub in subfolders:
            files, sub_skipped = image_files(sub, labels.index(sub.name))
            paths += files
            indices += [labels.index(sub.name)] * len(files)
            skipped += sub_skipped
        split, labelled = Split(paths, np.asarray(indices, np.int64), skipped), True
        note = f"labelled by its subfolders ({', '.join(names)})"
    elif not subfolders and folder.resolve().name in labels:  # one class's folder: e.g. --images test/cat
        label = labels.index(folder.resolve().name)
        files, skipped = image_files(folder, label)
        split, labelled = Split(files, np.full(len(files), label, np.int64), skipped), True
        note = f"labelled by its name ({folder.resolve().name})"
    else:
        paths, skipped = [], []
        for sub in [folder, *sorted(p for p in folder.rglob("*") if p.is_dir() and not p.name.startswith("."))]:
            files, sub_skipped = image_files(sub, -1)
            paths += files
            skipped += sub_skipped
        split, labelled = Split(paths, np.full(len(paths), -1, np.int64), skipped), False
        note = ("unlabelled" if not subfolders else
                f"unlabelled: its subfolders ({', '.join(names[:5])}) are not all labels of the model "
                f"({', '.join(labels)})")
    if not split.paths:
        raise ToolkitError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in it or its subfolders")
    return split, labelled, note


def measure(artifacts: Path, folder: Path, threads: int | None = None) -> dict:
    """Both models on the folder's images: the report's content."""
    artifacts, folder = Path(artifacts), Path(folder)
    metadata = read_metadata(artifacts)
    models = [artifacts / FLOAT_TFLITE_FILE, artifacts / INT8_TFLITE_FILE]
    for path in models:
        if not path.is_file():
            raise ToolkitError(f"{path}: not found; run `make convert` (or pass --artifacts OUT of a conversion)")
    started = time.perf_counter()
    split, labelled, note = scan_images(folder, metadata.labels)
    split, images = decode_split(split, metadata.input, "decode images")
    float_scores = run_classifier(models[0], metadata, images, "float TFLite", threads)
    int8_scores = run_classifier(models[1], metadata, images, "int8 TFLite", threads)
    result = compare(float_scores, int8_scores, split.labels if labelled else None)
    classes = len(metadata.labels)
    files = [relative_path(p, folder) for p in split.paths]
    report = {
        "images": str(folder),
        "read_as": note,
        "labelled": labelled,
        "artifacts": str(artifacts),
        "input": {"size": [metadata.input.height, metadata.input.width], "resize": metadata.input.resize.value},
        "skipped": dict(split.skipped),
        "skipped_files": skipped_listing(split, folder, SKIPPED_LISTED),
        **result,
        "predicted": {"float": _counts(float_scores.argmax(1), metadata.labels),
                      "int8": _counts(int8_scores.argmax(1), metadata.labels)},
        "worst": worst_disagreements(files, float_scores, int8_scores, metadata.labels),
        "seconds": round(time.perf_counter() - started, 1),
    }
    if labelled:
        report["confusion"] = {"float": confusion_matrix(split.labels, float_scores.argmax(1), classes),
                               "int8": confusion_matrix(split.labels, int8_scores.argmax(1), classes)}
    return report


def _counts(predicted: np.ndarray, labels: list[str]) -> dict[str, int]:
    return {label: int(np.sum(predicted == i)) for i, label in enumerate(labels)}


def report_name(folder: Path) -> str:
    """``drift_images_<folder name>`` (characters other than letters, digits, ``-`` and ``_`` become ``_``)."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(folder).resolve().name).strip("_") or "images"
    return f"{DRIFT_IMAGES_PREFIX}{name}"


def render_markdown(report: dict) -> str:
    def pct(value):
        return f"{100 * value:.2f}%"

    lines = [
        f"# Drift on {report['images']}",
        "",
        f"Float against int8 TFLite of `{report['artifacts']}`, through the runtime's preprocessing "
        f"({report['input']['size'][0]}x{report['input']['size'][1]}, {report['input']['resize']}). "
        f"The folder was read as {report['read_as']}.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| images | {report['n']} (skipped: {sum(report['skipped'].values())}) |",
        f"| top-1 agreement | {pct(report['top1_agreement'])} |",
        f"| mean abs prob diff | {report['mean_abs_prob_diff']:.4f} |",
        f"| max abs prob diff | {report['max_abs_prob_diff']:.4f} |",
    ]
    if report["labelled"]:
        lines += [f"| accuracy float | {pct(report['accuracy_reference'])} |",
                  f"| accuracy int8 | {pct(report['accuracy_candidate'])} |"]
    lines += ["", "Predicted classes: float " + ", ".join(f"{k} {v}" for k, v in report["predicted"]["float"].items())
              + "; int8 " + ", ".join(f"{k} {v}" for k, v in report["predicted"]["int8"].items()) + ".", "",
              "## Images that moved most (disagreements first)", "",
              "| file | float | int8 |", "|---|---|---|"]
    lines += [f"| {row['file']} | {row['float']} {row['float_score']:.3f} | {row['quantized']} "
              f"{row['quantized_score']:.3f} |" for row in report["worst"]]
    if report["skipped_files"]:
        lines += ["", "Skipped: " + "; ".join(f"{item['file']} ({item['reason']})" for item in report["skipped_files"])]
    return "\n".join(lines) + "\n"


def write_report(artifacts: Path, report: dict) -> tuple[Path, Path]:
    base = Path(artifacts) / report_name(Path(report["images"]))
    json_path, md_path = base.with_suffix(".json"), base.with_suffix(".md")
    write_json_atomic(json_path, report)
    write_text_atomic(md_path, render_markdown(report))
    return json_path, md_path


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m convert.drift", description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, default=DEFAULT_ARTIFACTS, help="a conversion's artifacts folder")
    parser.add_argument("--images", type=Path, required=True,
                        help="a folder of images, or of class subfolders named as the model's labels")
    parser.add_argument("--threads", type=positive_int, default=None, help="interpreter threads (all cores)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        report = measure(args.artifacts, args.images, args.threads)
        json_path, md_path = write_report(args.artifacts, report)
        accuracy = (f"; accuracy float {report['accuracy_reference']:.2%}, int8 {report['accuracy_candidate']:.2%}"
                    if report["labelled"] else "")
        print(f"drift on {report['n']} images ({report['read_as']}): top-1 agreement {report['top1_agreement']:.2%}, "
              f"max |dprob| {report['max_abs_prob_diff']:.4f}{accuracy}; written {md_path} and {json_path.name}")
        return 0

    return run_main(body)


if __name__ == "__main__":
    sys.exit(main())
