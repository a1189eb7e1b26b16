"""nncase 1.9 end to end on a tiny model: compile to a kmodel, run it in the K210 simulator, compare.

Needs the toolchain (`make k210-toolchain`, which `make test` runs first). Without it these tests skip
with the reason the build recorded (no CPython 3.8-3.10 and no root or package archive for debootstrap).
"""

from __future__ import annotations

import numpy as np
import pytest

from convert.k210.compile import (
    DEFAULT_TOOLCHAIN,
    KmodelInput,
    compile_kmodel,
    simulate_kmodel,
    toolchain_python,
    toolchain_route,
)
from runtime.errors import ToolkitError
from runtime.interpreter import TFLiteModel
from tests import ROOT
from tests.runtime.helpers import BLUE_RGB, GREEN_RGB, RED_RGB, patch_frame_rgb

SIZE = 32  # pixels
LABELS = ["red", "green", "blue"]
# The simulator's uint8 kmodel against the float TFLite on the colour conv net: a few uint8 steps of the
# pooled means. Measured well under this; a wrong input layout or channel order moves it by ~0.5.
MAX_PROB_DIFF = 0.1


def test_paths_computed_from_the_module_file_point_into_the_repository():
    """convert/k210/compile.py finds make k210-toolchain's folder and the worker from its own depth."""
    from convert.k210.compile import WORKER

    root = ROOT
    assert DEFAULT_TOOLCHAIN == root / ".k210" and (root / "Makefile").is_file()
    assert WORKER.is_file() and WORKER.parent == root / "convert" / "k210"


def colour_conv_net(out):
    """A conv net that says which channel dominates: KPU-friendly (3x3 same convs, 2x2 max pool), as float
    TFLite in ``out``."""
    import keras

    from convert.tflite.export import ExportContext, Target, export

    keras.utils.set_random_seed(0)
    pixels = keras.Input((SIZE, SIZE, 3), name="image_rgb")
    conv = keras.layers.Conv2D(3, 3, padding="same", activation="relu", name="block1_conv1")
    pool = keras.layers.MaxPooling2D(2, name="block1_pool")
    gap = keras.layers.GlobalAveragePooling2D(name="gap")
    dense = keras.layers.Dense(3, activation="softmax", name="predictions")
    model = keras.Model(pixels, dense(gap(pool(conv(pixels)))))
    kernel = np.zeros((3, 3, 3, 3), np.float32)
    kernel[1, 1] = np.eye(3) / 255.0  # the centre tap passes each channel through, scaled to 0..1
    conv.set_weights([kernel, np.zeros(3, np.float32)])
    dense.set_weights([np.eye(3, dtype=np.float32) * 10.0, np.zeros(3, np.float32)])
    ctx = ExportContext(model=model, out_dir=out, work_dir=out)
    return export(ctx, [Target.TFLITE_FLOAT])[Target.TFLITE_FLOAT]


@pytest.fixture(scope="session")
def colour_conv_tflite(tmp_path_factory):
    return colour_conv_net(tmp_path_factory.mktemp("k210_tiny"))


def _frames(count=24):
    colours = [RED_RGB, GREEN_RGB, BLUE_RGB]
    frames = np.stack([patch_frame_rgb(colours[i % 3], size=(SIZE, SIZE), seed=i) for i in range(count)])
    return frames, np.array([i % 3 for i in range(count)])


def test_missing_toolchain_says_how_to_build_it(tmp_path):
    with pytest.raises(ToolkitError, match="run `make k210-toolchain`"):
        toolchain_python(tmp_path / "none")
    (tmp_path / "unavailable").write_text("no CPython 3.8-3.10 and debootstrap needs root\n")
    with pytest.raises(ToolkitError, match="unavailable: no CPython 3.8-3.10"):
        toolchain_python(tmp_path)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_tiny_model_compiles_and_simulates_close_to_float(toolchain, colour_conv_tflite, tmp_path, layout):
    frames, labels = _frames()
    kmodel_input = KmodelInput(SIZE, SIZE, layout=layout)
    kmodel, details = compile_kmodel(colour_conv_tflite, frames[:12], kmodel_input, tmp_path / "tiny.kmodel",
                                     tmp_path / "work", toolchain)
    assert kmodel.is_file() and kmodel.stat().st_size == details["kmodel_bytes"] > 0
    header = kmodel.read_bytes()[:8]
    assert header[:4] == b"LDMK" and int.from_bytes(header[4:], "little") == 5  # "KMDL" little-endian, kmodel V5
    assert details["memory"]["MODEL"] == details["kmodel_bytes"] and details["memory"]["TOTAL"] > 0
    assert details["memory"]["input"] == SIZE * SIZE * 3  # uint8 camera pixels in

    simulated, _ = simulate_kmodel(kmodel, frames, kmodel_input, tmp_path / "sim", toolchain)
    reference = TFLiteModel(colour_conv_tflite)
    expected = np.stack([reference.predict(frame.astype(np.float32)) for frame in frames])
    assert simulated.shape == expected.shape == (len(frames), 3)
    assert (simulated.argmax(1) == labels).all(), simulated.argmax(1)
    assert np.abs(simulated - expected).max() <= MAX_PROB_DIFF
    print(f"toolchain: {toolchain_route(toolchain)}; max prob diff {np.abs(simulated - expected).max():.4f}")


def test_nncase_failure_is_one_line_with_the_log_kept(toolchain, tmp_path):
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"TFL3" + b"\0" * 64)
    frames, _ = _frames(4)
    with pytest.raises(ToolkitError, match=r"nncase compile failed \(.*\); log kept at .*nncase\.log") as caught:
        compile_kmodel(broken, frames, KmodelInput(SIZE, SIZE), tmp_path / "x.kmodel", tmp_path / "work", toolchain)
    assert "\n" not in str(caught.value)
    assert (tmp_path / "work" / "nncase.log").is_file()
    assert not (tmp_path / "x.kmodel").exists()
