"""Measure each form of a brought model end to end and print the README's table (ours, for this repository).

    .venv/bin/python -m scripts.brought_table --data DATA --work DIR [--max-train 150] [--max-test 200]

Makes the tutorial models (``scripts/tutorial_models.py``: the whole VGG16 at 150x150 saved by Keras 2 as
``.h5`` and by Keras 3 as ``.keras``; a head alone on VGG16 features at 256, caffe), converts each with
``python -m convert`` exactly as a user would (one subprocess each, nothing trained), benchmarks each with
``python -m convert.bench``, and writes ``DIR/brought_table.{json,md}``: accuracy, agreement, verdict, sizes
and latencies per form, all from this one run on this machine (its CPU named in the table).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from convert.artifacts import rejected_path
from convert.schema import BENCH_FILE, DRIFT_JSON_FILE, FLOAT_TFLITE_FILE, INT8_TFLITE_FILE, METADATA_FILE
from runtime.argtypes import OneLineParser, positive_int

FORMS = (  # (row name, flags of python -m convert after --data)
    ("whole model, Keras 2 `.h5`", ["--model", "{models}/whole_keras2.h5", "--preprocess", "rescale"]),
    ("whole model, Keras 3 `.keras`", ["--model", "{models}/whole.keras", "--preprocess", "rescale"]),
    ("head alone (Keras 2 `.h5`) + VGG16 at 256", ["--head-model", "{models}/head_keras2.h5", "--arch", "vgg16",
                                                   "--weights", "hed", "--input-size", "256", "--preprocess", "caffe"]),
)


def _run(command: list[str], log: Path) -> int:
    print("$", " ".join(command), flush=True)
    with log.open("a") as sink:
        return subprocess.run(command, stdout=sink, stderr=subprocess.STDOUT).returncode


def measure(data: Path, work: Path, max_train: int, max_test: int, calib: int, runs: int) -> dict:
    python = sys.executable
    models, log = work / "models", work / "log.txt"
    work.mkdir(parents=True, exist_ok=True)
    if _run([python, "-m", "scripts.tutorial_models", "--data", str(data), "--out", str(models),
             "--max-train", str(max_train)], log):
        raise SystemExit(f"scripts.tutorial_models failed; see {log}")
    rows = []
    for index, (name, flags) in enumerate(FORMS):
        out = work / f"out{index}"
        code = _run([python, "-m", "convert", "--data", str(data), "--max-train", str(max_train), "--max-test",
                     str(max_test), "--calib", str(calib), "--out", str(out),
                     *[flag.format(models=models) for flag in flags]], log)
        done = out if code == 0 else rejected_path(out)
        if not (done / METADATA_FILE).is_file():
            raise SystemExit(f"python -m convert failed on {name} (exit {code}); see {log}")
        bench_code = _run([python, "-m", "convert.bench", "--artifacts", str(done), "--runs", str(runs)], log)
        metadata = json.loads((done / METADATA_FILE).read_text())
        fix = json.loads((done / DRIFT_JSON_FILE).read_text())["fix"]
        bench = json.loads((done / BENCH_FILE).read_text()) if bench_code == 0 else None
        rows.append({"form": name, "exit": code, "out": str(done), "metadata": metadata, "fix": fix, "bench": bench})
    return {"data": str(data), "max_train_per_class": max_train, "max_test_per_class": max_test,
            "calibration": calib, "rows": rows}


def _markdown(report: dict) -> str:
    machine = next((row["bench"]["machine"] for row in report["rows"] if row["bench"]), {})
    lines = [f"Measured by `python -m scripts.brought_table` on {machine.get('processor', '?')} "
             f"({machine.get('cpus', '?')} CPUs); {report['max_test_per_class']} test images per class, "
             f"{report['calibration']} calibration images. Latency: median of one image, float / int8 TFLite.", "",
             "| form | read as | input | float acc | int8 acc | agreement: full int8 -> after the fix | verdict | "
             "float ops left | float / int8 TFLite | latency 1 thread | latency 2 threads |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in report["rows"]:
        metadata, bench = row["metadata"], row["bench"]
        results, provenance = metadata["results"], metadata["provenance"]
        fix = row["fix"]
        if fix is None:  # the gate passed the full-integer model
            agreement = f"{results['top1_agreement']:.2%}"
        else:
            after = fix.get("test_top1_agreement_after")
            agreement = (f"{fix['test_top1_agreement_before']:.2%} -> "
                         + (f"{after:.2%}" if after is not None else "no fix chosen"))
        models, artifacts = metadata["models"], metadata["artifacts"]
        size = f"{artifacts[FLOAT_TFLITE_FILE]['bytes'] / 1e6:.1f} / {artifacts[INT8_TFLITE_FILE]['bytes'] / 1e6:.1f} MB"

        def latency(threads: int) -> str:
            if not bench:
                return "not measured"
            f = bench["results"][f"tflite_float_{threads}t"]["latency_ms_median"]
            i = bench["results"][f"tflite_int8_{threads}t"]["latency_ms_median"]
            return f"{f:.0f} / {i:.0f} ms ({bench['ratios'][f'int8_vs_float_tflite_latency_{threads}t']:.2f})"

        lines.append(
            f"| {row['form']} | {provenance.get('model_format') or '-'} | {metadata['input']['height']}, "
            f"{provenance.get('preprocess')} | {results['accuracy_float']:.2%} | {results['accuracy_int8']:.2%} | "
            f"{agreement} | {results['verdict']} | "
            f"{len(models[INT8_TFLITE_FILE]['float_ops'])} | {size} | {latency(1)} | {latency(2)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m scripts.brought_table", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="data root with train/ and test/ class folders")
    parser.add_argument("--work", type=Path, required=True, help="folder for the models, artifacts and the table")
    parser.add_argument("--max-train", type=positive_int, default=150, help="training images per class")
    parser.add_argument("--max-test", type=positive_int, default=200, help="test images per class")
    parser.add_argument("--calib", type=positive_int, default=50, help="calibration images")
    parser.add_argument("--runs", type=positive_int, default=30, help="timed runs per model in the benchmark")
    args = parser.parse_args(argv)
    report = measure(args.data, args.work, args.max_train, args.max_test, args.calib, args.runs)
    (args.work / "brought_table.json").write_text(json.dumps(report, indent=1))
    table = _markdown(report)
    (args.work / "brought_table.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
