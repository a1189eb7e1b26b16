"""make pi-check: the comparison, the board's CPU files, the staging, the errors; and the cheap form of the
check itself (a tiny model, the PyPI route, the minimal root make test builds) on the arm64 root."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from convert.pi import __main__ as cli
from convert.pi.check import (
    BOARD_CPUINFO,
    MIN_TOP1_AGREEMENT,
    QEMU_CPUS,
    ROOT_CHECK_DIR,
    Board,
    Route,
    available_routes,
    board_cpuinfo,
    compare,
    compare_outputs,
    device_command,
    parse_records,
    pick_images,
    stage,
    summary_line,
    within_budget,
    write_board_cpu,
)
from runtime.cpu import parse_cpuinfo
from tests.conftest import make_tree

STEP = 1 / 256  # a softmax output's int8 step


def _record(frame, label, scores, file=None):
    record = {"frame": frame, "label": label, "score": max(scores.values()),
              "top": sorted(([name, value] for name, value in scores.items()), key=lambda item: -item[1])}
    if file:
        record["file"] = file
    return record


def test_compare_counts_agreement_and_score_steps_by_frame():
    host = [_record(0, "cat", {"cat": 0.75, "dog": 0.25}), _record(1, "dog", {"cat": 0.49, "dog": 0.51}),
            _record(2, "cat", {"cat": 0.9, "dog": 0.1})]
    device = [_record(0, "cat", {"cat": 0.75 + STEP, "dog": 0.25 - STEP}),
              _record(1, "cat", {"cat": 0.51, "dog": 0.49}), _record(2, "cat", {"cat": 0.9, "dog": 0.1})]
    result = compare(host, device, STEP)
    assert result["compared"] == 3 and result["missing"] == 0
    assert result["top1_agreement"] == round(2 / 3, 4)
    assert result["disagreements"] == [{"key": 1, "host": "dog", "device": "cat"}]
    assert result["max_abs_score_diff"] == pytest.approx(0.02)
    assert result["max_score_diff_steps"] == pytest.approx(0.02 / STEP, abs=0.01)
    assert not within_budget(result)  # 2 of 3 is under the agreement floor


def test_compare_matches_images_by_file_name_and_counts_the_missing():
    host = [_record(0, "cat", {"cat": 0.8, "dog": 0.2}, file="/work/x/inputs/images/cat_1.jpg"),
            _record(1, "dog", {"cat": 0.3, "dog": 0.7}, file="/work/x/inputs/images/dog_1.jpg")]
    # the root's folder is another path, and its order differs
    device = [_record(0, "dog", {"cat": 0.3, "dog": 0.7}, file=f"{ROOT_CHECK_DIR}/inputs/images/dog_1.jpg")]
    result = compare(host, device, STEP)
    assert result["compared"] == 1 and result["missing"] == 1 and result["top1_agreement"] == 1.0
    assert not within_budget(result)  # a frame missing on one side fails the check
    assert within_budget(compare(host[1:], device, STEP))


def test_the_agreement_floor_allows_two_flips_in_a_hundred_frames():
    host = [_record(i, "cat", {"cat": 0.6, "dog": 0.4}) for i in range(100)]
    device = [dict(record) for record in host]
    for frame in (7, 8):
        device[frame] = _record(frame, "dog", {"cat": 0.49, "dog": 0.51})  # near ties flipped
    assert MIN_TOP1_AGREEMENT == 0.98
    assert within_budget(compare(host, device, STEP))
    device[9] = _record(9, "dog", {"cat": 0.49, "dog": 0.51})
    assert not within_budget(compare(host, device, STEP))


def test_model_alone_is_exact_or_within_one_step():
    host = np.array([[0.25, 0.75], [0.5, 0.5]], np.float32)
    same = compare_outputs(host, host.copy(), STEP)
    assert same["bit_identical"] == 2 and same["max_diff_steps"] == 0 and same["passed"]
    one = compare_outputs(host, host + np.array([[STEP, -STEP], [0, 0]], np.float32), STEP)
    assert one["bit_identical"] == 1 and one["max_diff_steps"] == pytest.approx(1.0) and one["passed"]
    two = compare_outputs(host, host + np.array([[2 * STEP, -2 * STEP], [0, 0]], np.float32), STEP)
    assert not two["passed"] and two["top1_agreement"] == 1.0


def test_parse_records_keeps_only_json_lines():
    text = 'model x (int8 input)\n{"frame": 0, "label": "cat", "score": 0.9}\n\n{"frame": 1, "label": "dog", "score": 0.6}\n'
    assert [record["frame"] for record in parse_records(text)] == [0, 1]


@pytest.mark.parametrize("board", list(Board))
def test_board_cpuinfo_reads_back_as_that_pi(board):
    info = parse_cpuinfo(board_cpuinfo(board, 4), "aarch64")
    core = {"0xd03": "Cortex-A53", "0xd08": "Cortex-A72", "0xd0b": "Cortex-A76"}[BOARD_CPUINFO[board][2]]
    assert info.name == f"{BOARD_CPUINFO[board][4]}, {core}"
    assert QEMU_CPUS[board] == core.lower()
    # the dot product only where the core has it (qemu's -cpu answers the same through getauxval)
    assert ("asimddp" in info.int8_features) == (board is Board.PI5)
    assert board_cpuinfo(board, 4).count("processor\t:") == 4


def test_write_board_cpu_fills_the_roots_proc_and_sys(tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "sys").mkdir()
    write_board_cpu(tmp_path, Board.PI4, 2)
    assert "0xd08" in (tmp_path / "proc" / "cpuinfo").read_text()
    for name in ("possible", "present", "online"):
        assert (tmp_path / "sys" / "devices" / "system" / "cpu" / name).read_text() == "0-1\n"
    write_board_cpu(tmp_path, Board.PI3, 1)
    assert (tmp_path / "sys" / "devices" / "system" / "cpu" / "online").read_text() == "0\n"


def test_pick_images_takes_classes_in_turn_and_splits_video_from_folder(tmp_path):
    make_tree(tmp_path, {"cat": 5, "dog": 3})
    video, folder = pick_images(tmp_path, 4, 3)
    assert [path.name for path in video] == ["cat.0.jpg", "dog.0.jpg", "cat.1.jpg", "dog.1.jpg"]
    assert [path.name for path in folder] == ["cat.2.jpg", "dog.2.jpg", "cat.3.jpg"]
    assert not set(video) & set(folder)


def test_stage_copies_the_runtime_the_model_and_the_inputs_only(tmp_path, colour_models):
    make_tree(tmp_path / "photos", {"cat": 3, "dog": 3})
    video, folder = pick_images(tmp_path / "photos", 3, 2)
    work = tmp_path / "work"
    (work / "stale").mkdir(parents=True)
    sources = stage(work, colour_models["int8"], None, 3, video, folder)
    assert {path.name for path in work.iterdir()} == {"runtime", "model", "inputs"}
    assert (work / "runtime" / "__main__.py").is_file() and not list(work.rglob("__pycache__"))
    assert {path.name for path in (work / "model").iterdir()} == {"model_int8.tflite", "metadata.json"}
    assert [(source.kind, source.frames) for source in sources] == [("video", 3), ("images", None)]
    assert sorted(path.name for path in (work / "inputs" / "images").iterdir()) == ["cat_cat.2.jpg", "dog_dog.1.jpg"]


def test_device_command_runs_the_routes_venv_on_the_boards_cpu(tmp_path):
    command = device_command(tmp_path, Route.APT, Board.PI5, ["-m", "runtime"])
    assert command[:2] == ["chroot", str(tmp_path)]
    assert "QEMU_CPU=cortex-a76" in command and f"PYTHONPATH={ROOT_CHECK_DIR}" in command
    assert command[-3:] == ["/opt/vgg-edge/venv-pi/bin/python", "-m", "runtime"]
    assert "-i" in command  # the host's environment (its pip and SSL paths) stays out


def test_a_root_that_was_not_built_is_one_line_with_the_reason(tmp_path, colour_models, capsys):
    root = tmp_path / "bookworm-arm64-pypi"
    (tmp_path / "bookworm-arm64-pypi.unavailable").write_text("debootstrap failed: no network\n")
    code = cli.main(["--artifacts", str(colour_models["int8"]), "--root", str(root), "--images", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "debootstrap failed: no network" in err and "make pi-check" in err
    assert not list(colour_models["int8"].parent.glob("pi_check.json"))


def test_available_routes_are_the_venvs_the_root_has(tmp_path):
    (tmp_path / "opt" / "vgg-edge" / "venv-pypi" / "bin").mkdir(parents=True)
    (tmp_path / "opt" / "vgg-edge" / "venv-pypi" / "bin" / "python").touch()
    assert available_routes(tmp_path) == [Route.PYPI]


def _minimal_root() -> Path:
    """The minimal root make test's set-up builds (scripts/pi_root.sh PI_ROOT pypi), or a skip saying why not."""
    if "PI_ROOT" not in os.environ:
        pytest.skip("PI_ROOT is not set: make test builds the minimal arm64 root and sets it (scripts/pi_root.sh)")
    root = Path(os.environ["PI_ROOT"]) / "bookworm-arm64-pypi"
    reason = Path(f"{root}.unavailable")
    if reason.is_file():
        pytest.skip(f"no arm64 root: {reason.read_text().strip()}")
    if not (root / ".vgg-edge-base").is_file() or not available_routes(root):
        pytest.skip(f"no arm64 root at {root}: run scripts/pi_root.sh {root.parent} pypi")
    if os.geteuid() != 0:
        pytest.skip("the arm64 root runs through chroot, which needs root")
    return root


@pytest.mark.slow(seconds=15)
def test_the_tiny_model_on_the_arm64_root_matches_this_machine(tmp_path, colour_models):
    root = _minimal_root()
    photos = make_tree(tmp_path / "photos", {"cat": 4, "dog": 4, "fox": 4})
    artifacts = colour_models["int8"]
    out = tmp_path / "pi_check.json"
    code = cli.main(["--artifacts", str(artifacts), "--root", str(root), "--images", str(photos), "--frames", "6",
                     "--image-count", "4", "--board", "pi4", "--out", str(out)])
    report = json.loads(out.read_text())
    assert code == (0 if report["passed"] else 3)
    (route,) = report["routes"]
    assert route["route"] == "pypi" and route["machine"] == "aarch64"
    assert route["interpreter"] == "ai_edge_litert"
    # the model alone: the same tensors give the same outputs on the emulated Cortex-A72 as here
    assert route["model_alone"]["inputs"] == 6 and route["model_alone"]["passed"], route["model_alone"]
    video, images = route["sources"]
    assert (video["kind"], video["compared"], video["missing"]) == ("video", 6, 0)
    assert (images["kind"], images["compared"], images["missing"]) == ("images", 4, 0)
    for source in (video, images):
        assert source["top1_agreement"] >= MIN_TOP1_AGREEMENT, source
        assert source["max_score_diff_steps"] is not None
    assert report["device"]["qemu_cpu"] == "cortex-a72" and "Raspberry Pi 4" in report["device"]["cpuinfo"]
    assert report["passed"]
    assert "pi-check (pi4" in summary_line(report | {"path": str(out)})
