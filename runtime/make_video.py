"""``python -m runtime.make_video``: a short MJPG video from still images, to stand in for a camera.

Each image is letterboxed into the frame and held for ``--hold`` frames, in name order, alternating
between class folders when given a data set split (``test/{cat,dog}/...``), so the labels change on screen.
Unreadable images are skipped and counted. The file is written to a temporary name and renamed.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
from pathlib import Path

import cv2
import numpy as np

from runtime.argtypes import positive_int, size_wh
from runtime.cli import run_main
from runtime.errors import ToolkitError
from runtime.preprocess import InputSpec, ResizeMode, load_image_rgb, resize_rgb
from runtime.sources import image_files_in


def image_lists(root: Path) -> list[list[Path]]:
    """One list per class folder under ``root``, or one list of the images in ``root`` itself."""
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    lists = [image_files_in(folder) for folder in folders] or [image_files_in(root)]
    return [files for files in lists if files]


def interleave(lists: list[list[Path]], count: int) -> list[Path]:
    """Takes files round-robin from each list (one class after another) until ``count`` are chosen."""
    chosen = [path for group in itertools.zip_longest(*lists) for path in group if path is not None]
    return chosen[:count]


def write_video(images: list[Path], out: Path, size: tuple[int, int] = (640, 480), hold: int = 15,
                fps: float = 15.0) -> tuple[Path, int, int]:
    """Writes the images as an MJPG ``.avi``, each held for ``hold`` frames.

    Returns:
        (path, frames written, images skipped).

    Raises:
        ToolkitError: No image could be decoded, or OpenCV cannot write the file.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp{out.suffix}")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    if not writer.isOpened():
        raise ToolkitError(f"{out}: OpenCV cannot write an MJPG video here; check the folder and the suffix (.avi)")
    spec = InputSpec(height=size[1], width=size[0], resize=ResizeMode.LETTERBOX)
    frames = skipped = 0
    try:
        for path in images:
            try:
                frame_rgb = resize_rgb(load_image_rgb(path), spec)
            except ToolkitError as error:
                print(f"skipped: {error}", file=sys.stderr)
                skipped += 1
                continue
            frame_bgr = np.ascontiguousarray(frame_rgb[..., ::-1])  # VideoWriter takes B, G, R
            for _ in range(hold):
                writer.write(frame_bgr)
                frames += 1
    finally:
        writer.release()
    if frames == 0:
        tmp.unlink(missing_ok=True)
        raise ToolkitError(f"none of the {len(images)} images could be decoded; check the image folder")
    os.replace(tmp, out)
    return out, frames, skipped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.make_video", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--images", type=Path, required=True,
                        help="folder of images, or of class folders (taken in turn)")
    parser.add_argument("--out", type=Path, required=True, help="the .avi to write")
    parser.add_argument("--count", type=positive_int, default=40, help="images to use")
    parser.add_argument("--hold", type=positive_int, default=15, help="frames each image is shown")
    parser.add_argument("--fps", type=float, default=15.0, help="frame rate written in the file")
    parser.add_argument("--size", type=size_wh, default="640x480", help="WIDTHxHEIGHT of the video")
    args = parser.parse_args(argv)

    def body() -> int:
        if not args.images.is_dir():
            raise ToolkitError(f"{args.images}: no such folder; pass --images with a folder of images")
        images = interleave(image_lists(args.images), args.count)
        if not images:
            raise ToolkitError(f"{args.images}: no images found; pass a folder of images or of class folders")
        path, frames, skipped = write_video(images, args.out, args.size, args.hold, args.fps)
        print(f"wrote {path}: {frames} frames from {len(images) - skipped} images ({skipped} skipped)", file=sys.stderr)
        return 0

    return run_main(body)


if __name__ == "__main__":
    sys.exit(main())
