"""argparse pieces shared by the command lines (``python -m runtime``, ``python -m convert``, ...).

Every numeric flag is checked where it is parsed, so a bad value is one ``error:`` line and exit code 2
before any work starts.
"""

from __future__ import annotations

import argparse
import math
from typing import Callable


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (``PROG: error: ...; see --help``), exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def positive_int(text: str) -> int:
    """An integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is not an integer >= 0")
    return value


def int_in_range(low: int, high: int, what: str = "") -> Callable[[str], int]:
    """An integer in ``[low, high]``; ``what`` says why the range is what it is."""
    def parse(text: str) -> int:
        value = int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is not in {low}..{high}{f' ({what})' if what else ''}")
        return value

    parse.__name__ = f"integer {low}..{high}"
    return parse


def positive_count_or_all(text: str) -> int | None:
    """A count >= 1, or ``all`` (None)."""
    return None if text == "all" else positive_int(text)


def count_or_all(text: str) -> int | None:
    """A count >= 0, or ``all`` (None)."""
    return None if text == "all" else non_negative_int(text)


def positive_float(text: str) -> float:
    """A finite number > 0."""
    value = float(text)
    if not (value > 0 and math.isfinite(value)):  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"{text} is not a finite number > 0")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0 (a loss weight: 0 turns the loss off)."""
    value = float(text)
    if not (value >= 0 and math.isfinite(value)):  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"{text} is not a finite number >= 0")
    return value


def fraction(text: str) -> float:
    """A number in [0, 1]."""
    value = float(text)
    if not 0.0 <= value <= 1.0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{text} is not in [0, 1]")
    return value


def fraction_above_zero(text: str) -> float:
    """A number in (0, 1]: a multiplier that keeps something."""
    value = float(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not in (0, 1]")
    return value


def open_fraction(text: str) -> float:
    """A number in (0, 1): a share that must leave something on both sides."""
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not strictly between 0 and 1")
    return value


def size_wh(text: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT`` -> (width, height), both positive."""
    try:
        width, height = (positive_int(part) for part in text.lower().split("x"))
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 640x480, got {text!r}") from None
    return width, height
