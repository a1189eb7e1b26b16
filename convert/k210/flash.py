"""``make flash``: writes ``OUT/k210_firmware/vgg_edge.bin`` to a K210 board with kflash (UART ISP).

kflash 1.1.6 (PyPI, pinned in the venv) writes the image to the board's SPI flash, or with ``--sram`` loads
it into SRAM and starts it without touching the flash (gone at the next reset: for trying a build).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from convert.k210.firmware import BOARDS, FIRMWARE_DIR, FIRMWARE_NAME
from runtime.cli import run_main
from runtime.errors import ToolkitError

DEFAULT_BAUDRATE = 1500000  # kflash's fast rate; -S/--slow boards need 115200


def flash_command(artifacts: Path, port: str | None, board: str, sram: bool = False,
                  baudrate: int = DEFAULT_BAUDRATE) -> list[str]:
    """The kflash command for ``OUT``'s firmware, after checking the port, the image and its board.

    Raises:
        ToolkitError: No port given or no such device, no firmware, or an image built for another board.
    """
    if not port:
        raise ToolkitError("no serial port: make flash PORT=/dev/ttyUSB0 BOARD=dan (the board's USB serial port; "
                           "`ls /dev/ttyUSB* /dev/ttyACM*` lists them; firmware_notes/k210.md)")
    if not Path(port).exists():
        raise ToolkitError(f"{port}: no such serial port; plug the board in, or pass the one "
                           "`ls /dev/ttyUSB* /dev/ttyACM*` lists")
    image = Path(artifacts) / FIRMWARE_DIR / f"{FIRMWARE_NAME}.bin"
    record = Path(artifacts) / FIRMWARE_DIR / "firmware.json"
    if not image.is_file() or not record.is_file():
        raise ToolkitError(f"{image}: no firmware; run `make firmware BOARD={board}` first")
    built_for = json.loads(record.read_text(encoding="utf-8")).get("board")
    if built_for != board:
        raise ToolkitError(f"{image}: built for BOARD={built_for}, not {board}; rebuild it with "
                           f"`make firmware BOARD={board}` (the camera pins differ between boards)")
    command = [sys.executable, "-m", "kflash", "-p", port, "-b", str(baudrate), "-B", board]
    if sram:
        command.append("-s")
    return command + [str(image)]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m convert.k210.flash", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--artifacts", type=Path, required=True, help="OUT with k210_firmware/ (make firmware)")
    parser.add_argument("--port", type=str, default=None, help="the board's serial port, e.g. /dev/ttyUSB0")
    parser.add_argument("--board", type=str, choices=BOARDS, default="dan", help="kflash's -B board")
    parser.add_argument("--sram", action="store_true", help="load into SRAM and run, do not write the flash")
    parser.add_argument("--baudrate", type=int, default=DEFAULT_BAUDRATE, help="UART rate for the download")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        command = flash_command(args.artifacts, args.port, args.board, args.sram, args.baudrate)
        print("flash: " + " ".join(command[1:]), flush=True)
        return subprocess.run(command, check=False).returncode

    return run_main(body)


if __name__ == "__main__":
    sys.exit(main())
