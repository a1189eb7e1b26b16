"""``python -m convert.k210`` (``make kmodel``): the float VGG + head in OUT -> a K210 kmodel, measured.

The steps are in ``convert/k210/pipeline.py``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from convert.k210.compile import DEFAULT_TOOLCHAIN
from convert.k210.distill import FROZEN_BLOCKS_WITHOUT_BF16
from convert.k210.options import CalibrateMethod, KmodelOptions, Layout, Precision
from convert.k210.pipeline import run
from convert.k210.plan import Deployment
from convert.k210.report import render_markdown, sim_images_arg
from convert.schema import DEFAULT_ARTIFACTS
from runtime.argtypes import (
    non_negative_float,
    non_negative_int,
    positive_count_or_all,
    positive_float,
    positive_int,
)
from runtime.cli import run_main


def freeze_blocks_arg(text: str) -> int | None:
    """``--freeze-blocks``: a count of conv blocks (0 or more) or "auto" (None: the CPU decides)."""
    return None if text == "auto" else non_negative_int(text)


def add_distillation_arguments(parser: argparse.ArgumentParser) -> None:
    """The student's initialization and distillation flags, shared by make kmodel and make student."""
    parser.add_argument("--epochs", type=positive_int, default=KmodelOptions.epochs, help="distillation epochs")
    parser.add_argument("--learning-rate", type=positive_float, default=KmodelOptions.learning_rate,
                        help="Adam's peak learning rate (cosine decay to 0)")
    parser.add_argument("--warmup-epochs", type=non_negative_float, default=KmodelOptions.warmup_epochs,
                        help="epochs of linear learning-rate warm-up from 0 before the cosine decay")
    parser.add_argument("--temperature", type=positive_float, default=KmodelOptions.temperature,
                        help="distillation temperature")
    parser.add_argument("--map-weight", type=non_negative_float, default=KmodelOptions.map_weight,
                        help="weight of the loss on the head's 1x1-conv feature maps (0 = logits only)")
    parser.add_argument("--precision", type=Precision, default=KmodelOptions.precision,
                        choices=list(Precision),
                        help="distillation arithmetic (auto = bfloat16 where the CPU has bf16 instructions)")
    parser.add_argument("--freeze-blocks", type=freeze_blocks_arg, default=None,
                        help="conv blocks kept as initialized, their outputs computed once (N or auto = 0 with "
                             f"bf16 instructions, else {FROZEN_BLOCKS_WITHOUT_BF16})")
    parser.add_argument("--no-reconstruct", dest="reconstruct", action="store_false",
                        help="initialize with the plain strongest channels (no least-squares refit)")
    parser.add_argument("--init-images", type=positive_int, default=KmodelOptions.init_images,
                        help="training images the initialization is fit on")
    parser.add_argument("--max-train", type=positive_int, default=None, help="training images per class (quick runs)")
    parser.add_argument("--max-test", type=positive_int, default=None, help="test images per class (quick runs)")
    parser.add_argument("--seed", type=int, default=0)


def distillation_options(args: argparse.Namespace) -> dict:
    """KmodelOptions' fields from :func:`add_distillation_arguments`' flags."""
    return dict(epochs=args.epochs, learning_rate=args.learning_rate, warmup_epochs=args.warmup_epochs,
                temperature=args.temperature, map_weight=args.map_weight, precision=args.precision,
                freeze_blocks=args.freeze_blocks, reconstruct=args.reconstruct, init_images=args.init_images,
                max_train=args.max_train, max_test=args.max_test, seed=args.seed)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m convert.k210", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--artifacts", type=Path, default=DEFAULT_ARTIFACTS,
                        help="the make convert folder (teacher, calibration list); the kmodel is written there")
    parser.add_argument("--data", type=Path, default=None, help="data root; None = the one recorded in metadata.json")
    parser.add_argument("--width", type=float, default=None, help="width multiplier; None = planner's choice")
    parser.add_argument("--input-size", type=positive_int, default=None, help="input size; None = planner's choice")
    parser.add_argument("--deployment", type=str, default=Deployment.STANDALONE_SDK.value,
                        choices=[d.value for d in Deployment], help="memory budget to fit")
    parser.add_argument("--max-gmacs", type=positive_float, default=KmodelOptions.max_gmacs,
                        help="compute cap for the planner's choice")
    add_distillation_arguments(parser)
    parser.add_argument("--calibrate-method", type=CalibrateMethod, default=KmodelOptions.calibrate_method,
                        choices=list(CalibrateMethod), help="nncase's activation-range method for the uint8 PTQ")
    parser.add_argument("--calib-images", type=positive_count_or_all, default=KmodelOptions.calibration_images,
                        help="nncase calibration images: this many of make convert's, evenly spaced (N or all)")
    parser.add_argument("--sim-images", type=sim_images_arg, default=KmodelOptions.sim_images,
                        help="test images run in the simulator (N or all); make kmodel-report runs all")
    parser.add_argument("--layout", type=Layout, default=KmodelOptions.layout, choices=list(Layout),
                        help="kmodel input layout")
    parser.add_argument("--toolchain", type=Path, default=DEFAULT_TOOLCHAIN, help="make k210-toolchain's folder")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    options = KmodelOptions(
        artifacts=args.artifacts, data=args.data, width=args.width, input_size=args.input_size,
        deployment=Deployment(args.deployment), max_gmacs=args.max_gmacs, calibrate_method=args.calibrate_method,
        calibration_images=args.calib_images, sim_images=args.sim_images, layout=args.layout,
        toolchain=args.toolchain, **distillation_options(args))

    def body() -> int:
        print(render_markdown(run(options)), flush=True)
        return 0

    return run_main(body, "the artifacts folder keeps what make convert wrote")


if __name__ == "__main__":
    sys.exit(main())
