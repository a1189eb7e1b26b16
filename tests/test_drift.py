"""convert/drift.py (make drift IMAGES=...): float against int8 on a folder of the user's own images."""

from __future__ import annotations

import json
import shutil

import pytest
from PIL import Image

from convert.data import UNDECODABLE
from convert.drift import main
from tests.runtime.helpers import BLUE_RGB, GREEN_RGB, RED_RGB, patch_frame_rgb

COLOURS = {"red": RED_RGB, "green": GREEN_RGB, "blue": BLUE_RGB}


@pytest.fixture
def artifacts(tmp_path, colour_models):
    """An artifacts folder of the colour model (float and int8 TFLite, metadata.json), copied to write into."""
    out = tmp_path / "artifacts"
    shutil.copytree(colour_models["int8"].parent, out)
    return out


def _photos(folder, per_colour=3, subfolders=True):
    for name, rgb in COLOURS.items():
        for i in range(per_colour):
            target = folder / name if subfolders else folder
            target.mkdir(parents=True, exist_ok=True)
            Image.fromarray(patch_frame_rgb(rgb, seed=i)).save(target / f"{name}_{i}.jpg")
    return folder


def test_a_labelled_folder_gives_accuracies_and_confusion(artifacts, tmp_path, capsys):
    photos = _photos(tmp_path / "my photos")
    (photos / "red" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    assert main(["--artifacts", str(artifacts), "--images", str(photos)]) == 0
    assert "drift on 9 images (labelled by its subfolders (blue, green, red))" in capsys.readouterr().out
    report = json.loads((artifacts / "drift_images_my_photos.json").read_text())
    assert report["labelled"] and report["n"] == 9
    assert report["accuracy_reference"] == 1.0 and report["accuracy_candidate"] == 1.0
    assert report["top1_agreement"] == 1.0 and report["max_abs_prob_diff"] < 0.1
    assert report["confusion"]["int8"] == [[3, 0, 0], [0, 3, 0], [0, 0, 3]]  # the model's order: red, green, blue
    assert report["skipped"] == {UNDECODABLE: 1}  # skipped and counted, not fatal
    assert "| accuracy int8 | 100.00% |" in (artifacts / "drift_images_my_photos.md").read_text()


def test_an_unlabelled_folder_gives_agreement_and_what_each_model_said(artifacts, tmp_path, capsys):
    photos = _photos(tmp_path / "day1", subfolders=False)
    _photos(photos / "more" / "deeper", per_colour=1)  # subfolders that are not labels: read as more photos
    assert main(["--artifacts", str(artifacts), "--images", str(photos)]) == 0
    capsys.readouterr()
    report = json.loads((artifacts / "drift_images_day1.json").read_text())
    assert not report["labelled"] and report["n"] == 12 and "accuracy_reference" not in report
    assert report["predicted"]["float"] == report["predicted"]["int8"] == {"red": 4, "green": 4, "blue": 4}
    assert len(report["worst"]) == 12 and report["read_as"].startswith("unlabelled: its subfolders (more)")


def test_one_class_folder_is_labelled_by_its_name(artifacts, tmp_path, capsys):
    photos = _photos(tmp_path / "set", subfolders=True)
    assert main(["--artifacts", str(artifacts), "--images", str(photos / "green")]) == 0
    assert "labelled by its name (green)" in capsys.readouterr().out
    assert json.loads((artifacts / "drift_images_green.json").read_text())["accuracy_candidate"] == 1.0


@pytest.mark.parametrize("setup, message", [
    (lambda artifacts, photos: shutil.rmtree(photos), "image folder not found"),
    (lambda artifacts, photos: (artifacts / "model_int8.tflite").unlink(), "model_int8.tflite: not found"),
    (lambda artifacts, photos: [p.unlink() for p in photos.rglob("*.jpg")], "no images"),
])
def test_bad_input_is_one_line_and_writes_nothing(artifacts, tmp_path, capsys, setup, message):
    photos = _photos(tmp_path / "photos")
    setup(artifacts, photos)
    before = sorted(p.name for p in artifacts.iterdir())
    assert main(["--artifacts", str(artifacts), "--images", str(photos)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert sorted(p.name for p in artifacts.iterdir()) == before
