"""metadata.json's typed sections (convert/schema.py) and one real conversion's artifacts, run twice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from convert.schema import (
    METADATA_FILE,
    ArtifactRecord,
    CalibrationRecord,
    Conversion,
    Provenance,
    Results,
    read_conversion,
)
from runtime.errors import ToolkitError

GOLDEN_KEYS = Path(__file__).with_name("data") / "metadata_keys.json"


def _conversion() -> Conversion:
    return Conversion(
        models={"model_int8.tflite": {"input_dtype": "int8"}},
        artifacts={"model_int8.tflite": ArtifactRecord(10, "ab" * 32)},
        provenance=Provenance(weights="hed", head="gap", epochs=3, calibration=CalibrationRecord(count=4, seed=1)),
        results=Results(n=4, accuracy_float=0.5, accuracy_int8=0.5, top1_agreement=1.0, mean_abs_prob_diff=0.0,
                        max_abs_prob_diff=0.0, verdict="PASS"),
    )


def test_a_conversion_reads_back_as_written():
    conversion = _conversion()
    data = json.loads(json.dumps(conversion.to_dict()))
    assert Conversion.from_dict(data) == conversion
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


def _key_tree(value):
    """The keys of a JSON value, nested; list items by their first element's keys."""
    if isinstance(value, dict):
        return {key: _key_tree(item) for key, item in value.items()}
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return [_key_tree(value[0])]
    return None


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """One tiny conversion (32 px, hed weights, a synthetic tree) run twice with the same inputs."""
    from convert.__main__ import main
    from tests.conftest import make_tree

    root = tmp_path_factory.mktemp("schema")
    data = make_tree(root / "data", {"cat": 12, "dog": 12}, "train")
    make_tree(data, {"cat": 4, "dog": 4}, "test", start_seed=500)
    argv = ["--data", str(data), "--input-size", "32", "--calib", "6", "--epochs", "2", "--float-tflite-eval", "2",
            "--debug-images", "1", "--min-agreement", "0", "--weights", "hed"]
    outs = [root / "a", root / "b"]
    for out in outs:
        assert main(argv + ["--out", str(out)]) == 0
    return outs


def test_the_same_inputs_give_the_same_artifacts(two_runs):
    from scripts.compare_artifacts import compare

    assert compare(*two_runs) == []


def test_metadata_has_the_keys_it_had_before_the_restructuring(two_runs):
    """The key tree of metadata.json, recorded from the converter before convert/ was split into stages and
    targets (commit 5e831eb): a writer that drops, renames or adds a key fails here."""
    metadata = json.loads((two_runs[0] / METADATA_FILE).read_text())
    metadata["provenance"].pop("versions")  # the installed packages, not the converter's
    assert _key_tree(metadata) == json.loads(GOLDEN_KEYS.read_text())
    assert read_conversion(two_runs[0])[1].results.verdict == "PASS"
