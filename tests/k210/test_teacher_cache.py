"""convert/k210/teacher_cache.py: make convert's teacher outputs for make kmodel, read back and checked."""

from __future__ import annotations

import numpy as np
import pytest

from convert.k210 import teacher_cache
from convert.schema import TEACHER_TARGETS_FILE

FILES = [f"train/{kind}/{i}.jpg" for kind in ("cat", "dog") for i in range(3)]


def _targets(rng, maps: bool = True) -> dict:
    probs = rng.dirichlet([1, 1], len(FILES)).astype(np.float32)
    targets = {"log_probs": np.log(probs)}
    if maps:
        targets["maps"] = rng.uniform(0, 4, (len(FILES), 2, 2, 5)).astype(np.float16)
    return targets


def test_rows_come_back_by_file_name_in_the_order_asked(tmp_path):
    targets = _targets(np.random.default_rng(0))
    teacher_cache.write(tmp_path, targets, FILES)
    asked = [FILES[4], FILES[0], FILES[2]]
    logits, maps = teacher_cache.read(tmp_path, asked, maps=True)
    np.testing.assert_array_equal(logits, targets["log_probs"][[4, 0, 2]])
    np.testing.assert_array_equal(maps, targets["maps"][[4, 0, 2]])
    logits, maps = teacher_cache.read(tmp_path, asked, maps=False)
    assert maps is None and logits.shape == (3, 2)


@pytest.mark.parametrize("case", ["absent", "missing file", "no maps", "corrupt"])
def test_an_unusable_cache_is_none(tmp_path, case):
    if case != "absent":
        teacher_cache.write(tmp_path, _targets(np.random.default_rng(0), maps=case != "no maps"), FILES)
    if case == "corrupt":
        (tmp_path / TEACHER_TARGETS_FILE).write_bytes(b"PK\x03\x04 not a zip")
    asked = FILES[:2] + (["train/cat/other.jpg"] if case == "missing file" else [])
    assert teacher_cache.read(tmp_path, asked, maps=True) is None


def test_rows_and_files_must_agree():
    with pytest.raises(ValueError, match="5 files for 6 rows"):
        teacher_cache.write(".", _targets(np.random.default_rng(0)), FILES[:5])


def test_the_check_allows_float_noise_and_nothing_more():
    rng = np.random.default_rng(1)
    targets = _targets(rng)
    cached = (targets["log_probs"], targets["maps"])
    noisy = (targets["log_probs"] + rng.normal(0, 1e-5, targets["log_probs"].shape).astype(np.float32),
             (targets["maps"].astype(np.float32) * (1 + 1e-3)).astype(np.float16))
    assert teacher_cache.check(cached, noisy) is None
    other = _targets(np.random.default_rng(2))
    assert "probabilities differ" in teacher_cache.check(cached, (other["log_probs"], targets["maps"]))
    assert "maps differ" in teacher_cache.check(cached, (targets["log_probs"], other["maps"]))
    assert "classes cached" in teacher_cache.check(cached, (np.zeros((6, 3), np.float32), None))
    assert teacher_cache.check((targets["log_probs"], None), (targets["log_probs"], other["maps"])) is None


@pytest.mark.parametrize("kind, maps", [("gap", False), ("block4-conv", True)])
def test_make_converts_targets_are_the_models_outputs_on_the_features(kind, maps):
    """convert.head.teacher_targets: the tail's log-probabilities on the block4 features, and the 1x1-conv maps
    only for a head that has that conv."""
    import keras

    from convert.config import HeadKind
    from convert.head import REDUCE_LAYER, TrainResult, build_head, teacher_targets

    head = build_head(HeadKind(kind), (None, None, 16), 2, 0.3, 0.0, 0)
    features_in = keras.Input((2, 2, 16))
    tail = keras.Model(features_in, head(features_in))
    features = np.random.default_rng(0).uniform(0, 2, (40, 2, 2, 16)).astype(np.float32)
    targets = teacher_targets(TrainResult(head=head, tail=tail, history={}, fine_tuned=False), features)
    np.testing.assert_allclose(np.exp(targets["log_probs"]), tail.predict_on_batch(features), atol=1e-6)
    assert ("maps" in targets) == maps
    if maps:
        expected = keras.Model(head.input, head.get_layer(REDUCE_LAYER).output).predict_on_batch(features)
        np.testing.assert_allclose(targets["maps"].astype(np.float32), expected, rtol=2e-3, atol=1e-3)
