"""``make firmware``: a flashable K210 image of ``OUT``'s kmodel on nncase 1.9's runtime, built from source.

Steps: 1. find the upstream sources (``--vendor`` folder, else a pinned git fetch of the same commits) and
the bare-metal toolchain (``scripts/k210_firmware_toolchain.sh``: Debian's riscv64-unknown-elf GCC, picolibc
and the libstdc++ it builds); 2. check the kmodel (kmodel V5 with only the module types the runtime knows:
nncase 1.9's lookup never returns for another); 3. write the self-test header (one test photo, the uint8
input nncase's simulator is given, and the simulator's scores for it); 4. configure and build
``firmware/k210/CMakeLists.txt`` with CMake and Ninja; the linker decides whether it fits the 6 MiB of RAM;
5. read the ELF's sizes and copy ``vgg_edge.{elf,bin,map}`` into ``OUT/k210_firmware/``; record them in
``k210_report.json`` and ``metadata.json``'s ``k210`` section.

The same build folder, ``FIRMWARE_CACHE/build``, also builds ``nncase_riscv_check``
(``convert/k210/riscv_check.py``). The part of it that depends on no kmodel (the SDK, nncase's runtime and
both builds of its k210 module, about a minute on 2 cores) is compiled once by ``make firmware-toolchain``
(``--libraries``); each ``make firmware`` then compiles the board program and links.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from convert.artifacts import sha256_file, write_json_atomic, write_text_atomic
from convert.k210.compile import DEFAULT_TOOLCHAIN, KmodelInput, simulate_kmodel
from convert.schema import (
    K210_LABELS_HEADER,
    K210_REPORT_JSON,
    K210_WORK_DIR,
    KMODEL_FILE,
    METADATA_FILE,
    FirmwareRecord,
    metadata_dict,
    read_conversion,
)
from runtime.cli import run_main
from runtime.errors import ToolkitError

LOG = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
PROJECT = REPO / "firmware" / "k210"  # our CMake project: board program, picolibc shims, qemu check
DEFAULT_CACHE = REPO / ".k210" / "firmware"  # scripts/k210_firmware_toolchain.sh's folder, and the build
TOOLCHAIN_SCRIPT = REPO / "scripts" / "k210_firmware_toolchain.sh"
FIRMWARE_DIR = "k210_firmware"  # in OUT
FIRMWARE_NAME = "vgg_edge"
RUNTIME_LIBRARIES = "runtime_libraries"  # the CMake target of everything that depends on no kmodel
LIBSTDCXX = "libstdcxx-12.2.0"

# kflash's -B names; firmware/k210/board/boards.h says what the program knows of each.
BOARDS = ("dan", "bit", "bit_mic", "maixduino", "kd233", "goD", "goE", "trainer")
K210_RAM_BYTES = 6 * 1024 * 1024  # the SDK's lds/kendryte.ld: 6 MiB of cached SRAM
KMODEL_MODULES = ("k210", "stackvm")  # what nncase 1.9's runtime here is built with
# Heap beyond nncase's data pool and output that its runtime's own objects (interpreter, module and tensor
# bookkeeping) need at kpu_load_kmodel. Not measured on a board (none here): a generous allowance.
NNCASE_HEAP_ALLOWANCE = 256 * 1024  # bytes


@dataclass(frozen=True)
class Source:
    """One upstream tree: its folder name under ``--vendor``, where to fetch it, and the commit."""

    folder: str
    url: str
    commit: str


SOURCES = (
    Source("kendryte-standalone-sdk", "https://github.com/kendryte/kendryte-standalone-sdk",
           "02576ba67e8797444f3ee3f34c625b5ed048e707"),
    Source("nncase-1.9.0", "https://github.com/kendryte/nncase", "3473131922086334d17afefad1597c37555d67df"),
    Source("kendryte-standalone-demo", "https://github.com/kendryte/kendryte-standalone-demo",
           "e89c35465fadb5524c892d2a1c7a76dc76e219ed"),
)
_MARKERS = {  # a file each tree must have, to tell a real copy from an empty folder
    "kendryte-standalone-sdk": "lds/kendryte.ld",
    "nncase-1.9.0": "src/runtime/interpreter.cpp",
    "kendryte-standalone-demo": "dvp_ov/ov2640.c",
}
_OVERFLOW = re.compile(r"region `(\w+)' overflowed by (\d+) bytes")


def kmodel_modules(kmodel: Path) -> list[str]:
    """The module types of a kmodel V5 (nncase 1.x), in file order.

    Raises:
        ToolkitError: Not a kmodel V5.
    """
    data = Path(kmodel).read_bytes()
    if len(data) < 32 or data[:4] != b"LDMK":
        raise ToolkitError(f"{kmodel}: not a kmodel (no KMDL header); rebuild it with `make kmodel`")
    version, _, _, _, modules = np.frombuffer(data[4:24], "<u4")  # version, header_size, flags, alignment
    if version != 5:
        raise ToolkitError(f"{kmodel}: kmodel version {version}, not 5 (nncase 1.x); rebuild it with `make kmodel`")
    types, offset = [], 32  # the runtime reads sizeof(model_header) = 32 bytes, then the modules
    for _ in range(int(modules)):
        if offset + 28 > len(data):
            raise ToolkitError(f"{kmodel}: truncated kmodel (module header past the end); rebuild it with `make kmodel`")
        types.append(data[offset:offset + 16].split(b"\0")[0].decode("ascii", "replace"))
        offset += int(np.frombuffer(data[offset + 24:offset + 28], "<u4")[0])
    return types


def check_kmodel(kmodel: Path) -> None:
    """Refuses a kmodel the firmware's runtime would hang on (an unknown module type) or misread."""
    unknown = [kind for kind in kmodel_modules(kmodel) if kind not in KMODEL_MODULES]
    if unknown:
        raise ToolkitError(f"{kmodel}: module type(s) {', '.join(unknown)} that this nncase 1.9 runtime does not have "
                           f"(only {', '.join(KMODEL_MODULES)}); nncase 1.9's runtime would loop forever looking for "
                           "them: compile the kmodel for target k210 with `make kmodel`")


def resolve_sources(vendor: Path | None, cache: Path) -> dict[str, Path]:
    """The three upstream trees: ``vendor/<folder>`` when present, else a git fetch of the pinned commit.

    Raises:
        ToolkitError: Neither a copy nor a fetch (one line: what is missing and why the fetch failed).
    """
    found = {}
    for source in SOURCES:
        marker = _MARKERS[source.folder]
        if vendor is not None and (Path(vendor) / source.folder / marker).is_file():
            found[source.folder] = (Path(vendor) / source.folder).resolve()
            continue
        fetched = Path(cache).resolve() / "sources" / f"{source.folder}-{source.commit[:7]}"
        if not (fetched / marker).is_file():
            _fetch(source, fetched, vendor)
        found[source.folder] = fetched
    return found


def _fetch(source: Source, dest: Path, vendor: Path | None) -> None:
    where = f"{vendor}/{source.folder}" if vendor else "no --vendor folder"
    if shutil.which("git") is None:
        raise ToolkitError(f"{source.folder}: not in {where} and git is not installed to fetch {source.url} "
                           f"@{source.commit[:7]}; pass --vendor DIR (K210_VENDOR=) with the sources")
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    try:
        for command in (["git", "init", "-q", str(partial)],
                        ["git", "-C", str(partial), "fetch", "-q", "--depth", "1", source.url, source.commit],
                        ["git", "-C", str(partial), "checkout", "-q", "FETCH_HEAD"]):
            subprocess.run(command, check=True, capture_output=True, text=True, timeout=600)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
        shutil.rmtree(partial, ignore_errors=True)
        detail = (getattr(error, "stderr", "") or str(error)).strip().splitlines()
        raise ToolkitError(f"{source.folder}: not in {where}, and fetching {source.url} @{source.commit[:7]} failed "
                           f"({detail[-1] if detail else error}); pass --vendor DIR (K210_VENDOR=) with the sources") from None
    partial.rename(dest)


def libstdcxx_dir(cache: Path) -> Path:
    """The libstdc++ ``scripts/k210_firmware_toolchain.sh`` built, with the tools it installed.

    Raises:
        ToolkitError: The toolchain is not there (the script's one-line reason when it recorded one).
    """
    cache = Path(cache).resolve()
    unavailable = cache / "unavailable"
    if unavailable.is_file():
        raise ToolkitError(f"{cache}: K210 firmware toolchain unavailable: {unavailable.read_text().strip()}")
    folder = cache / LIBSTDCXX
    missing = [tool for tool in ("riscv64-unknown-elf-g++", "cmake", "ninja") if shutil.which(tool) is None]
    if missing or not (folder / ".complete").is_file():
        what = ", ".join(missing) if missing else f"no {folder}"
        raise ToolkitError(f"K210 firmware toolchain missing ({what}); run `make firmware-toolchain` "
                           f"(scripts/k210_firmware_toolchain.sh {cache})")
    return folder


def selftest_header(kmodel_input_uint8: np.ndarray, expected: np.ndarray, image: str) -> str:
    """The C header of the board program's self-test: one input exactly as the simulator got it, its scores."""
    values = ",".join(str(int(v)) for v in kmodel_input_uint8.reshape(-1))
    scores = ", ".join(f"{float(v):.9g}f" for v in expected.reshape(-1))
    return ("/* Written by `make firmware`: the board program's self-test, one test photo as the kmodel's uint8 input\n"
            " * (the bytes nncase's simulator was given) and the simulator's scores for it. */\n#pragma once\n"
            "#include <stdint.h>\n"
            f"static const char VGG_EDGE_SELFTEST_FILE[] = {json.dumps(image)};\n"
            f"static const uint8_t VGG_EDGE_SELFTEST_INPUT[{kmodel_input_uint8.size}] = {{{values}}};\n"
            f"static const float VGG_EDGE_SELFTEST_EXPECTED[{expected.size}] = {{{scores}}};\n")


FONT_HEADER = "vgg_edge_font.h"  # in the build folder's generated/: the LCD's glyphs (board/lcd.c)
FONT_CELL = (10, 16)  # width, height in pixels


def font_header(cell: tuple[int, int] = FONT_CELL) -> str:
    """The C header of the board program's LCD font: ASCII 32-126 drawn by OpenCV's Hershey "plain" font
    (public-domain strokes) into ``cell``-sized cells, one uint16 per row, the leftmost pixel in bit
    width-1."""
    import cv2

    width, height = cell
    rows = []
    for code in range(32, 127):
        glyph = np.zeros((height, width), np.uint8)
        cv2.putText(glyph, chr(code), (0, 12), cv2.FONT_HERSHEY_PLAIN, 0.9, 255, 1, cv2.LINE_8)
        bits = (glyph > 127).astype(np.uint32) << np.arange(width - 1, -1, -1, dtype=np.uint32)
        rows.append(f"    {{{', '.join(f'0x{int(v):04x}' for v in bits.sum(axis=1))}}}, /* {chr(code)!r} */")
    return ("/* Written by `make firmware`: the board program's LCD font, ASCII 32-126 drawn by OpenCV's\n"
            " * Hershey plain font (convert/k210/firmware.py font_header); one uint16 a row, the leftmost pixel\n"
            " * in bit W-1. */\n"
            "#pragma once\n#include <stdint.h>\n"
            f"#define VGG_EDGE_FONT_W {width}\n#define VGG_EDGE_FONT_H {height}\n"
            f"static const uint16_t VGG_EDGE_FONT[95][{height}] = {{\n" + "\n".join(rows) + "\n};\n")


def write_if_changed(path: Path, text: str) -> None:
    """A generated header: ``text`` into ``path`` (atomically) unless it already holds it (Ninja then
    rebuilds nothing for it)."""
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        write_text_atomic(path, text)


@dataclass
class BoardInputs:
    """What the board program links in.

    Attributes:
        kmodel: The kmodel file.
        labels_header: ``k210_labels.h`` of ``make kmodel`` (labels, input size).
        selftest_header: The self-test header (:func:`selftest_header`).
    """

    kmodel: Path
    labels_header: Path
    selftest_header: Path


def configure(build: Path, sources: dict[str, Path], libstdcxx: Path, board: str, inputs: BoardInputs | None) -> None:
    """CMake configure of ``firmware/k210`` in ``build`` (Ninja); without ``inputs`` only the qemu check."""
    if board not in BOARDS:
        raise ToolkitError(f"BOARD={board}: not a board kflash knows; one of {' '.join(BOARDS)}")
    command = ["cmake", "-G", "Ninja", "-S", str(PROJECT), "-B", str(build),
               f"-DCMAKE_TOOLCHAIN_FILE={PROJECT / 'toolchain-riscv64-picolibc.cmake'}", f"-DLIBSTDCXX_DIR={libstdcxx}",
               f"-DSDK_DIR={sources['kendryte-standalone-sdk']}", f"-DNNCASE_DIR={sources['nncase-1.9.0']}",
               f"-DDEMO_DIR={sources['kendryte-standalone-demo']}", f"-DBOARD={board}",
               f"-DBUILD_BOARD={'ON' if inputs else 'OFF'}"]
    if inputs:
        write_if_changed(build / "generated" / FONT_HEADER, font_header())
        command += [f"-DKMODEL={inputs.kmodel}", f"-DLABELS_HEADER={inputs.labels_header}",
                    f"-DSELFTEST_HEADER={inputs.selftest_header}"]
    _run(command, build / "configure.log", "CMake configure of firmware/k210")


def build_targets(build: Path, targets: list[str], jobs: int | None = None) -> None:
    """Builds the named targets; a RAM overflow becomes one line with the number of bytes over.

    Raises:
        ToolkitError: The build failed (the RAM line, or the last error line, and the log's path).
    """
    command = ["cmake", "--build", str(build), "--target", *targets]
    if jobs:
        command += ["--parallel", str(jobs)]
    log = build / "build.log"
    try:
        _run(command, log, "the firmware build")
    except ToolkitError:
        overflow = _OVERFLOW.search(log.read_text(errors="replace"))
        if overflow:
            raise ToolkitError(f"the firmware does not fit the K210: region `{overflow.group(1)}' (6 MiB of SRAM) "
                               f"overflowed by {int(overflow.group(2)):,} bytes; build a smaller K210 variant "
                               f"(make kmodel KMODEL_ARGS=\"--max-gmacs 1\") (log: {log})") from None
        raise


def _run(command: list[str], log: Path, what: str) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w", encoding="utf-8") as handle:
        result = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        lines = [line for line in log.read_text(errors="replace").splitlines() if "error" in line.lower()]
        last = lines[-1].strip() if lines else "see the log"
        raise ToolkitError(f"{what} failed: {last[:300]} (log: {log})")


def elf_sizes(elf: Path) -> dict[str, int]:
    """text, data and bss bytes (``size``), and the heap the SDK's linker script leaves (``_heap_end`` -
    ``_heap_start``: what nncase's runtime allocates from at ``kpu_load_kmodel``)."""
    out = subprocess.run(["riscv64-unknown-elf-size", str(elf)], check=True, capture_output=True, text=True).stdout
    text, data, bss = (int(value) for value in out.splitlines()[1].split()[:3])
    symbols = {}
    nm = subprocess.run(["riscv64-unknown-elf-nm", str(elf)], check=True, capture_output=True, text=True).stdout
    for line in nm.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] in ("_heap_start", "_heap_end"):
            symbols[parts[2]] = int(parts[0], 16)
    return {"text_bytes": text, "data_bytes": data, "bss_bytes": bss,
            "heap_bytes": symbols["_heap_end"] - symbols["_heap_start"]}


def sample_test_inputs(artifacts: Path, count: int):
    """``count`` test images of ``make kmodel``'s data set, the ones its simulator check on ``count`` images
    takes (the kmodel and data set checked as ``make kmodel-report`` checks them).

    Returns:
        (file names relative to the data root, the decoded (count, H, W, 3) RGB images, the KmodelInput that
        turns them into the kmodel's uint8 input, the KmodelRecord).
    """
    from convert.k210.report import checked_kmodel, decode_checked, simulated_positions
    from runtime.preprocess import InputSpec

    report, record, metadata, dataset = checked_kmodel(artifacts)
    positions = simulated_positions(len(dataset.test.paths), count, report["options"].get("seed", 0))
    paths = [dataset.test.paths[i] for i in positions]
    size = report["plan"]["input_size"]
    images = decode_checked(paths, InputSpec(size, size, metadata.input.resize), "decode test")
    names = [Path(p).relative_to(dataset.root).as_posix() for p in paths]
    return names, images, KmodelInput(size, size, layout=record.input["layout"]), record


def build_folder(cache: Path) -> Path:
    """The one CMake build folder of ``make firmware``, ``make kmodel-riscv-check`` and the libraries."""
    return Path(cache).resolve() / "build"


def build_in_cache(cache: Path, vendor: Path | None, targets: list[str], jobs: int | None = None) -> Path:
    """Builds ``targets`` in the cache's build folder, configuring it for the qemu check alone only if nothing
    configured it yet (a board build's settings are kept). Returns the folder."""
    libstdcxx = libstdcxx_dir(cache)
    sources = resolve_sources(vendor, cache)
    build_dir = build_folder(cache)
    if not (build_dir / "build.ninja").is_file():
        configure(build_dir, sources, libstdcxx, "dan", None)
    build_targets(build_dir, targets, jobs)
    return build_dir


def build_libraries(cache: Path = DEFAULT_CACHE, vendor: Path | None = None, jobs: int | None = None) -> float:
    """``make firmware-toolchain``'s last step: the ``runtime_libraries`` target in the cache's build folder.
    Returns the seconds it took (Ninja rebuilds nothing when they are there)."""
    started = time.perf_counter()
    build_in_cache(cache, vendor, [RUNTIME_LIBRARIES], jobs)
    return time.perf_counter() - started


def build(artifacts: Path, board: str = "dan", vendor: Path | None = None, cache: Path = DEFAULT_CACHE,
          toolchain: Path = DEFAULT_TOOLCHAIN, jobs: int | None = None) -> FirmwareRecord:
    """``make firmware``: builds ``OUT/k210_firmware/vgg_edge.{elf,bin,map}`` and records its sizes.

    Raises:
        ToolkitError: No kmodel, a kmodel the runtime cannot run, no sources or toolchain, a build failure, or
            an image over the K210's RAM; nothing in ``artifacts`` is changed then.
    """
    artifacts, cache = Path(artifacts), Path(cache).resolve()
    started = time.perf_counter()
    kmodel, labels = artifacts / KMODEL_FILE, artifacts / K210_LABELS_HEADER
    if board not in BOARDS:
        raise ToolkitError(f"BOARD={board}: not a board kflash knows; one of {' '.join(BOARDS)}")
    if not kmodel.is_file() or not labels.is_file():
        raise ToolkitError(f"{artifacts}: no {KMODEL_FILE} and {K210_LABELS_HEADER}; run `make kmodel` first")
    check_kmodel(kmodel)
    libstdcxx = libstdcxx_dir(cache)
    sources = resolve_sources(vendor, cache)
    names, images, kmodel_input, kmodel_record = sample_test_inputs(artifacts, 1)
    work = artifacts / K210_WORK_DIR / "firmware"
    expected, _ = simulate_kmodel(kmodel, images, kmodel_input, work / "selftest", toolchain)
    header = cache / "generated" / "vgg_edge_selftest.h"
    write_if_changed(header, selftest_header(kmodel_input.from_nhwc(images)[0], expected[0], names[0]))

    build_dir = build_folder(cache)
    configure(build_dir, sources, libstdcxx, board, BoardInputs(kmodel.resolve(), labels.resolve(), header))
    build_targets(build_dir, [FIRMWARE_NAME], jobs)
    elf = build_dir / f"{FIRMWARE_NAME}.elf"
    sizes = elf_sizes(elf)
    memory = kmodel_record.nncase_memory_bytes
    heap_needed = memory.get("data", 0) + memory.get("output", 0) + NNCASE_HEAP_ALLOWANCE
    if sizes["heap_bytes"] < heap_needed:
        raise ToolkitError(f"the firmware does not fit the K210: it leaves {sizes['heap_bytes']:,} B of heap where "
                           f"nncase's runtime needs about {heap_needed:,} B (its data pool {memory.get('data', 0):,} B, "
                           f"output and {NNCASE_HEAP_ALLOWANCE:,} B of its own): "
                           f"{heap_needed - sizes['heap_bytes']:,} bytes over; build a smaller K210 variant "
                           "(make kmodel KMODEL_ARGS=\"--max-gmacs 1\")")
    record = FirmwareRecord(
        board=board, elf=f"{FIRMWARE_DIR}/{FIRMWARE_NAME}.elf", bin=f"{FIRMWARE_DIR}/{FIRMWARE_NAME}.bin",
        bin_bytes=(build_dir / f"{FIRMWARE_NAME}.bin").stat().st_size,
        bin_sha256=sha256_file(build_dir / f"{FIRMWARE_NAME}.bin"), ram_bytes=K210_RAM_BYTES,
        kmodel_sha256=sha256_file(kmodel), nncase_runtime="1.9.0 (3473131, built from source)",
        sources={source.folder: f"{source.url} @{source.commit}" for source in SOURCES},
        selftest_image=names[0], selftest_expected=[float(v) for v in expected[0]],
        build_s=round(time.perf_counter() - started, 1), **sizes)
    _publish(artifacts, build_dir, record)
    return record


def _publish(artifacts: Path, build_dir: Path, record: FirmwareRecord) -> None:
    """The image into ``OUT/k210_firmware`` (staged, then renamed) and the record into both reports."""
    dest = artifacts / FIRMWARE_DIR
    staging = Path(tempfile.mkdtemp(prefix=".k210_firmware.", dir=artifacts))
    try:
        for suffix in ("elf", "bin", "map"):
            shutil.copy2(build_dir / f"{FIRMWARE_NAME}.{suffix}", staging / f"{FIRMWARE_NAME}.{suffix}")
        (staging / "firmware.json").write_text(json.dumps(asdict(record), indent=1) + "\n", encoding="utf-8")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    report_path = artifacts / K210_REPORT_JSON
    report = json.loads(report_path.read_text(encoding="utf-8"))
    report["firmware"] = asdict(record)
    write_json_atomic(report_path, report)
    metadata, conversion = read_conversion(artifacts)
    if conversion.k210 is not None:
        conversion.k210.firmware = record
        write_json_atomic(artifacts / METADATA_FILE, metadata_dict(metadata, conversion))


def summary_line(record: FirmwareRecord) -> str:
    used = record.text_bytes + record.data_bytes + record.bss_bytes
    return (f"firmware: {record.bin} for board {record.board}: {record.bin_bytes:,} B image; RAM text "
            f"{record.text_bytes:,} + data {record.data_bytes:,} + bss {record.bss_bytes:,} = {used:,} B of "
            f"{record.ram_bytes:,}, heap left {record.heap_bytes:,} B; built in {record.build_s:.0f} s")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m convert.k210.firmware", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--artifacts", type=Path, default=None, help="OUT of make convert + make kmodel")
    parser.add_argument("--board", type=str, choices=BOARDS, default="dan", help="the board (kflash -B name)")
    parser.add_argument("--libraries", action="store_true",
                        help="only the SDK and nncase runtime libraries, which depend on no kmodel, into the cache's "
                             "build folder (make firmware-toolchain)")
    add_build_arguments(parser)
    return parser


def add_build_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags ``make firmware`` and ``make kmodel-riscv-check`` share: sources, build folder, toolchains."""
    parser.add_argument("--vendor", type=Path, default=None,
                        help="folder with kendryte-standalone-sdk/, nncase-1.9.0/, kendryte-standalone-demo/; "
                             "without it, or where a tree is missing, the pinned commits are fetched with git")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                        help="the firmware toolchain folder (scripts/k210_firmware_toolchain.sh) and build")
    parser.add_argument("--toolchain", type=Path, default=DEFAULT_TOOLCHAIN,
                        help="the nncase toolchain (make k210-toolchain), for the simulator's scores")
    parser.add_argument("--jobs", type=int, default=None, help="parallel compile jobs (default: Ninja's)")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.artifacts is None and not args.libraries:
        parser.error("--artifacts OUT is required (or --libraries)")
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    def body() -> int:
        if args.libraries:
            seconds = build_libraries(args.cache, args.vendor, args.jobs)
            print(f"firmware libraries (K210 SDK, nncase 1.9 runtime, k210 module for the KPU and in software): "
                  f"ready in {build_folder(args.cache)} ({seconds:.0f} s)", flush=True)
            return 0
        record = build(args.artifacts, args.board, args.vendor, args.cache, args.toolchain, args.jobs)
        print(summary_line(record), flush=True)
        return 0

    return run_main(body)


if __name__ == "__main__":
    sys.exit(main())
