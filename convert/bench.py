"""``python -m convert.bench``: latency, size and peak memory of the float Keras, float TFLite and int8 TFLite.

Each measurement runs in a fresh subprocess so its peak resident memory is its own. Latency is the median
of ``--runs`` timed calls after warm-up, one image at a time, timed with ``time.perf_counter()``. Numbers
from one run are comparable with each other (ratios); absolute values vary with the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np

from convert.schema import BENCH_FILE, DEFAULT_ARTIFACTS, FLOAT_TFLITE_FILE, INT8_TFLITE_FILE, KERAS_FILE
from runtime.argtypes import OneLineParser, positive_int
from runtime.cli import run_main
from runtime.cpu import this_cpu
from runtime.errors import ToolkitError
from runtime.timing import time_calls

CASES = (  # (name, artifact, threads); threads None: the framework's default (all cores)
    ("keras_float", KERAS_FILE, None),
    ("tflite_float_1t", FLOAT_TFLITE_FILE, 1),
    ("tflite_float_2t", FLOAT_TFLITE_FILE, 2),
    ("tflite_int8_1t", INT8_TFLITE_FILE, 1),
    ("tflite_int8_2t", INT8_TFLITE_FILE, 2),
)


def _input(artifacts: Path) -> np.ndarray:
    """One real test image if the metadata's data root has one, else seeded noise, preprocessed once."""
    from convert.schema import read_conversion
    from runtime.preprocess import load_image_rgb, preprocess_rgb

    metadata, conversion = read_conversion(artifacts)
    root = Path(conversion.provenance.data_root)
    candidates = sorted((root / "test").glob("*/*.jpg"))[:1] if root.is_dir() else []
    if candidates:
        return preprocess_rgb(load_image_rgb(candidates[0]), metadata.input)
    shape = (metadata.input.height, metadata.input.width, 3)
    return np.random.default_rng(0).integers(0, 256, shape).astype(np.float32)


def measure_one(artifacts: Path, artifact: str, threads: int | None, runs: int) -> dict:
    """Times one model in this process; returns latency statistics and this process's peak RSS."""
    from runtime.metadata import read_metadata

    sample = _input(artifacts)
    path = artifacts / artifact
    if artifact.endswith(".keras"):
        import keras

        model = keras.saving.load_model(path)
        batch = sample[None]

        def call():
            model.predict_on_batch(batch)
    else:
        from runtime.interpreter import Classifier

        classifier = Classifier(path, read_metadata(artifacts), num_threads=threads)
        tensor = classifier.input_tensor(sample)

        def call():
            classifier.invoke(tensor)
    latency = time_calls(call, runs)
    return {
        "latency_ms_median": latency.median_ms,
        "latency_ms_p90": latency.p90_ms,
        "runs": runs,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }


def run_bench(artifacts: Path, runs: int) -> dict:
    from runtime.metadata import read_metadata

    for _, artifact, _ in CASES:
        if not (artifacts / artifact).is_file():
            raise ToolkitError(f"{artifacts / artifact}: missing; run `make convert OUT={artifacts}` first")
    spec = read_metadata(artifacts).input
    cpu = this_cpu()
    print(cpu.notice(), flush=True)
    results = {}
    for name, artifact, threads in CASES:
        command = [sys.executable, "-m", "convert.bench", "--artifacts", str(artifacts), "--runs", str(runs),
                   "--one", artifact] + (["--threads", str(threads)] if threads else [])
        done = subprocess.run(command, check=True, capture_output=True, text=True,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
        results[name]["artifact"] = artifact
        results[name]["threads"] = threads or os.cpu_count()
        results[name]["bytes"] = (artifacts / artifact).stat().st_size
        print(f"{name:18s} {results[name]['latency_ms_median']:8.1f} ms  {results[name]['peak_rss_mb']:7.0f} MB peak RSS",
              flush=True)
    ratios = {
        "int8_vs_float_tflite_latency_1t": results["tflite_int8_1t"]["latency_ms_median"] / results["tflite_float_1t"]["latency_ms_median"],
        "int8_vs_float_tflite_latency_2t": results["tflite_int8_2t"]["latency_ms_median"] / results["tflite_float_2t"]["latency_ms_median"],
        "int8_vs_keras_latency": results["tflite_int8_2t"]["latency_ms_median"] / results["keras_float"]["latency_ms_median"],
        "int8_vs_float_tflite_size": results["tflite_int8_1t"]["bytes"] / results["tflite_float_1t"]["bytes"],
    }
    return {
        "machine": {"processor": cpu.name, "cpus": os.cpu_count(), "cpu": cpu.to_dict(),
                    "python": platform.python_version(), "platform": platform.platform()},
        "input": f"one {spec.height}x{spec.width} test image, batch 1",
        "results": results,
        "ratios": ratios,
    }


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m convert.bench", description=__doc__.splitlines()[0],
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--artifacts", type=Path, default=DEFAULT_ARTIFACTS, help="OUT of make convert")
    parser.add_argument("--runs", type=positive_int, default=30, help="timed runs per model (median reported)")
    parser.add_argument("--one", type=str, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=positive_int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    return run_main(lambda: _main(args))


def _main(args: argparse.Namespace) -> int:
    from convert.artifacts import write_json_atomic

    if args.one:
        print(json.dumps(measure_one(args.artifacts, args.one, args.threads, args.runs)))
        return 0
    report = run_bench(args.artifacts, args.runs)
    path = write_json_atomic(args.artifacts / BENCH_FILE, report)
    for name, value in report["ratios"].items():
        print(f"{name:34s} {value:.3f}")
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
