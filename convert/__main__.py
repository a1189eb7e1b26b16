"""``python -m convert``: the command line of the converter."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from convert.artifacts import check_out_folder
from convert.config import (
    DEFAULT_INPUT_SIZE,
    MAX_INPUT_SIZE,
    MAX_SEED,
    MIN_INPUT_SIZE,
    Arch,
    ConvertOptions,
    FineTune,
    FixMode,
    HeadKind,
    IOType,
    OutputKind,
    Preprocess,
)
from convert.schema import DEFAULT_ARTIFACTS, FLOAT_TFLITE_FILE, INT8_TFLITE_FILE
from runtime.argtypes import (
    OneLineParser,
    count_or_all,
    fraction,
    int_in_range,
    non_negative_float,
    non_negative_int,
    open_fraction,
    positive_count_or_all,
    positive_float,
    positive_int,
)
from runtime.cli import run_main
from runtime.preprocess import ResizeMode

SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets" / "cats_vs_dogs"


def default_data() -> Path:
    """``data/`` if present, else the shared cats-vs-dogs set, else the public archive (downloaded)."""
    if Path("data").is_dir():
        return Path("data")
    if SHARED_DATA.is_dir():
        return SHARED_DATA
    return Path("public")


def _dropout(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:  # Keras' Dropout takes [0, 1): a rate of 1 drops everything
        raise argparse.ArgumentTypeError(f"{text} is not in [0, 1)")
    return value


def _preprocess(text: str) -> Preprocess:
    try:
        return Preprocess(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"unknown normalization {text!r}; use one of "
                                         + ", ".join(p.value for p in Preprocess)) from None


def _labels(text: str) -> list[str]:
    labels = [label.strip() for label in text.split(",")]
    if len(labels) < 2 or not all(labels) or len(set(labels)) != len(labels):
        raise argparse.ArgumentTypeError(f"{text!r} is not two or more distinct comma-separated names")
    return labels


def build_parser() -> argparse.ArgumentParser:
    """Every flag of ``python -m convert``, each validated where it is parsed (one flat list, longer than 60
    lines because there are that many flags: splitting it would only scatter them)."""
    parser = OneLineParser(
        prog="python -m convert",
        description="Train a head on a VGG backbone, quantize VGG + head to full-integer int8 TFLite, "
                    "and measure the drift against the float model.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--data", type=str, default=None,
                        help="data root: class folders, or train/ and test/ with class folders; 'public' downloads "
                             "the Keras tutorial's cats-and-dogs archive (default: data/, else the shared set)")
    parser.add_argument("--out", type=Path, default=DEFAULT_ARTIFACTS, help="artifacts folder")
    parser.add_argument("--weights", type=str, default="auto", help="imagenet | hed | auto | PATH to a .weights.h5")
    parser.add_argument("--arch", type=Arch, choices=list(Arch), default=Arch.VGG16, help="backbone")
    parser.add_argument("--head", type=HeadKind, choices=list(HeadKind), default=HeadKind.AUTO,
                        help="head kind; auto = gap with ImageNet weights, block4-conv with hed weights")
    parser.add_argument("--fine-tune", type=FineTune, choices=list(FineTune), default=FineTune.AUTO,
                        help="train block5 with the head; auto = on for hed weights with a block5 head")
    parser.add_argument("--input-size", type=int_in_range(MIN_INPUT_SIZE, MAX_INPUT_SIZE, "VGG's five poolings need "
                                                          f"{MIN_INPUT_SIZE}; memory grows with the square"),
                        default=None, help=f"square input size in pixels (default: {DEFAULT_INPUT_SIZE}, or a brought "
                                           "model's own)")
    parser.add_argument("--resize", type=ResizeMode, choices=list(ResizeMode), default=ResizeMode.SQUASH,
                        help="how images are fitted to the input size")
    parser.add_argument("--epochs", type=positive_int, default=None, help="training epochs (default depends on head)")
    parser.add_argument("--batch-size", type=positive_int, default=32, help="training batch size")
    parser.add_argument("--learning-rate", type=positive_float, default=None, help="Adam rate (default 1e-4 fine-tuning, 1e-3 head)")
    parser.add_argument("--dropout", type=_dropout, default=0.5, help="dropout before the last dense layer")
    parser.add_argument("--l2", type=non_negative_float, default=1e-3, help="L2 penalty on the head's kernels")
    parser.add_argument("--calib", type=positive_int, default=200, help="calibration images (stratified from train)")
    parser.add_argument("--calib-manifest", type=Path, default=None, help="reuse this calibration manifest")
    parser.add_argument("--quant-aware-head", action=argparse.BooleanOptionalAction, default=True,
                        help="train the head on the int8 backbone's features too, so it survives quantization")
    parser.add_argument("--io", type=IOType, choices=list(IOType), default=IOType.INT8, help="int model I/O dtype")
    parser.add_argument("--min-agreement", type=fraction, default=0.995,
                        help="drift budget: least top-1 agreement of int8 with float on the test set")
    parser.add_argument("--fix", type=FixMode, choices=list(FixMode), default=FixMode.AUTO,
                        help="on a missed budget: auto = leave blamed layers in float until met; none = fail")
    parser.add_argument("--test-fraction", type=open_fraction, default=0.2, help="test share when there is no test/ folder")
    parser.add_argument("--max-train", type=positive_count_or_all, default=None, help="training images per class (all)")
    parser.add_argument("--max-test", type=positive_count_or_all, default=None, help="test images per class (all)")
    parser.add_argument("--float-tflite-eval", type=count_or_all, default=200,
                        help="test images the float TFLite is checked on ('all' for every one)")
    parser.add_argument("--debug-images", type=non_negative_int, default=8,
                        help="images for the per-layer debugger (0: no per-layer report, for huge models; "
                             "needs --fix none, as the fix is chosen by that blame)")
    parser.add_argument("--threads", type=positive_int, default=None, help="interpreter threads (all cores)")
    parser.add_argument("--seed", type=int_in_range(0, MAX_SEED, "NumPy seeds are unsigned 32-bit"), default=0, help="seed for splits, calibration and training")
    brought = parser.add_argument_group("bring your own model (nothing is trained; --data gives calibration and "
                                        "test images)")
    which = brought.add_mutually_exclusive_group()
    which.add_argument("--model", type=Path, default=None,
                       help="a whole Keras classifier (.keras, or .h5 from Keras 3 or Keras 2)")
    which.add_argument("--head-model", type=Path, default=None,
                       help="a head trained on backbone features, joined to --arch/--weights at --input-size")
    brought.add_argument("--preprocess", type=_preprocess, default=None,
                         help="the normalization the model was trained with: " + "|".join(p.value for p in Preprocess)
                         + " (rescale x/255, tf x/127.5-1, torch ImageNet mean/std; required with --model/--head-model)")
    brought.add_argument("--output", type=OutputKind, choices=list(OutputKind), default=OutputKind.AUTO,
                         help="what the model's last layer gives; auto reads it (softmax, or one sigmoid unit)")
    brought.add_argument("--retrain-head", action="store_true",
                         help="fine-tune only the model's head on the float and int8 conv base's features "
                              "(--epochs, default 5; --learning-rate, default 1e-4), reported as such")
    brought.add_argument("--labels", type=_labels, default=None,
                         help="class names in output order, comma-separated; without it, the sorted class folders")
    parser.add_argument("-v", "--verbose", action="store_true", help="show TensorFlow's own logging")
    return parser


def _count(skipped: dict[str, int]) -> str:
    total = sum(skipped.values())
    return f"{total} ({', '.join(f'{n} {reason}' for reason, n in skipped.items())})" if total else "0"


def print_summary(summary: dict, passed: bool) -> None:
    def pct(value):
        return "n/a" if value is None else f"{100 * value:.2f}%"

    sizes = summary["sizes_bytes"]
    float_size, int8_size = sizes.get(FLOAT_TFLITE_FILE), sizes.get(INT8_TFLITE_FILE)
    worst = summary.get("worst_layer") or {}
    lines = [
        "",
        "=" * 72,
        f" convert summary: {summary['verdict']}",
        "-" * 72,
        (f" model             {summary['model_file']} ({summary['model_format']}, {summary['head']}, weights "
         f"{summary['weights']})   preprocess {summary['preprocess']}   output {summary['output']}"
         + ("   head retrained here (--retrain-head)" if summary.get("retrained_head") else "")
         if "model_file" in summary else
         f" weights           {summary['weights']}   head {summary['head']}   fine-tune block5 {summary.get('fine_tune')}"),
        f" test images       {summary['n']}",
        f" accuracy          float {pct(summary.get('accuracy_float'))}   int8 {pct(summary.get('accuracy_int8'))}",
        f" top-1 agreement   {pct(summary['top1_agreement'])}   mean |dprob| {summary['mean_abs_prob_diff']:.4f}"
        f"   max |dprob| {summary['max_abs_prob_diff']:.4f}",
        f" sizes             float.tflite {float_size / 1e6:.1f} MB   int8.tflite {int8_size / 1e6:.1f} MB"
        f" ({100 * int8_size / float_size:.1f}%)",
        f" worst layer       {worst.get('op', '-')} {worst.get('layer', '')} (RMSE/scale {worst.get('rmse_over_scale', 0):.2f})",
        f" skipped images    train {_count(summary['skipped']['train'])}   test {_count(summary['skipped']['test'])}"
        + "".join(f"   {item['file']} ({item['reason']})" for item in summary.get("skipped_files", [])),
        f" time              {summary['seconds']:.0f} s",
        f" written to        {summary['out']}",
        "=" * 72,
    ]
    print("\n".join(lines), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.model or args.head_model) and args.preprocess is None:
        parser.error("argument --preprocess: a brought model needs the normalization it was trained with: "
                     + "|".join(p.value for p in Preprocess))
    if args.retrain_head and not (args.model or args.head_model):
        parser.error("argument --retrain-head: only for a brought model (--model or --head-model)")
    if args.debug_images == 0 and args.fix is FixMode.AUTO:
        parser.error("argument --debug-images: 0 turns off the per-layer blame that --fix auto chooses its "
                     "float layers by; give --fix none with it")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    return run_main(lambda: _convert(args),
                    interrupted=f"staging and work folders removed, {args.out} left as it was")


def _convert(args: argparse.Namespace) -> int:
    data = Path(args.data) if args.data else default_data()
    public = str(data) == "public"
    check_out_folder(args.out, None if public else data)  # before TensorFlow's import and any work
    from convert.tensorflow_import import import_tensorflow

    import_tensorflow(args.verbose)
    from convert.data import fetch_public_dataset
    from convert.pipeline import run

    if public:
        data = fetch_public_dataset()
    options = ConvertOptions(
        data=data, out=args.out, weights=args.weights, arch=args.arch, head=args.head, fine_tune=args.fine_tune,
        input_size=args.input_size or (None if args.model or args.head_model else DEFAULT_INPUT_SIZE), resize=args.resize, epochs=args.epochs, batch_size=args.batch_size,
        learning_rate=args.learning_rate, dropout=args.dropout, l2=args.l2, calib=args.calib,
        calib_manifest=args.calib_manifest, quant_aware_head=args.quant_aware_head, io_type=args.io,
        min_agreement=args.min_agreement, fix=args.fix,
        test_fraction=args.test_fraction, max_train=args.max_train, max_test=args.max_test,
        float_tflite_eval=args.float_tflite_eval, debug_images=args.debug_images, threads=args.threads,
        seed=args.seed, model=args.model, head_model=args.head_model, preprocess=args.preprocess,
        output=args.output, labels=args.labels, retrain_head=args.retrain_head,
    )
    out, summary, passed = run(options)
    print_summary(summary, passed)
    if not passed:
        print(f"error: int8 top-1 agreement {summary['top1_agreement']:.2%} is below the budget "
              f"{args.min_agreement:.2%}; artifacts and drift_report.md kept in {out}, {args.out} left unchanged",
              file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
