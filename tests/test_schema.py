"""metadata.json's typed sections (convert/schema.py). A real conversion's metadata is checked against the
key tree of the converter before the restructuring in tests/test_vgg16_slow.py (its two end-to-end runs)."""

from __future__ import annotations

import json

import pytest

from convert.schema import (
    METADATA_FILE,
    ArtifactRecord,
    CalibrationRecord,
    Conversion,
    K210Record,
    Provenance,
    Results,
    read_conversion,
)
from runtime.errors import ToolkitError


def _conversion() -> Conversion:
    return Conversion(
        models={"model_int8.tflite": {"input_dtype": "int8"}},
        artifacts={"model_int8.tflite": ArtifactRecord(10, "ab" * 32)},
        provenance=Provenance(weights="hed", head="gap", epochs=3, calibration=CalibrationRecord(count=4, seed=1)),
        results=Results(n=4, accuracy_float=0.5, accuracy_int8=0.5, top1_agreement=1.0, mean_abs_prob_diff=0.0,
                        max_abs_prob_diff=0.0, verdict="PASS"),
        k210=K210Record(file="model_k210.kmodel", bytes=100, sha256="cd" * 32, version=5,
                        nncase_memory_bytes={"data": 10}, compile_s=1.5, calibration_images=4,
                        calibrate_method="no_clip", toolchain="venv", input={"layout": "NCHW"},
                        output={"activation": "softmax"}, plan="x0.25 at 224", results={"n": 4}),
    )


def test_a_conversion_reads_back_as_written():
    conversion = _conversion()
    data = json.loads(json.dumps(conversion.to_dict()))
    assert Conversion.from_dict(data) == conversion
    assert data["k210"]["sha256"] == "cd" * 32 and data["k210"]["plan"] == "x0.25 at 224"  # one flat section
    assert "fine_tune" not in data["provenance"]  # fields that do not apply are left out, not written as null
    assert data["provenance"]["calibration"] == {"manifest": "calibration_manifest.json", "count": 4, "seed": 1}


def test_keys_a_newer_converter_adds_are_ignored():
    data = _conversion().to_dict()
    data["provenance"]["something_new"] = 1
    data["future_section"] = {}
    assert Conversion.from_dict(data).provenance.weights == "hed"


@pytest.mark.parametrize("change, message", [
    (lambda d: d["results"].pop("verdict"), "results lacks verdict"),
    (lambda d: d.__setitem__("provenance", []), "provenance must be an object, found list"),
    (lambda d: d["artifacts"]["model_int8.tflite"].pop("sha256"), "artifacts.model_int8.tflite lacks sha256"),
    (lambda d: d["k210"].pop("sha256"), "k210 lacks sha256"),
])
def test_a_malformed_section_is_one_line_naming_the_file(tmp_path, change, message):
    from runtime.metadata import ModelMetadata
    from runtime.preprocess import InputSpec

    data = ModelMetadata(labels=["a", "b"], input=InputSpec(8, 8), extra=_conversion().to_dict()).to_dict()
    change(data)
    (tmp_path / METADATA_FILE).write_text(json.dumps(data))
    with pytest.raises(ToolkitError, match=message) as error:
        read_conversion(tmp_path)
    assert str(tmp_path / METADATA_FILE) in str(error.value) and "\n" not in str(error.value)
