"""What this CPU offers int8 inference: its name and the instruction-set features int8 kernels speed up with.

int8 is not faster everywhere. TFLite's (XNNPACK's and ruy's) int8 kernels gain most from dot-product
instructions: AVX-512 VNNI or AVX-VNNI on x86, ``asimddp`` (and ``i8mm``) on ARM. Measured in this project
(README, performance): the int8 VGG16 ran 4x faster than float on an x86 CPU with AVX-512 VNNI and no faster
(ratio 0.97) on an AVX2-only one. ARM's NEON int8 kernels are faster than float even without the dot product
(published: XNNPACK on a Pi 4, Cortex-A72, no ``asimddp``, runs MobileNet int8 about 3x faster; ncnn's VGG16
on a Pi 4 547 ms float / 394 ms int8), and more so with it (Pi 5, Cortex-A76).
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

# Per architecture: the int8 dot-product features, in the order they are reported.
INT8_FEATURES = {
    "x86_64": ("avx512_vnni", "avx_vnni", "amx_int8"),
    "aarch64": ("asimddp", "i8mm"),
}
ARM_CPU_PARTS = {"0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd05": "Cortex-A55", "0xd07": "Cortex-A57",
                 "0xd08": "Cortex-A72", "0xd0a": "Cortex-A75", "0xd0b": "Cortex-A76", "0xd0c": "Neoverse-N1",
                 "0xd40": "Neoverse-V1", "0xd49": "Neoverse-N2"}


@dataclass(frozen=True)
class CpuInfo:
    """A CPU as /proc/cpuinfo describes it.

    Attributes:
        name: The model name (x86) or board model and core type (ARM).
        arch: ``platform.machine()``'s name: "x86_64", "aarch64", ...
        flags: Its feature flags (x86 ``flags``, ARM ``Features``).
    """

    name: str
    arch: str
    flags: frozenset[str]

    @property
    def int8_features(self) -> list[str]:
        """The int8 dot-product features it has (empty: none of its architecture's)."""
        return [flag for flag in INT8_FEATURES.get(self.arch, ()) if flag in self.flags]

    @property
    def int8_faster(self) -> bool | None:
        """Whether int8 is expected to beat float here: False on x86 without VNNI, True with it and on ARM
        (NEON int8 kernels), None for an architecture not described here."""
        if self.arch == "x86_64":
            return bool(self.int8_features)
        if self.arch == "aarch64":
            return True
        return None

    def to_dict(self) -> dict:
        return {"name": self.name, "arch": self.arch, "int8_features": self.int8_features,
                "int8_faster_than_float_expected": self.int8_faster, "notice": self.notice()}

    def notice(self) -> str:
        """One line: the CPU, its int8 features, and what that means for int8 against float."""
        wanted = "/".join(INT8_FEATURES.get(self.arch, ())) or "none known"
        has = ", ".join(self.int8_features) or f"no {wanted}"
        head = f"cpu: {self.name} ({self.arch}; int8 features: {has})"
        if self.int8_faster is False:
            return (f"{head}: int8 will not beat float on this CPU (measured here without VNNI: about the same "
                    "latency); its gains are the 4x smaller model and integer-only ops")
        if self.arch == "aarch64" and not self.int8_features:
            return f"{head}: int8 beats float through NEON kernels, less than on a CPU with asimddp"
        if self.int8_faster:
            return f"{head}: int8 should beat float on this CPU"
        return f"{head}: int8 speed against float is unknown for this architecture; measure it (make bench)"


def parse_cpuinfo(text: str, arch: str) -> CpuInfo:
    """``/proc/cpuinfo``'s text (of an x86 or an ARM Linux) -> CpuInfo; ``arch`` as ``platform.machine()``."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip().lower(), value.strip())  # the first processor's value
    flags = frozenset((fields.get("flags") or fields.get("features") or "").split())
    name = fields.get("model name", "")
    if arch == "aarch64" or not name:
        core = ARM_CPU_PARTS.get(fields.get("cpu part", "").lower(), "")
        board = fields.get("model", "")  # a Raspberry Pi's kernel names the board here
        name = ", ".join(part for part in (board, core) if part) or name
    return CpuInfo(name=name or arch or "unknown CPU", arch=arch, flags=flags)


def this_cpu(cpuinfo: Path = Path("/proc/cpuinfo")) -> CpuInfo:
    """This machine's CPU (from ``cpuinfo``; without it, only the name Python knows and no flags)."""
    arch = platform.machine()
    try:
        return parse_cpuinfo(cpuinfo.read_text(errors="replace"), arch)
    except OSError:
        return CpuInfo(name=platform.processor() or arch, arch=arch, flags=frozenset())
