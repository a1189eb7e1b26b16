"""convert/tflite/export.py and ops.py on tiny seeded models: ops and dtypes checked, I/O types, determinism, selective float."""

from __future__ import annotations

import numpy as np
import pytest

from convert.config import IOType
from convert.tflite.export import EXPORTERS, ExportContext, Target, export
from convert.tflite.ops import check_full_integer, inspect_tflite
from runtime.errors import ToolkitError
from runtime.interpreter import Classifier
from runtime.metadata import ModelMetadata
from runtime.preprocess import InputSpec
from tests.tiny_models import SIZE, keras_scores, random_pixels, tiny_classifier

# int8 vs float on a well-behaved tiny model: probabilities move by a few quantization steps of the
# softmax output (1/256 each), never by more than this.
TINY_MAX_PROB_DIFF = 0.05


def _export(tmp_path, model, io_type=IOType.INT8, nodes=(), name="run"):
    out = tmp_path / name
    out.mkdir()
    ctx = ExportContext(model=model, out_dir=out, work_dir=out, calibration=random_pixels(16),
                        io_type=io_type, float_fallback_nodes=tuple(nodes))
    return ctx, export(ctx, [Target.TFLITE_FLOAT, Target.TFLITE_INT8])


def _metadata():
    return ModelMetadata(labels=["a", "b"], input=InputSpec(SIZE, SIZE))


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_model):
    """The tiny model (tests/tflite/conftest.py) exported once, float and int8 (int8 I/O), for the tests
    that only read the files."""
    return _export(tmp_path_factory.mktemp("exported"), tiny_model)[1]


def test_every_target_has_one_exporter():
    assert set(EXPORTERS) == set(Target)


@pytest.mark.parametrize("io_type", list(IOType))
def test_int8_model_is_full_integer_and_close_to_float(tmp_path, tiny_model, io_type):
    model = tiny_model
    _, written = _export(tmp_path, model, io_type)
    report = inspect_tflite(written[Target.TFLITE_INT8])
    check_full_integer(report, written[Target.TFLITE_INT8], io_type.value)
    assert report.float_ops == [] and report.input_dtype == io_type.value
    assert {"CONV_2D", "MAX_POOL_2D", "MEAN", "FULLY_CONNECTED", "SOFTMAX"} <= set(report.op_counts)
    # pixels 0..255 fit the input scale exactly: one step per pixel value
    assert report.input_quantization[0] == pytest.approx(1.0, abs=0.01)
    pixels = random_pixels(8, seed=7)
    int8 = np.stack([Classifier(written[Target.TFLITE_INT8], _metadata()).predict(p) for p in pixels])
    assert np.abs(int8 - keras_scores(model, pixels)).max() < TINY_MAX_PROB_DIFF


def test_float_model_fails_the_integer_check(exported):
    written = exported
    report = inspect_tflite(written[Target.TFLITE_FLOAT])
    assert report.float_ops
    with pytest.raises(ToolkitError, match="still compute in float"):
        check_full_integer(report, written[Target.TFLITE_FLOAT], "int8")


def test_float_tflite_matches_keras(tiny_model, exported):
    model, written = tiny_model, exported
    pixels = random_pixels(4, seed=3)
    scores = np.stack([Classifier(written[Target.TFLITE_FLOAT], _metadata()).predict(p) for p in pixels])
    np.testing.assert_allclose(scores, keras_scores(model, pixels), atol=1e-5)


def test_same_inputs_give_the_same_int8_bytes(tmp_path):
    """Two models built from the same seed, exported apart: the same bytes."""
    _, first = _export(tmp_path, tiny_classifier(), name="a")
    _, second = _export(tmp_path, tiny_classifier(), name="b")
    assert first[Target.TFLITE_INT8].read_bytes() == second[Target.TFLITE_INT8].read_bytes()


def _graph(data: bytes):
    """Every tensor (name, type, shape, quantization, constant data) and op of a TFLite flatbuffer: all of a
    model but its conversion metadata."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    graph = model.subgraphs[0]

    def quantization(tensor):
        q = tensor.quantization
        return None if q is None or q.scale is None else (tuple(q.scale), tuple(q.zeroPoint), q.quantizedDimension)

    tensors = {t.name: (t.type, tuple(t.shape), quantization(t),
                        None if model.buffers[t.buffer].data is None else bytes(model.buffers[t.buffer].data))
               for t in graph.tensors}
    ops = [(model.operatorCodes[op.opcodeIndex].builtinCode, tuple(graph.tensors[i].name for i in op.inputs if i >= 0),
            tuple(graph.tensors[i].name for i in op.outputs)) for op in graph.operators]
    return tensors, ops


@pytest.mark.parametrize("io_type", list(IOType))
def test_one_calibration_gives_what_the_plain_converter_gives(tmp_path, io_type):
    """export_tflite_int8 quantizes a once-calibrated model with TensorFlow internals; the graph must be the
    one TFLiteConverter.convert() writes for the same calibration and I/O type."""
    import tensorflow as tf

    from convert.tflite.export import _saved_model, int8_converter

    ctx, written = _export(tmp_path, tiny_classifier(seed=3), io_type)
    converter = int8_converter(_saved_model(ctx), ctx.calibration)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = {IOType.INT8: tf.int8,
                                                                         IOType.UINT8: tf.uint8}[io_type]
    plain = _graph(converter.convert())
    ours = _graph(written[Target.TFLITE_INT8].read_bytes())
    assert ours[1] == plain[1]
    assert ours[0] == plain[0]


def test_float_model_from_the_calibration_is_the_plain_converters(tmp_path):
    """export_tflite_float writes the calibrated model (one conversion less); it must be the float graph a
    plain TFLiteConverter.convert() writes, giving the same outputs to the bit."""
    import tensorflow as tf

    from convert.tflite.export import _saved_model

    model = tiny_classifier(seed=5)
    ctx, written = _export(tmp_path, model)
    plain_bytes = tf.lite.TFLiteConverter.from_saved_model(str(_saved_model(ctx))).convert()
    ours_bytes = written[Target.TFLITE_FLOAT].read_bytes()
    assert ours_bytes == ctx.calibrated and ours_bytes != plain_bytes  # the calibrated bytes, min/max beside
    ours, plain = _graph(ours_bytes), _graph(plain_bytes)
    assert ours[1] == plain[1] and ours[0] == plain[0]  # ops, tensors, weights; neither has a quantization scale
    plain_path = tmp_path / "plain.tflite"
    plain_path.write_bytes(plain_bytes)
    pixels = random_pixels(6, seed=11)
    scores = [np.stack([Classifier(path, _metadata()).predict(p) for p in pixels])
              for path in (written[Target.TFLITE_FLOAT], plain_path)]
    np.testing.assert_array_equal(scores[0], scores[1])


def test_selective_float_fallback_keeps_named_layer_float(tmp_path, tiny_model, exported):
    model, written = tiny_model, exported
    fc_tensor = next(d["name"] for d in _op_outputs(written[Target.TFLITE_INT8]) if d["op"] == "FULLY_CONNECTED")
    _, fallback = _export(tmp_path, model, nodes=[fc_tensor], name="fallback")
    report = inspect_tflite(fallback[Target.TFLITE_INT8])
    assert any(op.startswith("FULLY_CONNECTED") for op in report.float_ops)
    assert report.input_dtype == "int8"  # still integer pixels in
    with pytest.raises(ToolkitError):
        check_full_integer(report, fallback[Target.TFLITE_INT8], "int8")
    check_full_integer(report, fallback[Target.TFLITE_INT8], "int8", allowed_float_ops=len(report.float_ops))


def _op_outputs(path):
    from runtime.interpreter import load_interpreter

    interpreter = load_interpreter(path)
    tensors = {d["index"]: d for d in interpreter.get_tensor_details()}
    return [{"op": op["op_name"], "name": tensors[op["outputs"][0]]["name"]} for op in interpreter._get_ops_details()
            if op["outputs"] and op["outputs"][0] in tensors]


def test_builtin_kernels_run_the_same_file_without_xnnpack(exported):
    """delegates=False (scripts/kernel_parity.py) runs TFLite's own int8 kernels: no DELEGATE node, and the
    outputs within a few output steps of XNNPACK's (they round differently; equal is not promised)."""
    from convert.tflite.drift import run_classifier

    path, images = exported[Target.TFLITE_INT8], random_pixels(8).astype(np.uint8)
    builtin = Classifier(path, _metadata(), num_threads=1, delegates=False)
    default = Classifier(path, _metadata(), num_threads=1)
    assert "DELEGATE" in {op["op_name"] for op in default.interpreter._get_ops_details()}
    assert "DELEGATE" not in {op["op_name"] for op in builtin.interpreter._get_ops_details()}
    xnnpack = run_classifier(path, _metadata(), images, "xnnpack", 1)
    assert np.abs(run_classifier(path, _metadata(), images, "builtin", 1, delegates=False) - xnnpack).max() <= 4 / 256


def test_classifier_rejects_mismatched_metadata(exported):
    written = exported
    with pytest.raises(ToolkitError, match="does not match the metadata"):
        Classifier(written[Target.TFLITE_INT8], ModelMetadata(labels=["a", "b"], input=InputSpec(32, 32)))
    with pytest.raises(ToolkitError, match="lists 3 labels"):
        Classifier(written[Target.TFLITE_INT8], ModelMetadata(labels=["a", "b", "c"], input=InputSpec(SIZE, SIZE)))


@pytest.mark.parametrize("content", [None, b"", b"TFL3 but not really"])
def test_missing_or_broken_model_file(tmp_path, content):
    path = tmp_path / "model.tflite"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ToolkitError, match="model file not found|not a loadable TFLite model"):
        Classifier(path, _metadata())


def test_truncated_model_file(tmp_path, exported):
    written = exported
    path = tmp_path / "cut.tflite"
    path.write_bytes(written[Target.TFLITE_INT8].read_bytes()[:1000])
    with pytest.raises(ToolkitError, match="not a loadable TFLite model"):
        Classifier(path, _metadata())
