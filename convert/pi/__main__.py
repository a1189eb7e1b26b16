"""``python -m convert.pi`` (``make pi-check``): the camera loop on a Debian bookworm arm64 root (qemu-user-static)
against the same run here; top-1 agreement and score differences -> OUT/pi_check.json.

The root is built by ``scripts/pi_root.sh`` (``make pi-check`` runs it first); the check is in
``convert/pi/check.py``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from convert.pi.check import Board, Route, check, summary_line
from convert.schema import DEFAULT_ARTIFACTS
from runtime.argtypes import non_negative_int, positive_int
from runtime.cli import run_main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m convert.pi", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--artifacts", type=Path, default=DEFAULT_ARTIFACTS,
                        help="the make convert folder (its model_int8.tflite, labels, metadata), or a .tflite file")
    parser.add_argument("--root", type=Path, required=True,
                        help="the arm64 root scripts/pi_root.sh built (DIR/bookworm-arm64-ROUTE)")
    parser.add_argument("--route", type=Route, action="append", default=None, choices=list(Route),
                        help="the device install to check (repeat for both); default: every one the root has")
    parser.add_argument("--board", type=Board, default=Board.PI4, choices=list(Board),
                        help="the Pi whose CPU qemu emulates (pi3: Cortex-A53, pi4: A72, pi5: A76)")
    parser.add_argument("--images", type=Path, default=None,
                        help="a folder of photos (class subfolders allowed, taken in turn): --frames of them become "
                             "a video (one frame each, 640x480 MJPG), --image-count more run as an image folder")
    parser.add_argument("--frames", type=positive_int, default=50, help="video frames compared")
    parser.add_argument("--image-count", type=non_negative_int, default=20,
                        help="photos of --images run as an image folder (0: none)")
    parser.add_argument("--video", type=Path, default=None,
                        help="a video file whose first --frames frames are compared, instead of one made of photos")
    parser.add_argument("--threads", type=positive_int, default=None, help="interpreter threads; default all cores")
    parser.add_argument("--out", type=Path, default=None, help="the report; default ARTIFACTS/pi_check.json")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    def body() -> int:
        report = check(args.artifacts, args.root, args.video, args.frames, args.images, args.image_count,
                       board=args.board, routes=args.route, threads=args.threads, out=args.out)
        print(summary_line(report), flush=True)
        return 0 if report["passed"] else 3

    return run_main(body)


if __name__ == "__main__":
    sys.exit(main())
