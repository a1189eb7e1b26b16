"""Will a VGG-family network fit the K210? Answered per layer, in bytes, without nncase.

The K210 has 2 MiB of KPU RAM that holds feature maps and 6 MiB of general SRAM that holds the kmodel's
weights and the CPU's buffers (nncase FAQ, release/1.0: docs/FAQ_EN.md, "K210 and KPU"). A KPU convolution
reads its input feature map from KPU RAM and writes its output (after an optional fused 2x2 pooling) there,
so both must fit at once. Feature maps are laid out in 64-byte rows: a row holds up to 64 pixels of one
channel, or 2 channels of up to 32 pixels, or 4 channels of up to 16 pixels (nncase's
``get_kpu_row_layout`` / ``get_kpu_bytes``, src/runtime/k210 in release/1.0). The model below reproduces
those formulas; its verdicts agree with nncase 1.9's "Allocator has ran out of memory" on the VGG16 cases
measured in issue 4 (tests/k210/test_plan.py).

KPU rules (same FAQ, "What kinds of ops can be fully accelerated by KPU?"): 1x1 or 3x3 convolutions with
same, symmetric padding, stride 1 or 2; max or average pooling 2x2 or 4x4 fused into the convolution; input
feature maps at most 320x240 (WxH); outputs at least 4x4; 1 to 1024 channels.

Deployment budgets for kmodel + working memory, from Sipeed's "MAIX performance and limit for AI models"
(https://bbs.sipeed.com/t/topic/691): about 5.5 MB free for a model with the standalone SDK, about 5 MB
in MaixDuino, about 3.5 MB in MaixPy.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field

from runtime.argtypes import (
    OneLineParser,
    fraction_above_zero,
    int_in_range,
    non_negative_int,
    positive_float,
    positive_int,
)
from runtime.choices import Choice

KPU_RAM_BYTES = 2 * 1024 * 1024
KPU_ROW_BYTES = 64
KPU_MAX_INPUT_W, KPU_MAX_INPUT_H = 320, 240
KPU_MIN_OUTPUT_SIDE = 4
KPU_MAX_CHANNELS = 1024
KPU_PARAMS_PER_CHANNEL = 8  # bytes: one 64-bit batch-norm/requantize segment per output channel
MB = 1_000_000

# The spare room a planned variant must leave in its deployment budget: stacks, the camera frame and the
# application need memory too, and the figures above are approximate.
ROOM_TO_SPARE = 0.25


class Deployment(Choice):
    """Where the kmodel runs; each has its own memory budget for kmodel + working memory."""

    STANDALONE_SDK = "standalone-sdk"  # Kendryte standalone SDK (C) with the nncase runtime
    MAIXDUINO = "maixduino"
    MAIXPY = "maixpy"


DEPLOYMENT_BUDGET_BYTES = {
    Deployment.STANDALONE_SDK: int(5.5 * MB),
    Deployment.MAIXDUINO: int(5.0 * MB),
    Deployment.MAIXPY: int(3.5 * MB),
}

# VGG convolution blocks: (convs, channels) at width 1.0; each block ends in a 2x2 max pool.
VGG_BLOCKS = {
    "vgg16": [(2, 64), (2, 128), (3, 256), (3, 512), (3, 512)],
    "vgg19": [(2, 64), (2, 128), (4, 256), (4, 512), (4, 512)],
}


def kpu_bytes(width: int, height: int, channels: int) -> int:
    """Bytes a (height, width, channels) uint8 feature map takes in KPU RAM (nncase's get_kpu_bytes)."""
    if width <= 16:
        groups, row_len = 4, 1
    elif width <= 32:
        groups, row_len = 2, 1
    else:
        groups, row_len = 1, math.ceil(width / 64)
    per_line = min(channels, groups)
    blocks = math.ceil(channels / per_line)
    return row_len * height * blocks * KPU_ROW_BYTES


def scaled_channels(channels: int, width: float) -> int:
    """Channels of a layer narrowed by ``width``: rounded, at least 8 (so that no layer vanishes)."""
    return max(8, int(round(channels * width)))


@dataclass
class LayerPlan:
    """One layer of the plan.

    Attributes:
        name: Keras-style layer name (block1_conv1, ...).
        kind: "conv3x3", "conv1x1", "gap" or "dense".
        in_shape: (height, width, channels) read.
        out_shape: (height, width, channels) written, after a fused pool.
        pool: A 2x2 max pool fused into this convolution.
        kpu_bytes: KPU RAM held while it runs (input + output feature maps); 0 for CPU layers.
        weight_bytes: uint8 weights plus per-channel parameters.
        problems: Rules it breaks; any makes the model not fit.
        notes: Things that do not stop it but cost speed (a layer that runs on the CPU).
    """

    name: str
    kind: str
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    pool: bool = False
    kpu_bytes: int = 0
    weight_bytes: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Plan:
    """A VGG variant laid out on the K210."""

    arch: str
    width: float
    input_size: int
    classes: int
    deployment: Deployment
    layers: list[LayerPlan]
    blocks: int = 5
    reduce_channels: int = 0
    normalization: str = "caffe"  # the teacher's in-graph normalization, which the student takes over

    @property
    def name(self) -> str:
        """What the variant is, e.g. ``vgg16 x0.25 at 224`` or ``vgg16 blocks 1-4 + 1x1 conv 128 x0.25 at 224``."""
        shape = "" if self.blocks == len(VGG_BLOCKS[self.arch]) else f" blocks 1-{self.blocks}"
        shape += f" + 1x1 conv {self.reduce_channels}" if self.reduce_channels else ""
        return f"{self.arch}{shape} x{self.width:g} at {self.input_size}"

    @property
    def feature_side(self) -> int:
        """Side of the last conv's output map (what the head pools; 14 for blocks 1-4 at 224)."""
        return [layer for layer in self.layers if layer.kind.startswith("conv")][-1].out_shape[0]

    @property
    def params(self) -> int:
        return sum(layer.weight_bytes - KPU_PARAMS_PER_CHANNEL * layer.out_shape[2] for layer in self.layers
                   if layer.weight_bytes)

    @property
    def weight_bytes(self) -> int:
        return sum(layer.weight_bytes for layer in self.layers)

    @property
    def peak_kpu_bytes(self) -> int:
        return max(layer.kpu_bytes for layer in self.layers)

    @property
    def peak_kpu_layer(self) -> LayerPlan:
        return max(self.layers, key=lambda layer: layer.kpu_bytes)

    @property
    def main_memory_bytes(self) -> int:
        """Weights plus the CPU-side buffers: the uint8 input frame and the largest feature map downloaded."""
        input_bytes = self.input_size * self.input_size * 3
        largest_cpu_map = max((math.prod(layer.in_shape) * 4 for layer in self.layers if layer.kind in ("gap", "dense")),
                              default=0)
        return self.weight_bytes + input_bytes + largest_cpu_map

    @property
    def macs(self) -> int:
        total = 0
        for layer in self.layers:
            if layer.kind.startswith("conv"):
                k = 3 if layer.kind == "conv3x3" else 1
                h, w, cin = layer.in_shape
                total += h * w * cin * layer.out_shape[2] * k * k
            elif layer.kind == "dense":
                total += layer.in_shape[2] * layer.out_shape[2]
        return total

    @property
    def budget_bytes(self) -> int:
        return DEPLOYMENT_BUDGET_BYTES[self.deployment]

    @property
    def problems(self) -> list[str]:
        found = [f"{layer.name}: {problem}" for layer in self.layers for problem in layer.problems]
        usable = int(self.budget_bytes * (1 - ROOM_TO_SPARE))
        if self.main_memory_bytes > usable:
            found.append(
                f"weights + buffers {self.main_memory_bytes / MB:.2f} MB exceed {usable / MB:.2f} MB "
                f"({100 * (1 - ROOM_TO_SPARE):.0f}% of the {self.deployment.value} budget of {self.budget_bytes / MB:.1f} MB) "
                f"by {(self.main_memory_bytes - usable) / MB:.2f} MB"
            )
        return found

    @property
    def fits_kpu(self) -> bool:
        """Every layer's feature maps fit KPU RAM and follow the KPU rules (what nncase's allocator checks)."""
        return not any(layer.problems for layer in self.layers)

    @property
    def fits(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        verdict = "fits" if self.fits else "does NOT fit"
        peak = self.peak_kpu_layer
        return (f"{self.name}: {verdict} the {self.deployment.value} budget; "
                f"{self.params / 1e6:.2f}M params, weights {self.weight_bytes / MB:.2f} MB, main memory "
                f"{self.main_memory_bytes / MB:.2f} MB of {self.budget_bytes / MB:.1f} MB, KPU peak "
                f"{peak.kpu_bytes / 2**20:.2f} MiB of 2 MiB at {peak.name}, {self.macs / 1e9:.2f} GMAC")

    def table(self) -> str:
        lines = [f"{'layer':<16} {'in (HxWxC)':>14} {'out (HxWxC)':>14} {'KPU KiB':>9} {'weights KiB':>12}  notes"]
        for layer in self.layers:
            shape_in = "x".join(map(str, layer.in_shape))
            shape_out = "x".join(map(str, layer.out_shape))
            remarks = "; ".join(layer.problems + layer.notes)
            lines.append(f"{layer.name:<16} {shape_in:>14} {shape_out:>14} {layer.kpu_bytes / 1024:>9.0f} "
                         f"{layer.weight_bytes / 1024:>12.1f}  {remarks}")
        return "\n".join(lines)


def _conv(name: str, kernel: int, in_shape: tuple[int, int, int], channels: int, pool: bool) -> LayerPlan:
    height, width, cin = in_shape
    out_h, out_w = (height // 2, width // 2) if pool else (height, width)
    layer = LayerPlan(name=name, kind=f"conv{kernel}x{kernel}", in_shape=in_shape, out_shape=(out_h, out_w, channels),
                      pool=pool)
    layer.weight_bytes = kernel * kernel * cin * channels + KPU_PARAMS_PER_CHANNEL * channels
    layer.kpu_bytes = kpu_bytes(width, height, cin) + kpu_bytes(out_w, out_h, channels)
    if layer.kpu_bytes > KPU_RAM_BYTES:
        layer.problems.append(
            f"input {width}x{height}x{cin} + output {out_w}x{out_h}x{channels} need {layer.kpu_bytes:,} bytes of KPU RAM, "
            f"{layer.kpu_bytes - KPU_RAM_BYTES:,} over its {KPU_RAM_BYTES:,}"
        )
    if width > KPU_MAX_INPUT_W or height > KPU_MAX_INPUT_H:
        layer.problems.append(f"input {width}x{height} is over the KPU's {KPU_MAX_INPUT_W}x{KPU_MAX_INPUT_H}")
    if not 1 <= cin <= KPU_MAX_CHANNELS or not 1 <= channels <= KPU_MAX_CHANNELS:
        layer.problems.append(f"channels {cin}->{channels} outside the KPU's 1..{KPU_MAX_CHANNELS}")
    if out_w < KPU_MIN_OUTPUT_SIDE or out_h < KPU_MIN_OUTPUT_SIDE:
        layer.notes.append(f"output {out_w}x{out_h} is under 4x4: not on the KPU, runs on the CPU")
    return layer


def plan_vgg(arch: str = "vgg16", width: float = 1.0, input_size: int = 224, classes: int = 2,
             deployment: Deployment = Deployment.STANDALONE_SDK, blocks: int | None = None,
             reduce_channels: int = 0) -> Plan:
    """Lays out a VGG of the given width and input size: conv blocks (pools fused), then GAP and dense.

    ``blocks`` keeps the first N conv blocks (None = all), as a classifier cut at block4_pool does;
    ``reduce_channels`` adds a 1x1 ReLU convolution before the pooling (the block4-conv head's shape;
    not narrowed). The head is global average pooling (CPU) and one dense layer (nncase runs it as a padded
    1x1 KPU conv).
    """
    if arch not in VGG_BLOCKS:
        raise ValueError(f"unknown arch {arch!r}; one of {', '.join(VGG_BLOCKS)}")
    blocks = len(VGG_BLOCKS[arch]) if blocks is None else blocks
    if not 1 <= blocks <= len(VGG_BLOCKS[arch]):
        raise ValueError(f"{arch} has blocks 1-{len(VGG_BLOCKS[arch])}, not {blocks}")
    layers = []
    shape = (input_size, input_size, 3)
    for block, (convs, channels) in enumerate(VGG_BLOCKS[arch][:blocks], start=1):
        out_channels = scaled_channels(channels, width)
        for index in range(1, convs + 1):
            layer = _conv(f"block{block}_conv{index}", 3, shape, out_channels, pool=index == convs)
            layers.append(layer)
            shape = layer.out_shape
    if reduce_channels:
        layers.append(_conv("reduce", 1, shape, reduce_channels, pool=False))
        shape = layers[-1].out_shape
    layers.append(LayerPlan(name="gap", kind="gap", in_shape=shape, out_shape=(1, 1, shape[2]),
                            notes=["CPU"]))
    dense = LayerPlan(name="predictions", kind="dense", in_shape=(1, 1, shape[2]), out_shape=(1, 1, classes))
    dense.weight_bytes = shape[2] * classes + KPU_PARAMS_PER_CHANNEL * classes
    layers.append(dense)
    return Plan(arch=arch, width=width, input_size=input_size, classes=classes, deployment=deployment, layers=layers,
                blocks=blocks, reduce_channels=reduce_channels)


WIDTHS = (1.0, 0.75, 0.5, 0.375, 0.25, 0.125)
INPUT_SIZES = (224, 192, 160, 128, 96)


def largest_fitting(arch: str = "vgg16", classes: int = 2, deployment: Deployment = Deployment.STANDALONE_SDK,
                    max_gmacs: float | None = None, blocks: int | None = None, reduce_channels: int = 0,
                    sizes: tuple[int, ...] | None = None) -> Plan | None:
    """The variant with the most compute among those that fit (and, if given, cost at most ``max_gmacs``),
    over ``sizes`` (default: the planner's input sizes)."""
    candidates = [plan_vgg(arch, width, size, classes, deployment, blocks, reduce_channels)
                  for width in WIDTHS for size in (sizes or INPUT_SIZES)]
    fitting = [plan for plan in candidates if plan.fits and (max_gmacs is None or plan.macs <= max_gmacs * 1e9)]
    return max(fitting, key=lambda plan: (plan.macs, plan.input_size), default=None)


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m convert.k210.plan", description=__doc__.splitlines()[0],
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--arch", type=str, default="vgg16", choices=list(VGG_BLOCKS))
    parser.add_argument("--width", type=fraction_above_zero, default=None,
                        help="width multiplier in (0, 1]; None = search")
    parser.add_argument("--input-size", type=positive_int, default=None, help="square input size; None = search")
    parser.add_argument("--classes", type=int_in_range(2, 1000, "a classifier has two classes at least"), default=2)
    parser.add_argument("--deployment", type=str, default=Deployment.STANDALONE_SDK.value,
                        choices=[d.value for d in Deployment])
    parser.add_argument("--max-gmacs", type=positive_float, default=None, help="search only variants under this compute")
    parser.add_argument("--blocks", type=int_in_range(1, 5, "VGG has five conv blocks"), default=None,
                        help="conv blocks kept (4 = cut at block4_pool); None = all")
    parser.add_argument("--reduce-channels", type=non_negative_int, default=0,
                        help="1x1 conv before the pooling (0 = none)")
    args = parser.parse_args(argv)
    deployment = Deployment(args.deployment)
    if args.width is None or args.input_size is None:
        plan = largest_fitting(args.arch, args.classes, deployment, args.max_gmacs, args.blocks, args.reduce_channels)
        if plan is None:
            print(f"error: no {args.arch} variant fits the {deployment.value} budget", file=sys.stderr)
            return 2
    else:
        plan = plan_vgg(args.arch, args.width, args.input_size, args.classes, deployment, args.blocks,
                        args.reduce_channels)
    print(plan.table())
    print(plan.summary())
    for problem in plan.problems:
        print(f"  - {problem}")
    return 0 if plan.fits else 2


if __name__ == "__main__":
    sys.exit(main())
