"""OUT's int8 model through XNNPACK (the runtime's default) and through TFLite's builtin kernels on this CPU:
``python -m scripts.kernel_parity OUT [--images N]``.

Both compute the same file in integer arithmetic, but their requantization rounds differently, so an output
can differ by a step or more, and near the decision boundary that changes a label. On the test images of
OUT's data set (the gate's, decoded the gate's way) it prints the CPU line, how many outputs the two kernels
give identically, the largest difference in output steps, and each kernel's top-1 agreement with the float
Keras model (the gate's measure) and test accuracy.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def parity(artifacts: Path, images: int | None, threads: int | None) -> list[str]:
    import keras

    from convert.data import decode_split, scan_dataset
    from convert.head import predict_batched
    from convert.schema import INT8_TFLITE_FILE, KERAS_FILE, read_conversion
    from convert.tflite.drift import compare, run_classifier
    from runtime.cpu import this_cpu

    metadata, conversion = read_conversion(artifacts)
    test = scan_dataset(Path(conversion.provenance.data_root)).test
    if images is not None and images < len(test.paths):
        keep = np.linspace(0, len(test.paths) - 1, images).round().astype(int)
        test = type(test)(paths=[test.paths[i] for i in keep], labels=test.labels[keep])
    test, test_rgb = decode_split(test, metadata.input, "decode test")
    model_path = artifacts / INT8_TFLITE_FILE
    reference = predict_batched(keras.saving.load_model(artifacts / KERAS_FILE, compile=False),
                                test_rgb.astype(np.float32))
    scores = {"XNNPACK": run_classifier(model_path, metadata, test_rgb, "int8 XNNPACK", threads),
              "builtin": run_classifier(model_path, metadata, test_rgb, "int8 builtin", threads, delegates=False)}
    step = conversion.models[INT8_TFLITE_FILE]["output_quantization"]["scale"]
    steps = np.abs(scores["XNNPACK"] - scores["builtin"]).max(1) / step
    lines = [this_cpu().notice(),
             f"{len(test_rgb)} test images of {conversion.provenance.data_root}: outputs identical on "
             f"{int((steps < 0.5).sum())}, different on {int((steps >= 0.5).sum())} (max {steps.max():.0f} output "
             f"steps of {step:.5f}); top-1 labels differ between the kernels on "
             f"{int((scores['XNNPACK'].argmax(1) != scores['builtin'].argmax(1)).sum())}"]
    for name, candidate in scores.items():
        measured = compare(reference, candidate, test.labels)
        differ = int((reference.argmax(1) != candidate.argmax(1)).sum())
        lines.append(f"{name}: top-1 agreement with float {measured['top1_agreement']:.2%} "
                     f"({differ} differ), accuracy "
                     f"{measured['accuracy_candidate']:.2%} (float {measured['accuracy_reference']:.2%})")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.kernel_parity", description=__doc__.splitlines()[0])
    parser.add_argument("artifacts", type=Path, help="a make convert folder (or OUT.rejected)")
    parser.add_argument("--images", type=int, default=None, help="evenly spaced test images; default all")
    parser.add_argument("--threads", type=int, default=None, help="interpreter threads; default all cores")
    args = parser.parse_args(argv)
    print("\n".join(parity(args.artifacts, args.images, args.threads)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
