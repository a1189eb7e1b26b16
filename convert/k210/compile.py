"""nncase 1.9 through a subprocess: compile a float TFLite to a K210 kmodel, run kmodels in its simulator.

The main venv (Python 3.11) never imports nncase: its K210 target exists only in nncase 1.9, whose
wheels need CPython 3.6-3.10. ``make k210-toolchain`` (scripts/k210_toolchain.sh) builds an environment
with it and a ``python`` command in ``.k210/``; each job here is a folder with ``job.json``, the inputs as
files, and a copy of ``convert/nncase_worker.py``, run as ``subprocess.run([...], check=True)``. The
compile log is kept beside the job.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runtime.errors import ToolkitError

DEFAULT_TOOLCHAIN = Path(__file__).resolve().parents[2] / ".k210"  # the repository's .k210 (make k210-toolchain)
WORKER = Path(__file__).resolve().with_name("nncase_worker.py")
LOG_FILE = "nncase.log"
_MEMORY_LINE = re.compile(r"^(\.input|\.output|\.data|MODEL|TOTAL)\s+[\d.]+ \w+\s+\((\d+) B\)", re.MULTILINE)


@dataclass(frozen=True)
class KmodelInput:
    """What the board feeds the kmodel, baked into it as nncase preprocessing.

    Attributes:
        height: Input height in pixels.
        width: Input width in pixels.
        layout: "NCHW" (planar, as the K210 camera interface's AI buffer delivers) or "NHWC".
        color_order: "RGB": the board's channel order; ``swapRB`` is set when the model wants the other.
    """

    height: int
    width: int
    layout: str = "NCHW"
    color_order: str = "RGB"

    @property
    def shape(self) -> list[int]:
        if self.layout == "NCHW":
            return [1, 3, self.height, self.width]
        return [1, self.height, self.width, 3]

    def from_nhwc(self, images_rgb: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 RGB -> the kmodel's input layout, uint8."""
        images = np.asarray(images_rgb, np.uint8)
        if self.layout == "NCHW":
            return np.ascontiguousarray(np.transpose(images, (0, 3, 1, 2)))
        return np.ascontiguousarray(images)


def compile_options(kmodel_input: KmodelInput) -> dict:
    """nncase CompileOptions for a model that takes RGB pixels 0..255 as float (normalization in-graph).

    The kmodel takes uint8 camera pixels: nncase maps them onto ``input_range`` [0, 255] and applies
    ``(x - mean) / std`` with mean 0 and std 1, which gives the float model exactly the pixel values.
    """
    return {
        "target": "k210",
        "quant_type": "uint8",
        "w_quant_type": "uint8",
        "preprocess": True,
        "input_type": "uint8",
        "input_range": [0.0, 255.0],
        "mean": [0.0, 0.0, 0.0],
        "std": [1.0, 1.0, 1.0],
        "swapRB": kmodel_input.color_order != "RGB",
        "input_layout": kmodel_input.layout,
        "input_shape": kmodel_input.shape,
        "output_type": "float32",
    }


def toolchain_python(toolchain: Path = DEFAULT_TOOLCHAIN) -> Path:
    """The toolchain's ``python`` command.

    Raises:
        ToolkitError: Not built, or built without success (the reason recorded by the build).
    """
    toolchain = Path(toolchain).resolve()  # jobs run with the job folder as their working directory
    python = toolchain / "python"
    unavailable = toolchain / "unavailable"
    if unavailable.is_file():
        raise ToolkitError(f"K210 toolchain unavailable: {unavailable.read_text().strip()} (firmware_notes/k210.md)")
    if not python.is_file():
        raise ToolkitError(f"{python}: no K210 toolchain; run `make k210-toolchain` (firmware_notes/k210.md)")
    return python


def toolchain_route(toolchain: Path = DEFAULT_TOOLCHAIN) -> str:
    route = Path(toolchain) / "route"
    return route.read_text().strip() if route.is_file() else "unknown"


def run_job(job: dict, work: Path, toolchain: Path = DEFAULT_TOOLCHAIN) -> dict:
    """Runs one worker job in ``work`` (created); returns its result.json. The log stays in ``work``.

    Raises:
        ToolkitError: The toolchain is missing, or nncase failed (its last error line, and the log's path).
    """
    python = toolchain_python(toolchain)
    work = Path(work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    shutil.copy(WORKER, work / WORKER.name)
    (work / "job.json").write_text(json.dumps(job, indent=2))
    (work / "result.json").unlink(missing_ok=True)
    log = work / LOG_FILE
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["K210_WORK"] = str(work)
    with open(log, "a", encoding="utf-8") as log_file:
        log_file.write(f"\n=== {job['action']} ===\n")
        log_file.flush()
        try:
            subprocess.run([str(python), str(work / WORKER.name), str(work / "job.json")], cwd=work, env=env,
                           stdout=log_file, stderr=subprocess.STDOUT, check=True)
        except subprocess.CalledProcessError as error:
            raise ToolkitError(f"nncase {job['action']} failed ({_last_error(log)}, exit {error.returncode}); "
                               f"log kept at {log}") from None
    return json.loads((work / "result.json").read_text())


def _last_error(log: Path) -> str:
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    for line in reversed(lines):
        if any(word in line for word in ("Error", "error", "Exception", "Fatal", "memory")):
            return line[:200]
    return lines[-1][:200] if lines else "no output"


def memory_usage(log: Path) -> dict[str, int]:
    """The MEMORY USAGES table nncase prints after compiling: bytes of .input, .output, .data, MODEL, TOTAL."""
    found = _MEMORY_LINE.findall(log.read_text(errors="replace"))
    return {name.lstrip("."): int(size) for name, size in found[-5:]}


def compile_kmodel(float_tflite: Path, calibration: np.ndarray, kmodel_input: KmodelInput, out: Path, work: Path,
                   toolchain: Path = DEFAULT_TOOLCHAIN, calibrate_method: str = "no_clip") -> tuple[Path, dict]:
    """Compiles a float TFLite into a K210 kmodel with uint8 post-training quantization.

    Args:
        float_tflite: The float model (RGB 0..255 in).
        calibration: (N, H, W, 3) uint8 RGB images; converted to the kmodel's input layout here.
        kmodel_input: What the board feeds.
        out: The ``.kmodel`` to write (atomically).
        work: Job folder (kept, with the log).
        toolchain: The ``make k210-toolchain`` folder.
        calibrate_method: nncase's activation range method ("no_clip", "l2", "kld_m0", ...).

    Returns:
        (path written, details: kmodel bytes, compile seconds, nncase's memory table).
    """
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    shutil.copy(float_tflite, work / "model_float.tflite")
    np.save(work / "calibration.npy", kmodel_input.from_nhwc(calibration))
    result = run_job({"action": "compile", "tflite": "model_float.tflite", "kmodel": "model.kmodel",
                      "calibration": "calibration.npy", "calibrate_method": calibrate_method,
                      "options": compile_options(kmodel_input)}, work, toolchain)
    result["memory"] = memory_usage(work / LOG_FILE)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.copy(work / "model.kmodel", tmp)
    os.replace(tmp, out)
    return out, result


def simulate_kmodel(kmodel: Path, images_rgb: np.ndarray, kmodel_input: KmodelInput, work: Path,
                    toolchain: Path = DEFAULT_TOOLCHAIN) -> tuple[np.ndarray, dict]:
    """Runs (N, H, W, 3) uint8 RGB images through the kmodel in nncase's K210 simulator.

    Returns:
        ((N, classes) float32 outputs, details: seconds).
    """
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    shutil.copy(kmodel, work / "model.kmodel")
    np.save(work / "inputs.npy", kmodel_input.from_nhwc(images_rgb))
    result = run_job({"action": "simulate", "kmodel": "model.kmodel", "inputs": "inputs.npy",
                      "outputs": "outputs.npy"}, work, toolchain)
    return np.load(work / "outputs.npy"), result
