"""The base of every mode Enum: a ``str`` whose ``str()`` is its value.

argparse shows ``choices`` with ``str()``; a plain ``(str, Enum)`` member prints as ``Arch.VGG16``, so
``--help`` said ``{Arch.VGG16,Arch.VGG19}`` where a user types ``vgg16``. (``enum.StrEnum`` does the same
but needs Python 3.11; the runtime also runs on the 3.9 of 32-bit Raspberry Pi OS Bullseye.)
"""

from __future__ import annotations

import enum


class Choice(str, enum.Enum):
    """A mode: compares equal to its value and prints as it."""

    def __str__(self) -> str:
        return str(self.value)
