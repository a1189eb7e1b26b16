"""``make kmodel-riscv-check``: the firmware's nncase 1.9 runtime on a RISC-V CPU against nncase's simulator.

The board firmware's runtime (built from the same sources by ``firmware/k210/CMakeLists.txt``), with the k210
module's software KPU path (``NNCASE_SIMULATOR``), runs on qemu's RISC-V ``virt`` machine
(``qemu-system-riscv64``) with semihosting for its files. It gets ``OUT``'s kmodel and N test images as the
exact uint8 inputs nncase's Python simulator gets (the images ``make kmodel``'s N-image check takes), and
its outputs are compared with the simulator's: bit-identical, or the differences counted and shown.
Written to ``OUT/k210_riscv_check.json``.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from convert.k210.compile import DEFAULT_TOOLCHAIN, simulate_kmodel
from convert.k210.firmware import (
    DEFAULT_CACHE,
    add_build_arguments,
    build_in_cache,
    check_kmodel,
    sample_test_inputs,
)
from convert.schema import K210_WORK_DIR, KMODEL_FILE
from runtime.cli import run_main
from runtime.errors import ToolkitError
from runtime.files import write_json_atomic

LOG = logging.getLogger(__name__)

CHECK_JSON = "k210_riscv_check.json"
CHECK_PROGRAM = "nncase_riscv_check"
QEMU = "qemu-system-riscv64"
QEMU_MEMORY = "256M"  # the program's picolibc linker script places it in the first 128 MiB of virt's RAM
QEMU_TIMEOUT_S_PER_IMAGE = 120  # software KPU under emulation: seconds an image for a 224x224 variant


def build_program(cache: Path, vendor: Path | None, jobs: int | None = None) -> Path:
    """Builds ``nncase_riscv_check.elf`` in the firmware build folder (the board program's runtime objects
    are shared when ``make firmware`` built there first). Returns the ELF."""
    return build_in_cache(cache, vendor, [CHECK_PROGRAM], jobs) / f"{CHECK_PROGRAM}.elf"


def run_on_qemu(program: Path, kmodel: Path, inputs_uint8: np.ndarray, work: Path, output_shape: tuple,
                processes: int | None = None) -> np.ndarray:
    """Runs every input through the kmodel on qemu's ``virt`` machine, in ``processes`` qemu processes at once
    (None: one per CPU core; each emulates one hart, so a core each), each on a contiguous share of the
    inputs. Returns (N, ...) float32 outputs in the inputs' order.

    Raises:
        ToolkitError: qemu missing, the program failing (its one JSON error line), or a time-out.
    """
    if shutil.which(QEMU) is None:
        raise ToolkitError(f"{QEMU} not found; run `make firmware-toolchain` (Debian package qemu-system-misc)")
    processes = max(1, min(processes or os.cpu_count() or 1, len(inputs_uint8)))
    shares = np.array_split(np.arange(len(inputs_uint8)), processes)
    work = Path(work)
    folders = [work if processes == 1 else work / f"part{index}" for index in range(processes)]
    with ThreadPoolExecutor(processes) as pool:
        parts = list(pool.map(lambda job: _qemu_job(program, kmodel, inputs_uint8[job[0]], job[1], output_shape),
                              zip(shares, folders)))
    return np.concatenate(parts)


def _qemu_job(program: Path, kmodel: Path, inputs_uint8: np.ndarray, work: Path, output_shape: tuple) -> np.ndarray:
    """One qemu process over ``inputs_uint8`` in ``work``: (N, ...) float32 outputs."""
    work.mkdir(parents=True, exist_ok=True)
    shutil.copy(kmodel, work / "model.kmodel")
    np.ascontiguousarray(inputs_uint8, np.uint8).tofile(work / "inputs.bin")
    (work / "outputs.bin").unlink(missing_ok=True)
    args = ["nncase_riscv_check", "model.kmodel", "inputs.bin", str(len(inputs_uint8)), "outputs.bin"]
    command = [QEMU, "-machine", "virt", "-m", QEMU_MEMORY, "-nographic", "-bios", "none", "-kernel",
               str(Path(program).resolve()), "-semihosting-config",
               "enable=on,target=native," + ",".join(f"arg={arg}" for arg in args)]
    try:
        result = subprocess.run(command, cwd=work, capture_output=True, text=True, check=False,
                                timeout=QEMU_TIMEOUT_S_PER_IMAGE * len(inputs_uint8) + 60)
    except subprocess.TimeoutExpired:
        raise ToolkitError(f"{QEMU} did not finish {len(inputs_uint8)} images in time (work: {work})") from None
    (work / "qemu.log").write_text(result.stdout + result.stderr, encoding="utf-8")
    if result.returncode != 0 or not (work / "outputs.bin").is_file():
        last = (result.stdout.strip().splitlines() or result.stderr.strip().splitlines() or ["no output"])[-1]
        raise ToolkitError(f"{CHECK_PROGRAM} on {QEMU} failed (exit {result.returncode}): {last[:300]} "
                           f"(log: {work / 'qemu.log'})")
    outputs = np.fromfile(work / "outputs.bin", np.float32)
    expected = len(inputs_uint8) * int(np.prod(output_shape))
    if outputs.size != expected:
        raise ToolkitError(f"{CHECK_PROGRAM} wrote {outputs.size} floats for {expected} (log: {work / 'qemu.log'})")
    return outputs.reshape((len(inputs_uint8), *output_shape))


def compare_outputs(riscv: np.ndarray, simulator: np.ndarray, names: list[str]) -> dict:
    """Bit-identity per image, the largest absolute difference, top-1 agreement, and the differing images."""
    riscv, simulator = np.asarray(riscv, np.float32), np.asarray(simulator, np.float32)
    flat_r, flat_s = riscv.reshape(len(riscv), -1), simulator.reshape(len(simulator), -1)
    identical = np.all(flat_r.view(np.uint32) == flat_s.view(np.uint32), axis=1)
    difference = np.abs(flat_r - flat_s).max(axis=1)
    return {
        "images": int(len(riscv)),
        "bit_identical_images": int(identical.sum()),
        "bit_identical": bool(identical.all()),
        "max_abs_diff": float(difference.max()) if len(difference) else 0.0,
        "top1_agreement": float((flat_r.argmax(1) == flat_s.argmax(1)).mean()) if len(riscv) else 1.0,
        "differing": [{"image": names[i], "max_abs_diff": float(difference[i]),
                       "riscv": flat_r[i].tolist(), "simulator": flat_s[i].tolist()}
                      for i in np.flatnonzero(~identical)[:20]],
    }


def check(artifacts: Path, images: int = 20, vendor: Path | None = None, cache: Path = DEFAULT_CACHE,
          toolchain: Path = DEFAULT_TOOLCHAIN, jobs: int | None = None) -> dict:
    """``make kmodel-riscv-check``: returns and writes ``OUT/k210_riscv_check.json``."""
    artifacts = Path(artifacts)
    started = time.perf_counter()
    kmodel = artifacts / KMODEL_FILE
    if not kmodel.is_file():
        raise ToolkitError(f"{artifacts}: no {KMODEL_FILE}; run `make kmodel` first")
    check_kmodel(kmodel)
    program = build_program(cache, vendor, jobs)
    built = time.perf_counter()
    names, images_rgb, kmodel_input, _ = sample_test_inputs(artifacts, images)
    work = artifacts / K210_WORK_DIR / "riscv_check"
    simulator, _ = simulate_kmodel(kmodel, images_rgb, kmodel_input, work / "simulator", toolchain)
    simulated = time.perf_counter()
    # The simulator's job gets the same bytes: simulate_kmodel saves kmodel_input.from_nhwc(images_rgb).
    riscv = run_on_qemu(program, kmodel, kmodel_input.from_nhwc(images_rgb), work / "qemu", simulator.shape[1:])
    result = compare_outputs(riscv, simulator, names)
    result.update({"kmodel": KMODEL_FILE, "runtime": "nncase 1.9.0 runtime + k210 module (software KPU), "
                   "rv64imafc, on qemu-system-riscv64 virt", "qemu": _qemu_version(),
                   "build_s": round(built - started, 1), "simulator_s": round(simulated - built, 1),
                   "qemu_s": round(time.perf_counter() - simulated, 1)})
    write_json_atomic(artifacts / CHECK_JSON, result)
    return result


def _qemu_version() -> str:
    out = subprocess.run([QEMU, "--version"], capture_output=True, text=True, check=False).stdout
    return out.splitlines()[0] if out else QEMU


def summary_line(result: dict) -> str:
    verdict = ("bit-identical" if result["bit_identical"] else
               f"{result['images'] - result['bit_identical_images']} differ")
    return (f"kmodel-riscv-check: {result['images']} test images, nncase 1.9 runtime on RISC-V (qemu) vs "
            f"nncase's simulator: {verdict} ({result['bit_identical_images']}/{result['images']} identical), "
            f"max abs diff {result['max_abs_diff']:.3g}, top-1 agreement {result['top1_agreement']:.2%}; "
            f"qemu {result['qemu_s']:.0f} s")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m convert.k210.riscv_check", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--artifacts", type=Path, required=True, help="OUT of make convert + make kmodel")
    parser.add_argument("-n", "--images", type=int, default=20, help="test images to run on both")
    add_build_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    def body() -> int:
        if args.images < 1:
            raise ToolkitError(f"-n {args.images}: give at least one image")
        result = check(args.artifacts, args.images, args.vendor, args.cache, args.toolchain, args.jobs)
        print(summary_line(result), flush=True)
        return 0 if result["bit_identical"] else 3

    return run_main(body)


if __name__ == "__main__":
    sys.exit(main())
