"""``make pi-check``: the camera loop on a Debian bookworm arm64 root against the same run on this machine.

A Raspberry Pi OS 64-bit stand-in (``scripts/pi_root.sh``: Debian bookworm arm64, the device side installed as
``firmware_notes/raspberry_pi.md`` tells a Pi user) runs through qemu-user-static, which emulates the CPU of
the board asked for (``--board``: a Pi 4's Cortex-A72 by default, so that XNNPACK picks the kernels a Pi 4
gets). Only ``runtime/`` and the model's three files are copied into the root; the same copies run here. Both
runs go through ``python -m runtime --headless`` on N frames of a video and on a folder of images, and their
JSON lines are compared: top-1 agreement, and score differences in output quantization steps. Written to
``OUT/pi_check.json``.

What this does not show: a Pi's speed (the emulated run is 100-1000x slower than the board), its camera
(picamera2 is in Raspberry Pi's own archive, not Debian's) and its kernel.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convert.artifacts import sha256_file
from convert.schema import LABELS_FILE, METADATA_FILE, PI_CHECK_JSON
from runtime.choices import Choice
from runtime.cpu import this_cpu
from runtime.errors import ToolkitError
from runtime.files import write_json_atomic
from runtime.interpreter import Classifier, TFLiteModel, interpreter_backend
from runtime.make_video import image_lists, interleave, write_video
from runtime.metadata import locate_model
from runtime.sources import IMAGE_SUFFIXES, VideoFileSource

LOG = logging.getLogger(__name__)

# Two comparisons, each with its budget:
# - The model alone: the same input tensors (made here from the video's first frames) through the same int8 model and
#   interpreter release on both CPUs. XNNPACK's int8 kernels accumulate in integers and requantize in fp32 with
#   round-to-nearest-even on NEON and on AVX alike, so the outputs should be bit-identical (measured so: 0
#   steps); one output quantization step is allowed.
# - End to end, as a Pi user runs it (decode, resize, quantize, invoke): the decoders differ (OpenCV's aarch64
#   wheel decodes the MJPG frames up to 2 levels apart from its x86_64 wheel, apt's OpenCV 4.6 and Pillow 9.4
#   from PyPI's), so scores move by a few steps and a near tie may flip: labels must agree on 98 frames in 100.
#   Score differences are reported, not gated.
MAX_KERNEL_DIFF_STEPS = 1.0
MIN_TOP1_AGREEMENT = 0.98
MODEL_ALONE_INPUTS = 10  # video frames whose tensors are compared exactly (each costs seconds under emulation)
TOP_K = 5  # the scores compared per frame: every class of a small model, the five best of a large one

ROOT_CHECK_DIR = "/opt/vgg-edge/check"  # inside the root: runtime/, model/, inputs/
ROOT_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
DEVICE_TIMEOUT_S = 6 * 3600
PROBE_CODE = (
    "import json, platform, sys\n"
    "import numpy, cv2, PIL\n"
    "from runtime.interpreter import interpreter_backend\n"
    "backend = interpreter_backend()\n"
    "module = __import__(backend)\n"
    "print(json.dumps({'machine': platform.machine(), 'python': platform.python_version(),\n"
    "    'numpy': numpy.__version__, 'opencv': cv2.__version__, 'pillow': PIL.__version__,\n"
    "    'interpreter': backend, 'interpreter_version': getattr(module, '__version__', None),\n"
    "    'numpy_file': numpy.__file__, 'opencv_file': cv2.__file__}))\n"
)
# The model alone: argv = model, input tensors (.npy), outputs (.npy), threads (0: all cores).
KERNEL_CODE = (
    "import sys\n"
    "import numpy as np\n"
    "from runtime.interpreter import TFLiteModel\n"
    "model = TFLiteModel(sys.argv[1], num_threads=int(sys.argv[4]) or None)\n"
    "np.save(sys.argv[3], np.stack([model.invoke(tensor) for tensor in np.load(sys.argv[2])]))\n"
)


class Route(Choice):
    """How the device side was installed (scripts/pi_root.sh)."""

    APT = "apt"  # apt's NumPy/OpenCV/Pillow, venv --system-site-packages + requirements-pi.txt
    PYPI = "pypi"  # a plain venv + requirements-runtime.txt


ROUTE_VENVS = {Route.APT: "/opt/vgg-edge/venv-pi", Route.PYPI: "/opt/vgg-edge/venv-pypi"}


class Board(Choice):
    """The Raspberry Pi whose CPU qemu emulates."""

    PI3 = "pi3"  # Pi 3 / Zero 2 W: Cortex-A53
    PI4 = "pi4"  # Pi 4 / 400 / CM4: Cortex-A72, no dot-product instructions
    PI5 = "pi5"  # Pi 5: Cortex-A76, with asimddp


QEMU_CPUS = {Board.PI3: "cortex-a53", Board.PI4: "cortex-a72", Board.PI5: "cortex-a76"}
# What the board's kernel shows in /proc/cpuinfo, per core and once at the end (the fields XNNPACK's cpuinfo
# and runtime/cpu.py read). qemu-user answers the CPU's feature bits (getauxval) for the -cpu it emulates
# but, for aarch64, shows the host's /proc/cpuinfo and /sys; so the check writes these files into the root.
BOARD_CPUINFO = {
    Board.PI3: ("fp asimd evtstrm crc32 cpuid", "0x0", "0xd03", "4", "Raspberry Pi 3 Model B Rev 1.2"),
    Board.PI4: ("fp asimd evtstrm crc32 cpuid", "0x0", "0xd08", "3", "Raspberry Pi 4 Model B Rev 1.4"),
    Board.PI5: ("fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop "
                "asimddp", "0x4", "0xd0b", "1", "Raspberry Pi 5 Model B Rev 1.0"),
}


def board_cpuinfo(board: Board, cores: int) -> str:
    """``/proc/cpuinfo`` as ``board``'s 64-bit kernel prints it, for ``cores`` cores."""
    features, variant, part, revision, model = BOARD_CPUINFO[board]
    core = ("processor\t: {index}\nBogoMIPS\t: 108.00\nFeatures\t: " + features + "\nCPU implementer\t: 0x41\n"
            "CPU architecture: 8\nCPU variant\t: " + variant + "\nCPU part\t: " + part + "\nCPU revision\t: "
            + revision + "\n\n")
    return "".join(core.format(index=index) for index in range(cores)) + f"Model\t\t: {model}\n"


def write_board_cpu(root: Path, board: Board, cores: int) -> None:
    """Writes ``board``'s /proc/cpuinfo and /sys CPU lists into the root (whose /proc and /sys are plain
    folders: nothing is mounted there)."""
    for folder in ("proc", "sys"):
        if os.path.ismount(root / folder):
            raise ToolkitError(f"{root / folder} is a mount point; unmount it (pi-check writes the board's CPU files "
                               "there)")
    (root / "proc" / "cpuinfo").write_text(board_cpuinfo(board, cores))
    cpus = root / "sys" / "devices" / "system" / "cpu"
    cpus.mkdir(parents=True, exist_ok=True)
    for name in ("possible", "present", "online"):
        (cpus / name).write_text(f"0-{cores - 1}\n" if cores > 1 else "0\n")


@dataclass(frozen=True)
class Source:
    """One input of the check: the runtime's ``--source`` inside the staged folder.

    Attributes:
        kind: "video" or "images".
        relative: The path under the staged folder (the same for the host run and inside the root).
        origin: What it is, for the report.
        frames: ``--max-frames`` for a video (None: every image of the folder).
    """

    kind: str
    relative: str
    origin: str
    frames: int | None


def pick_images(folder: Path, frames: int, image_count: int) -> tuple[list[Path], list[Path]]:
    """The photos of ``folder`` for the video (``frames``, one frame each) and for the image-folder run
    (``image_count`` more), taken in turn from its class subfolders in name order: a fixed, balanced choice,
    the two runs on different photos.

    Raises:
        ToolkitError: no such folder, or no images in it.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ToolkitError(f"{folder}: no such image folder; pass --images a folder of photos (class subfolders "
                           "allowed)")
    chosen = interleave(image_lists(folder), frames + image_count)
    if not chosen:
        raise ToolkitError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in it or its class subfolders; "
                           "check --images")
    return chosen[:frames], chosen[frames:]


def stage(work: Path, model_path: Path, video: Path | None, frames: int, video_photos: list[Path],
          photos: list[Path]) -> list[Source]:
    """Fills ``work`` (emptied first) with what a Pi gets, ``runtime/`` and the model's files, and the inputs:
    ``video`` (its first ``frames`` frames), else a video made here of ``video_photos`` (one frame each, 640x480
    MJPG, as ``make demo-video`` makes them), and ``photos`` as an image folder.

    Returns the sources to run, with paths relative to ``work``.

    Raises:
        ToolkitError: a missing video, or none of the photos decodes.
    """
    import runtime

    if work.exists():
        shutil.rmtree(work)
    (work / "model").mkdir(parents=True)
    (work / "inputs").mkdir()
    shutil.copytree(Path(runtime.__file__).parent, work / "runtime",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in (model_path.name, METADATA_FILE, LABELS_FILE):
        if (model_path.parent / name).is_file():
            shutil.copy2(model_path.parent / name, work / "model" / name)
    sources = []
    if video is not None:
        if not Path(video).is_file():
            raise ToolkitError(f"{video}: no such video; pass --video a video file, or --images a photo folder")
        shutil.copy2(video, work / "inputs" / f"video{Path(video).suffix}")
        sources.append(Source("video", f"inputs/video{Path(video).suffix}", str(video), frames))
    elif video_photos:
        _, written, _ = write_video(video_photos, work / "inputs" / "video.avi", hold=1)
        sources.append(Source("video", "inputs/video.avi", f"{len(video_photos)} photos of "
                              f"{video_photos[0].parent.parent}, one frame each", written))
    if photos:
        (work / "inputs" / "images").mkdir()
        for path in photos:
            # the class folder in the name: test/cat/1.jpg and test/dog/1.jpg stay apart
            shutil.copy2(path, work / "inputs" / "images" / f"{path.parent.name}_{path.name}")
        sources.append(Source("images", "inputs/images", f"{len(photos)} photos of {photos[0].parent.parent}", None))
    return sources


def runtime_args(model_dir: str, source: Source, threads: int | None) -> list[str]:
    """``python -m runtime``'s arguments for one source (the same on both sides)."""
    args = ["-m", "runtime", "--model", f"{model_dir}/model", "--source", f"{model_dir}/{source.relative}",
            "--headless", "--top-k", str(TOP_K), "--retries", "0"]
    if source.frames is not None:
        args += ["--max-frames", str(source.frames)]
    if threads:
        args += ["--threads", str(threads)]
    return args


def device_command(root: Path, route: Route, board: Board, args: list[str]) -> list[str]:
    """The command that runs ``python args...`` in the root's venv of ``route``, on the emulated ``board``."""
    return ["chroot", str(root), "/usr/bin/env", "-i", f"PATH={ROOT_PATH}", "HOME=/root", "LANG=C.UTF-8",
            f"QEMU_CPU={QEMU_CPUS[board]}", f"PYTHONPATH={ROOT_CHECK_DIR}", "PYTHONDONTWRITEBYTECODE=1",
            f"{ROUTE_VENVS[route]}/bin/python", *args]


def _run(command: list[str], what: str, timeout_s: float, cwd: Path | None = None,
         env: dict | None = None) -> subprocess.CompletedProcess:
    try:
        done = subprocess.run(command, capture_output=True, text=True, errors="replace", timeout=timeout_s,
                              cwd=cwd, env=env, check=False)
    except FileNotFoundError as error:
        raise ToolkitError(f"{what}: {error.filename} not found (make pi-check installs what it needs)") from None
    except subprocess.TimeoutExpired:
        raise ToolkitError(f"{what}: no end after {timeout_s:.0f} s") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ToolkitError(f"{what} failed (exit {done.returncode}): {last}")
    return done


def parse_records(stdout: str) -> list[dict]:
    """The JSON lines of ``python -m runtime --headless`` (other lines are skipped)."""
    records = []
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            records.append(json.loads(line))
    return records


def _key(record: dict):
    # the file's name: the folder is a path here and another inside the root
    return Path(record["file"]).name if "file" in record else record["frame"]


def _scores(record: dict) -> dict[str, float]:
    if "top" in record:
        return {label: float(score) for label, score in record["top"]}
    return {record["label"]: float(record["score"])}


def compare(host: list[dict], device: list[dict], step: float | None) -> dict:
    """Top-1 agreement and score differences of two runs' JSON lines, matched by file (images) or frame index.

    Args:
        host: This machine's records.
        device: The root's records.
        step: The model's output quantization step (None: a float output; differences only as numbers).

    Returns:
        frames (host), compared (in both), missing (in one only), top1_agreement, disagreements (their keys
        with both labels, the first 10), max/mean_abs_score_diff, max/mean_score_diff_steps.
    """
    by_key = {_key(record): record for record in device}
    pairs = [(record, by_key[_key(record)]) for record in host if _key(record) in by_key]
    missing = len(host) + len(device) - 2 * len(pairs)
    disagreements = [{"key": _key(a), "host": a["label"], "device": b["label"]}
                     for a, b in pairs if a["label"] != b["label"]]
    diffs = []
    for a, b in pairs:
        scores_a, scores_b = _scores(a), _scores(b)
        shared = scores_a.keys() & scores_b.keys()
        diffs.extend(abs(scores_a[label] - scores_b[label]) for label in shared)
    max_diff = max(diffs, default=0.0)
    mean_diff = sum(diffs) / len(diffs) if diffs else 0.0
    return {
        "frames": len(host),
        "compared": len(pairs),
        "missing": missing,
        "top1_agreement": round(1 - len(disagreements) / len(pairs), 4) if pairs else None,
        "disagreements": disagreements[:10],
        "max_abs_score_diff": round(max_diff, 4),
        "mean_abs_score_diff": round(mean_diff, 5),
        "max_score_diff_steps": round(max_diff / step, 2) if step else None,
        "mean_score_diff_steps": round(mean_diff / step, 3) if step else None,
    }


def within_budget(result: dict) -> bool:
    """Whether one source's end-to-end comparison meets MIN_TOP1_AGREEMENT, with every frame compared."""
    return bool(result["compared"]) and not result["missing"] and result["top1_agreement"] >= MIN_TOP1_AGREEMENT


def video_tensors(model_path: Path, video: Path, frames: int) -> np.ndarray:
    """The input tensors of the first ``frames`` frames of ``video``, made here as the camera loop makes them
    (the runtime's video source, resize, quantize): (N, 1, H, W, 3) in the model's input dtype.

    Raises:
        ToolkitError: the video cannot be read.
    """
    model_path, metadata = locate_model(model_path)
    classifier = Classifier(model_path, metadata, num_threads=1)
    source = VideoFileSource(video)
    source.open()
    tensors = []
    try:
        while len(tensors) < frames and (frame := source.read()) is not None:
            tensors.append(classifier.input_tensor_rgb(frame.image_rgb))
    finally:
        source.close()
    return np.stack(tensors)


def compare_outputs(host: np.ndarray, device: np.ndarray, step: float | None) -> dict:
    """The model alone on both CPUs: the same tensors' outputs, compared exactly and in output steps."""
    diff = np.abs(host.astype(np.float64) - device.astype(np.float64)).reshape(len(host), -1)
    per_input = diff.max(axis=1)
    max_diff = float(per_input.max(initial=0.0))
    return {
        "inputs": int(len(host)),
        "bit_identical": int((per_input == 0).sum()),
        "top1_agreement": round(float((host.reshape(len(host), -1).argmax(1)
                                       == device.reshape(len(device), -1).argmax(1)).mean()), 4),
        "max_abs_diff": max_diff,
        "max_diff_steps": round(max_diff / step, 2) if step else None,
        "passed": bool(max_diff <= (MAX_KERNEL_DIFF_STEPS * step if step else 0.0) + 1e-7),
    }


def available_routes(root: Path) -> list[Route]:
    """The routes whose venv the root has (scripts/pi_root.sh: apt builds both, pypi only its own)."""
    return [route for route in Route if (root / ROUTE_VENVS[route].lstrip("/") / "bin" / "python").exists()]


def check_root(root: Path) -> None:
    """Raises ToolkitError with the fix when ``root`` cannot run the check here."""
    root = Path(root)
    if not (root / ".vgg-edge-base").is_file():
        reason = Path(f"{root}.unavailable")
        why = reason.read_text().strip() if reason.is_file() else "not built"
        raise ToolkitError(f"{root}: no arm64 root ({why}); run `make pi-check` (scripts/pi_root.sh builds it)")
    if os.geteuid() != 0:
        raise ToolkitError("pi-check runs the root with chroot, which needs root: run it as root or with sudo")
    binfmt = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")
    if not binfmt.is_file() or not binfmt.read_text().startswith("enabled"):
        raise ToolkitError("qemu-aarch64 is not registered with binfmt_misc; run scripts/pi_root.sh (it mounts and "
                           "registers it) or: update-binfmts --enable qemu-aarch64")
    if not available_routes(root):
        raise ToolkitError(f"{root}: no venv in the root; run scripts/pi_root.sh {root.parent} again")


def check(artifacts: Path, root: Path, video: Path | None, frames: int, images: Path | None, image_count: int,
          board: Board = Board.PI4, routes: list[Route] | None = None, threads: int | None = None,
          out: Path | None = None) -> dict:
    """Runs the check and writes ``pi_check.json`` (into ``artifacts`` when it is a folder, else beside the
    model, or to ``out``). Returns what it wrote.

    Args:
        artifacts: The make convert folder or a ``.tflite`` file (``metadata.json`` beside it).
        root: The arm64 root of ``scripts/pi_root.sh``.
        video: A video whose first ``frames`` frames are run; None: a video made of ``frames`` photos of ``images``.
        frames: Video frames compared.
        images: A photo folder (class subfolders allowed) for the made video and the image-folder run.
        image_count: Photos of ``images`` (after the video's) run as an image folder.
        board: The Pi whose CPU qemu emulates.
        routes: The device installs to check; None: every one the root has.
        threads: Interpreter threads on both sides (None: all cores).
        out: Where to write the report.

    Raises:
        ToolkitError: a missing model, root, video or image folder, or a run that failed.
    """
    started = time.perf_counter()
    root = Path(root).resolve()
    check_root(root)
    model_path, metadata = locate_model(artifacts)
    routes = routes or available_routes(root)
    missing = [route.value for route in routes if route not in available_routes(root)]
    if missing:
        raise ToolkitError(f"{root}: no {', '.join(missing)} route in this root; build it with "
                           f"scripts/pi_root.sh {root.parent} apt")
    video_photos, photos = pick_images(images, 0 if video else frames, image_count) if images else ([], [])
    work = root / ROOT_CHECK_DIR.lstrip("/")
    sources = stage(work, model_path, video, frames, video_photos, photos)
    if not sources:
        raise ToolkitError("nothing to run: give --video and/or --images")
    staged_model = work / "model" / model_path.name
    output = TFLiteModel(staged_model).output_detail
    scale = float(output["quantization"][0])  # 0.0 for a float output
    step = scale or None
    cores = threads or os.cpu_count() or 1
    write_board_cpu(root, board, cores)
    video = next((source for source in sources if source.kind == "video"), None)
    kernel_args = [f"model/{model_path.name}", "inputs/tensors.npy"]
    if video is not None:
        np.save(work / "inputs" / "tensors.npy", video_tensors(staged_model, work / video.relative,
                                                               min(video.frames, MODEL_ALONE_INPUTS)))

    env = {**os.environ, "PYTHONPATH": str(work), "PYTHONDONTWRITEBYTECODE": "1"}
    host_runs = {}
    for source in sources:
        began = time.perf_counter()
        done = _run([sys.executable, *runtime_args(str(work), source, threads)], f"the {source.kind} run here",
                    DEVICE_TIMEOUT_S, cwd=work, env=env)
        host_runs[source.kind] = (parse_records(done.stdout), time.perf_counter() - began)
        LOG.info("pi-check: here, %s: %d frames in %.1f s", source.kind, len(host_runs[source.kind][0]),
                 host_runs[source.kind][1])
    if video is not None:
        _run([sys.executable, "-c", KERNEL_CODE, *[str(work / arg) for arg in kernel_args],
              str(work / "inputs" / "outputs_host.npy"), str(threads or 0)], "the model alone here",
             DEVICE_TIMEOUT_S, cwd=work, env=env)

    results = []
    for route in routes:
        probe = _run(device_command(root, route, board, ["-c", PROBE_CODE]), f"the {route.value} route's imports",
                     DEVICE_TIMEOUT_S, cwd=work)
        versions = json.loads(probe.stdout.strip().splitlines()[-1])
        route_result = {"route": route.value, "venv": ROUTE_VENVS[route], **versions, "model_alone": None,
                        "sources": []}
        if video is not None:
            began = time.perf_counter()
            device_outputs = work / "inputs" / f"outputs_{route.value}.npy"
            _run(device_command(root, route, board, ["-c", KERNEL_CODE,
                                                     *[f"{ROOT_CHECK_DIR}/{arg}" for arg in kernel_args],
                                                     f"{ROOT_CHECK_DIR}/inputs/{device_outputs.name}",
                                                     str(threads or 0)]),
                 f"the model alone in the root ({route.value} route)", DEVICE_TIMEOUT_S, cwd=work)
            route_result["model_alone"] = {
                **compare_outputs(np.load(work / "inputs" / "outputs_host.npy"), np.load(device_outputs), step),
                "device_seconds": round(time.perf_counter() - began, 1)}
        for source in sources:
            began = time.perf_counter()
            done = _run(device_command(root, route, board, runtime_args(ROOT_CHECK_DIR, source, threads)),
                        f"the {source.kind} run in the root ({route.value} route)", DEVICE_TIMEOUT_S, cwd=work)
            seconds = time.perf_counter() - began
            host_records, host_seconds = host_runs[source.kind]
            device_records = parse_records(done.stdout)
            compared = compare(host_records, device_records, step)
            compared["passed"] = within_budget(compared)
            route_result["sources"].append({
                "kind": source.kind, "source": source.origin, **compared,
                "host_seconds": round(host_seconds, 1), "device_seconds": round(seconds, 1),
                "device_seconds_per_frame": round(seconds / max(1, len(device_records)), 2),
            })
            LOG.info("pi-check: %s route, %s: %d frames in %.1f s under emulation", route.value, source.kind,
                     len(device_records), seconds)
        results.append(route_result)

    checks = [source["passed"] for route in results for source in route["sources"]]
    checks += [route["model_alone"]["passed"] for route in results if route["model_alone"]]
    report = {
        "model": {"file": str(model_path), "sha256": sha256_file(model_path), "labels": list(metadata.labels),
                  "output_scale": step},
        "host": {"cpu": this_cpu().to_dict(), "machine": platform.machine(), "python": platform.python_version(),
                 "interpreter": interpreter_backend()},
        "device": {"root": str(root), "release": "Debian 12 (bookworm) arm64", "board": board.value,
                   "qemu_cpu": QEMU_CPUS[board], "emulator": _qemu_version(),
                   "cpuinfo": f"written by the check: {BOARD_CPUINFO[board][4]}'s, {cores} cores"},
        "budget": {"max_kernel_diff_steps": MAX_KERNEL_DIFF_STEPS, "min_top1_agreement": MIN_TOP1_AGREEMENT},
        "routes": results,
        "passed": all(checks),
        "seconds": round(time.perf_counter() - started, 1),
    }
    target = Path(out) if out else (Path(artifacts) if Path(artifacts).is_dir() else model_path.parent) / PI_CHECK_JSON
    write_json_atomic(target, report)
    report["path"] = str(target)
    return report


def _qemu_version() -> str | None:
    try:
        done = subprocess.run(["qemu-aarch64-static", "--version"], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        return None
    return (done.stdout.splitlines() or [None])[0]


def summary_line(report: dict) -> str:
    """One line: per route and source, the agreement and the largest score difference, then the verdict."""
    parts = []
    for route in report["routes"]:
        items = []
        for source in route["sources"]:
            steps = (f"{source['max_score_diff_steps']:g} steps" if source["max_score_diff_steps"] is not None
                     else f"{source['max_abs_score_diff']:g}")
            agree = round(source["top1_agreement"] * source["compared"]) if source["compared"] else 0
            items.append(f"{source['kind']} {agree}/{source['compared']} labels equal, max score diff {steps}")
        alone = route["model_alone"]
        if alone:
            items.insert(0, f"model alone {alone['bit_identical']}/{alone['inputs']} bit-identical, max "
                            + (f"{alone['max_diff_steps']:g} steps" if alone["max_diff_steps"] is not None
                               else f"{alone['max_abs_diff']:g}"))
        parts.append(f"{route['route']} route (numpy {route['numpy']}, opencv {route['opencv']}, "
                     f"{route['interpreter']}): " + "; ".join(items))
    verdict = "PASS" if report["passed"] else "FAIL"
    return (f"pi-check ({report['device']['board']}, qemu {report['device']['qemu_cpu']}): " + " | ".join(parts)
            + f"; {report['seconds']:.0f} s; {verdict} -> {report['path']}")
