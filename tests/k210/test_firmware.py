"""The K210 firmware (issue 17): the kmodel checks, the self-test header, kflash's command and its refusals,
the toolchain's missing-package line, and, with the bare-metal toolchain (`make firmware-toolchain`, which
`make test` runs first), a tiny kmodel's board firmware built from source, the same nncase 1.9 runtime run
on qemu's RISC-V `virt` machine against nncase's simulator, and an image too big for the K210's RAM.

The build tests share the firmware cache's build folder, where `make firmware-toolchain` compiled the
kmodel-independent libraries once (a session fixture configures it for the tiny kmodel; `make firmware`
configures it back); they are in this one file so that pytest-xdist (`--dist loadfile`) keeps them on one
worker. They are marked `firmware` (`make test-firmware` runs only them).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from convert.k210 import firmware, flash
from convert.k210.compile import KmodelInput, compile_kmodel, simulate_kmodel
from convert.k210.riscv_check import compare_outputs, run_on_qemu
from runtime.errors import ToolkitError
from tests import ROOT

VENDOR = ROOT.parent / "shared" / "vendor" / "k210"  # ../shared/vendor/k210 (firmware_notes/k210.md)


def _kmodel_bytes(modules: list[str], version: int = 5) -> bytes:
    """A kmodel V5 header with the given module types (each module a bare 40-byte header)."""
    header = b"LDMK" + np.array([version, 32, 0, 8, len(modules), 0, 0], "<u4").tobytes()
    body = b"".join(kind.encode().ljust(16, b"\0") + np.array([1, 40, 40, 0, 0, 0], "<u4").tobytes()
                    for kind in modules)
    return header + body


def test_kmodel_module_types_are_read_and_unknown_ones_refused(tmp_path):
    good, bad, old = tmp_path / "good.kmodel", tmp_path / "bad.kmodel", tmp_path / "old.kmodel"
    good.write_bytes(_kmodel_bytes(["stackvm", "k210"]))
    bad.write_bytes(_kmodel_bytes(["stackvm", "k510"]))
    old.write_bytes(_kmodel_bytes(["k210"], version=4))
    assert firmware.kmodel_modules(good) == ["stackvm", "k210"]
    firmware.check_kmodel(good)
    with pytest.raises(ToolkitError, match=r"bad.kmodel: module type\(s\) k510 .* loop forever"):
        firmware.check_kmodel(bad)
    with pytest.raises(ToolkitError, match="version 4, not 5"):
        firmware.kmodel_modules(old)
    (tmp_path / "x.kmodel").write_bytes(b"TFL3" + bytes(40))
    with pytest.raises(ToolkitError, match="not a kmodel"):
        firmware.kmodel_modules(tmp_path / "x.kmodel")


def test_selftest_header_holds_the_input_bytes_and_the_simulator_scores():
    text = firmware.selftest_header(np.arange(6, dtype=np.uint8).reshape(1, 3, 1, 2), np.array([0.25, 0.75]),
                                    "test/cat/cat.1.jpg")
    assert 'VGG_EDGE_SELFTEST_FILE[] = "test/cat/cat.1.jpg"' in text
    assert "VGG_EDGE_SELFTEST_INPUT[6] = {0,1,2,3,4,5}" in text
    assert "VGG_EDGE_SELFTEST_EXPECTED[2] = {0.25f, 0.75f}" in text


def test_the_lcd_font_has_every_printable_ascii_glyph_in_its_cell():
    import re

    text = firmware.font_header()
    width, height = firmware.FONT_CELL
    assert f"#define VGG_EDGE_FONT_W {width}" in text and f"VGG_EDGE_FONT[95][{height}]" in text
    glyphs = [[int(v, 16) for v in row.split(", ")] for row in re.findall(r"\{(0x[0-9a-f, x]+)\}", text)]
    assert len(glyphs) == 95 and all(len(rows) == height for rows in glyphs)
    assert all(v < 1 << width for rows in glyphs for v in rows)  # nothing outside the cell's columns
    ink = [sum(bin(v).count("1") for v in rows) for rows in glyphs]
    assert ink[0] == 0 and all(ink[1:])  # a blank space, and every other character draws something
    assert glyphs[ord("l") - 32] != glyphs[ord("1") - 32] and glyphs[ord("O") - 32] != glyphs[ord("0") - 32]


def test_flash_refuses_without_a_port_a_device_or_an_image(tmp_path):
    with pytest.raises(ToolkitError, match=r"no serial port: make flash PORT=/dev/ttyUSB0"):
        flash.flash_command(tmp_path, None, "dan")
    with pytest.raises(ToolkitError, match="ttyNONE: no such serial port"):
        flash.flash_command(tmp_path, str(tmp_path / "ttyNONE"), "dan")
    port = tmp_path / "ttyFAKE"
    port.touch()
    with pytest.raises(ToolkitError, match="no firmware; run `make firmware BOARD=bit`"):
        flash.flash_command(tmp_path, str(port), "bit")
    (tmp_path / firmware.FIRMWARE_DIR).mkdir()
    (tmp_path / firmware.FIRMWARE_DIR / "vgg_edge.bin").write_bytes(b"\0" * 16)
    (tmp_path / firmware.FIRMWARE_DIR / "firmware.json").write_text('{"board": "dan"}')
    with pytest.raises(ToolkitError, match="built for BOARD=dan, not bit"):
        flash.flash_command(tmp_path, str(port), "bit")
    command = flash.flash_command(tmp_path, str(port), "dan", sram=True)
    assert command[1:] == ["-m", "kflash", "-p", str(port), "-b", "1500000", "-B", "dan", "-s",
                           str(tmp_path / firmware.FIRMWARE_DIR / "vgg_edge.bin")]


def test_make_flash_without_a_port_is_one_line_and_exit_2(tmp_path, capsys):
    assert flash.main(["--artifacts", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no serial port")


def test_missing_packages_without_root_apt_is_one_line_saying_what_to_install(tmp_path):
    """The toolchain script on a machine without the packages and without apt-get: one line, exit 1, the
    reason kept for the tests to skip with."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "mkdir", "rm", "id", "cat", "tail", "dirname", "date", "env"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    cache = tmp_path / "cache"
    result = subprocess.run([str(bin_dir / "bash"), str(firmware.TOOLCHAIN_SCRIPT), str(cache)], capture_output=True,
                            text=True, env={"PATH": str(bin_dir)}, check=False)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "apt-get install gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf" in lines[0]
    with pytest.raises(ToolkitError, match="K210 firmware toolchain unavailable: missing Debian packages"):
        firmware.libstdcxx_dir(cache)


def test_a_failed_apt_install_is_one_line_with_apts_last_line(tmp_path):
    """Root and apt-get, but the install fails (here a fake apt-get, as an unreachable mirror would): one line
    with apt's own last line and where its log is, exit 1, after one apt-get update and a second try."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "mkdir", "rm", "cat", "tail", "dirname", "date", "env"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    (bin_dir / "id").write_text("#!/bin/sh\necho 0\n")
    calls = tmp_path / "apt_calls"
    (bin_dir / "apt-get").write_text(f"#!/bin/sh\necho \"$1\" >> {calls}\n"
                                     "echo 'E: Unable to locate package gcc-riscv64-unknown-elf'; exit 100\n")
    for script in ("id", "apt-get"):
        (bin_dir / script).chmod(0o755)
    cache = tmp_path / "cache"
    result = subprocess.run([str(bin_dir / "bash"), str(firmware.TOOLCHAIN_SCRIPT), str(cache)], capture_output=True,
                            text=True, env={"PATH": str(bin_dir)}, check=False)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "failed: E: Unable to locate package gcc-riscv64-unknown-elf (log: " in lines[0], lines
    assert calls.read_text().split() == ["install", "update", "install"]


def test_no_toolchain_says_which_make_target_builds_it(tmp_path):
    with pytest.raises(ToolkitError, match="run `make firmware-toolchain`"):
        firmware.libstdcxx_dir(tmp_path)


def test_the_sources_come_from_the_vendor_folder_or_say_what_is_missing(tmp_path, monkeypatch):
    if not VENDOR.is_dir():
        pytest.skip(f"{VENDOR}: no vendored K210 sources here")
    found = firmware.resolve_sources(VENDOR, tmp_path)
    assert {name: path.parent for name, path in found.items()} == {s.folder: VENDOR.resolve() for s in firmware.SOURCES}
    monkeypatch.setenv("PATH", str(tmp_path))  # no git: the fetch cannot even start
    with pytest.raises(ToolkitError, match=r"kendryte-standalone-sdk: not in .*empty/kendryte-standalone-sdk and git "
                                           r"is not installed to fetch https://github.com/kendryte/kendryte-standalone-sdk @02576ba"):
        firmware.resolve_sources(tmp_path / "empty", tmp_path)


# --- with the bare-metal toolchain -------------------------------------------------------------------------

SIZE = 32
LABELS = ["red", "green", "blue"]


@pytest.fixture(scope="session")
def firmware_cache() -> Path:
    """``make firmware-toolchain``'s folder (``FIRMWARE_CACHE``, as ``make test`` builds it): the packages and the
    libstdc++ built once; the tests skip with the reason its build recorded when it is not there."""
    cache = Path(os.environ.get("FIRMWARE_CACHE", firmware.DEFAULT_CACHE))
    try:
        firmware.libstdcxx_dir(cache)
    except ToolkitError as error:
        pytest.skip(str(error))
    if not VENDOR.is_dir():
        pytest.skip(f"{VENDOR}: no vendored K210 sources (a build online fetches them; not here)")
    return cache


@pytest.fixture(scope="session")
def tiny_kmodel(toolchain, tmp_path_factory):
    """The colour conv net of test_compile.py as a kmodel, with 6 frames and the simulator's outputs for them."""
    from tests.k210.test_compile import _frames, colour_conv_net

    out = tmp_path_factory.mktemp("firmware_kmodel")
    frames, labels = _frames(6)
    kmodel_input = KmodelInput(SIZE, SIZE)
    kmodel, _ = compile_kmodel(colour_conv_net(out), frames, kmodel_input, out / "tiny.kmodel", out / "work", toolchain)
    simulated, _ = simulate_kmodel(kmodel, frames, kmodel_input, out / "sim", toolchain)
    return {"kmodel": kmodel, "frames": frames, "labels": labels, "inputs": kmodel_input.from_nhwc(frames),
            "simulated": simulated, "folder": out}


@pytest.fixture(scope="session")
def firmware_build(firmware_cache, tiny_kmodel):
    """The board firmware of the tiny kmodel and the qemu check program, in the cache's build folder, where
    ``make firmware-toolchain`` (which ``make test`` runs first) compiled the SDK and nncase runtime from
    source; Ninja builds whatever of them is missing here (all of it, a minute or two, on a fresh cache)."""
    from convert.k210.report import labels_header

    folder = tiny_kmodel["folder"]
    (folder / "k210_labels.h").write_text(labels_header(LABELS, SIZE, SIZE))
    (folder / "vgg_edge_selftest.h").write_text(firmware.selftest_header(
        tiny_kmodel["inputs"][0], tiny_kmodel["simulated"][0], "frame 0"))
    inputs = firmware.BoardInputs(tiny_kmodel["kmodel"], folder / "k210_labels.h", folder / "vgg_edge_selftest.h")
    build = firmware.build_folder(firmware_cache)
    sources = firmware.resolve_sources(VENDOR, firmware_cache)
    firmware.configure(build, sources, firmware.libstdcxx_dir(firmware_cache), "dan", inputs)
    firmware.build_targets(build, [firmware.FIRMWARE_NAME, "nncase_riscv_check"])
    return {"build": build, "sources": sources, "inputs": inputs, "cache": firmware_cache}


@pytest.mark.slow(seconds=10)  # with the libraries make firmware-toolchain built (a fresh cache: ~2 min)
@pytest.mark.firmware
def test_a_tiny_kmodels_firmware_builds_and_fits(firmware_build, tiny_kmodel):
    build = firmware_build["build"]
    elf, image, link_map = (build / f"vgg_edge.{suffix}" for suffix in ("elf", "bin", "map"))
    assert elf.is_file() and image.is_file() and link_map.is_file()
    sizes = firmware.elf_sizes(elf)
    kmodel_bytes = tiny_kmodel["kmodel"].stat().st_size
    used = sizes["text_bytes"] + sizes["data_bytes"] + sizes["bss_bytes"]
    print(f"tiny firmware: {sizes}, image {image.stat().st_size:,} B")
    assert sizes["text_bytes"] > kmodel_bytes  # the kmodel is linked into the image's read-only data
    assert used + sizes["heap_bytes"] <= firmware.K210_RAM_BYTES and sizes["heap_bytes"] > 1024 * 1024
    symbols = subprocess.run(["riscv64-unknown-elf-nm", str(elf)], capture_output=True, text=True, check=True).stdout
    address = {line.split()[2]: int(line.split()[0], 16) for line in symbols.splitlines() if len(line.split()) == 3}
    assert address["vgg_edge_kmodel"] % 128 == 0  # aligned as the KPU's DMA reads it
    assert address["vgg_edge_kmodel_end"] - address["vgg_edge_kmodel"] == kmodel_bytes
    # nncase 1.9's runtime went in, not the SDK's 1.0 beta: its interpreter and the k210 module's activator.
    assert "create_runtime_module" in symbols and "nncase_v1_load_kmodel" in symbols
    content = image.read_bytes()
    assert b"self-test only" not in content and b'"selftest"' in content  # a Maix board: camera loop, self-test
    assert "lcd_draw_frame" in symbols and "lcd_text" in symbols  # and its LCD


@pytest.mark.slow(seconds=10)
@pytest.mark.firmware
@pytest.mark.parametrize("board,camera,lcd", [("kd233", False, True), ("trainer", False, False)])
def test_each_board_kind_builds_with_the_camera_and_lcd_it_has(firmware_build, board, camera, lcd):
    """The KD233 (an LCD, no camera pin table here) and the trainer board (neither) build as well; the shared
    build folder is reconfigured for each, then restored to the Maix Dock's."""
    with reconfigured(firmware_build, board, firmware_build["inputs"]) as build:
        firmware.build_targets(build, [firmware.FIRMWARE_NAME])
        elf = build / "vgg_edge.elf"
        symbols = subprocess.run(["riscv64-unknown-elf-nm", str(elf)], capture_output=True, text=True,
                                 check=True).stdout
        content = (build / "vgg_edge.bin").read_bytes()
        assert (b"self-test only" not in content) == camera and ("lcd_draw_frame" in symbols) == lcd
        assert board.encode() in content  # the board's name in its first JSON line


@contextlib.contextmanager
def reconfigured(firmware_build, board: str, inputs):
    """The shared build folder configured for ``board`` and ``inputs``; afterwards configured and built again
    as the ``firmware_build`` fixture left it (the Maix Dock, the tiny kmodel)."""
    build = firmware_build["build"]
    libstdcxx = firmware.libstdcxx_dir(firmware_build["cache"])
    try:
        firmware.configure(build, firmware_build["sources"], libstdcxx, board, inputs)
        yield build
    finally:
        firmware.configure(build, firmware_build["sources"], libstdcxx, "dan", firmware_build["inputs"])
        firmware.build_targets(build, [firmware.FIRMWARE_NAME])


@pytest.mark.slow(seconds=1)
@pytest.mark.firmware
def test_the_firmware_runtime_on_riscv_matches_the_simulator_bit_for_bit(firmware_build, tiny_kmodel, tmp_path):
    program = firmware_build["build"] / "nncase_riscv_check.elf"
    riscv = run_on_qemu(program, tiny_kmodel["kmodel"], tiny_kmodel["inputs"], tmp_path,
                        tiny_kmodel["simulated"].shape[1:])
    result = compare_outputs(riscv, tiny_kmodel["simulated"], [f"frame {i}" for i in range(len(riscv))])
    print(result)
    assert result["images"] == 6 and result["bit_identical"], result["differing"]
    assert (riscv.argmax(1) == tiny_kmodel["labels"]).all()


def test_differences_are_counted_and_shown():
    simulator = np.array([[0.25, 0.75], [0.5, 0.5]], np.float32)
    riscv = simulator.copy()
    riscv[1, 0] = np.nextafter(np.float32(0.5), np.float32(1))
    result = compare_outputs(riscv, simulator, ["a", "b"])
    assert result["bit_identical_images"] == 1 and not result["bit_identical"] and result["top1_agreement"] == 1.0
    assert result["differing"][0]["image"] == "b" and 0 < result["max_abs_diff"] < 1e-6


@pytest.mark.slow(seconds=3)
@pytest.mark.firmware
def test_an_image_over_the_k210_ram_fails_with_the_bytes_over(firmware_build, tmp_path):
    """A 7 MiB kmodel (a valid header, padded) cannot fit 6 MiB of SRAM: the linker says by how much. The
    shared build folder is reconfigured for it (only the blob and the link are redone), then restored."""
    big = tmp_path / "big.kmodel"
    big.write_bytes(_kmodel_bytes(["stackvm", "k210"]).ljust(7 * 1024 * 1024, b"\0"))
    inputs = firmware_build["inputs"]
    with reconfigured(firmware_build, "dan", firmware.BoardInputs(big, inputs.labels_header, inputs.selftest_header)) \
            as build:
        with pytest.raises(ToolkitError, match=r"region `ram' \(6 MiB of SRAM\) overflowed by [\d,]+ bytes; build a "):
            firmware.build_targets(build, [firmware.FIRMWARE_NAME])
