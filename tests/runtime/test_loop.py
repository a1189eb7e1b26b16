"""The camera loop and its command line: parity with the converter, per-frame labels, model I/O types,
bad input, signals, and a soak run with a resident-memory bound."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from calibration.select import CalibrationItem, file_sha256, load_calibration_images
from convert.data import Split, decode_split
from runtime.interpreter import Classifier, TFLiteModel
from runtime.loop import LoopOptions
from runtime.metadata import METADATA_FILE, locate_model
from runtime.preprocess import Normalization, input_lookup_table, lookup_input, normalize, quantize
from runtime.sources import open_source
from tests import ROOT
from tests.conftest import write_image
from tests.runtime.helpers import (
    BLUE_RGB,
    GREEN_RGB,
    RED_RGB,
    classify_source,
    patch_frame_rgb,
    read_video_bgr,
    run_cli,
    write_video_rgb,
)

# int8 I/O against the float model on the colour model: the output is quantized in steps of 1/256, and
# the input and the pooled means in steps of about one grey level; a few steps at most.
IO_MAX_PROB_DIFF = 0.03
# Resident memory may grow by at most this much between frame 20 and frame 2000+ of a soak run. It
# allows for allocator noise (a few MB seen); a leak of one 96x72 frame per frame would pass 40 MB.
SOAK_RSS_GROWTH_MB = 10.0
SOAK_FRAMES = 2000


def _odd_images(folder: Path) -> list[Path]:
    """Images that exercise every decode branch: modes, EXIF rotation, odd sizes and aspect ratios."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    files = [write_image(folder / "plain.jpg", (200, 60, 40), size=(97, 61))]
    Image.fromarray(rng.integers(0, 256, (50, 70), np.uint8), "L").save(folder / "gray.png")
    Image.fromarray(rng.integers(0, 256, (40, 33, 4), np.uint8), "RGBA").save(folder / "alpha.png")
    Image.fromarray(rng.integers(0, 65535, (30, 45), np.uint16)).save(folder / "sixteen.png")
    rotated = Image.fromarray(rng.integers(0, 256, (30, 60, 3), np.uint8))
    exif = rotated.getexif()
    exif[0x0112] = 6  # "rotate 90 CW" orientation tag
    rotated.save(folder / "exif.jpg", exif=exif)
    Image.fromarray(rng.integers(0, 256, (300, 20, 3), np.uint8)).save(folder / "tall.bmp")
    return files + [folder / n for n in ("gray.png", "alpha.png", "sixteen.png", "exif.jpg", "tall.bmp")]


@pytest.mark.parametrize("io", ["int8", "uint8", "float"])
def test_runtime_and_converter_build_identical_input_tensors(colour_models, tmp_path, shared_data_optional, io):
    """The loop's tensors (folder source -> capture thread -> Classifier) equal the converter's
    calibration tensors and its evaluation tensors, byte for byte."""
    files = _odd_images(tmp_path / "imgs")
    if shared_data_optional is not None:
        for class_dir in sorted((shared_data_optional / "test").iterdir())[:2]:
            for path in sorted(class_dir.iterdir())[:4]:
                target = tmp_path / "imgs" / f"{class_dir.name}_{path.name}"
                target.write_bytes(path.read_bytes())
                files.append(target)
    model_path = colour_models[io]
    classifier = Classifier(*locate_model(model_path))
    spec = classifier.metadata.input

    fed = {}  # the tensor each frame carried into invoke(), from the loop itself
    for prepare in (False, True):
        results, _ = classify_source(model_path, open_source(str(tmp_path / "imgs")), prepare=prepare)
        fed.update({(prepare, Path(r.frame.name).name): r.frame.tensor for r in results})
    assert len(fed) == 2 * len(files)

    items = [CalibrationItem(file=p.relative_to(tmp_path).as_posix(), label="x", sha256=file_sha256(p)) for p in files]
    calibration = load_calibration_images(items, tmp_path, spec)
    split = Split(paths=list(files), labels=np.zeros(len(files), int))
    _, resized = decode_split(split, spec, "parity", workers=1)
    model = TFLiteModel(model_path)
    for path, calib_input, resized_rgb in zip(files, calibration, resized):
        expected = model.input_tensor(calib_input)
        evaluation = model.input_tensor(normalize(resized_rgb, spec.normalization))
        np.testing.assert_array_equal(expected, evaluation)
        for prepare in (False, True):
            runtime_tensor = fed[(prepare, path.name)]
            assert runtime_tensor.dtype == expected.dtype and runtime_tensor.shape == expected.shape
            np.testing.assert_array_equal(runtime_tensor, expected, err_msg=path.name)


@pytest.mark.parametrize("normalization", list(Normalization))
@pytest.mark.parametrize("dtype, scale, zero_point", [(np.int8, 1.0, -128), (np.uint8, 0.9, 3), (np.int8, 0.47, -7)])
def test_lookup_table_equals_normalize_then_quantize(normalization, dtype, scale, zero_point):
    pixels = np.random.default_rng(0).integers(0, 256, (37, 23, 3)).astype(np.uint8)
    table = input_lookup_table(normalization, scale, zero_point, np.dtype(dtype))
    expected = quantize(normalize(pixels, normalization), scale, zero_point, np.dtype(dtype))
    np.testing.assert_array_equal(lookup_input(pixels, table, normalization), expected)


def _colour_video(path: Path, count: int = 24) -> Path:
    colours = [RED_RGB, GREEN_RGB, BLUE_RGB, (200, 120, 40), (40, 90, 160)]
    return write_video_rgb(path, [patch_frame_rgb(colours[i % len(colours)], seed=i) for i in range(count)])


def test_video_run_labels_equal_direct_classifier_calls(colour_models, tmp_path):
    video = _colour_video(tmp_path / "colours.avi")
    done = run_cli("--model", colour_models["int8"], "--source", video, "--headless")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["frame"] for line in lines] == list(range(24))
    for line in lines:
        assert {"frame", "label", "score", "latency_ms", "fps", "time"} <= set(line)

    classifier = Classifier(*locate_model(colour_models["int8"]))
    direct = []
    for frame_bgr in read_video_bgr(video):
        scores = classifier.classify_rgb(cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB))
        direct.append((classifier.metadata.labels[int(scores.argmax())], round(float(scores.max()), 4)))
    assert [(line["label"], line["score"]) for line in lines] == direct
    assert {label for label, _ in direct} == {"red", "green", "blue"}  # the frames really differ
    from runtime.cpu import this_cpu

    assert this_cpu().notice() in done.stderr.splitlines()  # the CPU's int8 features, said at start


def test_frames_below_the_confidence_floor_are_reported_unknown(colour_models, tmp_path):
    """--min-score P: a frame whose best score is under P gets --unknown-label in its JSON line (the class it
    would have had beside it, as best_label), the rest keep theirs; the summary counts and shares them."""
    video = _colour_video(tmp_path / "colours.avi")
    plain = run_cli("--model", colour_models["int8"], "--source", video, "--headless")
    assert plain.returncode == 0, plain.stderr
    before = [json.loads(line) for line in plain.stdout.splitlines()]
    floor = float(np.median([line["score"] for line in before]))  # about half the frames fall under it
    done = run_cli("--model", colour_models["int8"], "--source", video, "--headless", "--min-score", f"{floor}",
                   "--unknown-label", "none", "--summary", tmp_path / "summary.json")
    assert done.returncode == 0, done.stderr
    after = [json.loads(line) for line in done.stdout.splitlines()]
    below = [line["score"] < floor for line in before]
    assert 0 < sum(below) < len(below)
    for was, now, under in zip(before, after, below):
        assert now["score"] == was["score"]
        assert now["label"] == ("none" if under else was["label"])
        assert now.get("below_min_score", False) == under and now.get("best_label", was["label"]) == was["label"]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["min_score"] == floor and summary["unknown_label"] == "none"
    assert summary["frames_below_min_score"] == sum(below)
    assert summary["share_below_min_score"] == round(sum(below) / len(below), 4)
    assert f"{sum(below)} frames" in done.stderr and f"below --min-score {floor:g} (none)" in done.stderr


def test_the_overlay_and_status_show_the_unknown_label(colour_models):
    """The window/JPEG overlay and the MJPEG server's /status read the same result: below the floor they show
    the unknown label (the overlay's pixels differ from the class's)."""
    from runtime.loop import ScoreSmoother, annotate, classify_frame
    from runtime.sources import Frame

    classifier = Classifier(*locate_model(colour_models["int8"]))
    image = patch_frame_rgb(RED_RGB)
    results = [classify_frame(classifier, Frame(index=0, image_rgb=image, timestamp_s=0.0), ScoreSmoother(1), 1,
                              0.0, floor, "unknown") for floor in (None, 1.0)]
    assert results[0].label == "red" and not results[0].below_floor
    assert results[1].label == "unknown" and results[1].below_floor and results[1].score == results[0].score
    assert results[1].to_record()["label"] == "unknown" and results[1].to_record()["best_label"] == "red"
    assert not np.array_equal(annotate(image, results[0]), annotate(image, results[1]))


def test_int8_uint8_and_float_models_agree(colour_models):
    frames = [patch_frame_rgb(colour, seed=i) for i, colour in enumerate([RED_RGB, GREEN_RGB, BLUE_RGB] * 2)]
    scores = {}
    for io, path in colour_models.items():
        classifier = Classifier(*locate_model(path))
        assert classifier.input_dtype == {"int8": np.int8, "uint8": np.uint8, "float": np.float32}[io]
        assert np.dtype(classifier.output_detail["dtype"]) == classifier.input_dtype
        scores[io] = np.stack([classifier.classify_rgb(frame) for frame in frames])
        assert [classifier.metadata.labels[i] for i in scores[io].argmax(1)] == ["red", "green", "blue"] * 2
    for io in ("int8", "uint8"):
        assert np.abs(scores[io] - scores["float"]).max() <= IO_MAX_PROB_DIFF


def test_smoothing_averages_the_last_frames(colour_models, tmp_path):
    frames = [patch_frame_rgb(RED_RGB)] * 3 + [patch_frame_rgb(BLUE_RGB)] * 3
    video = write_video_rgb(tmp_path / "switch.avi", frames)
    raw, _ = classify_source(colour_models["float"], open_source(str(video)))
    smooth, _ = classify_source(colour_models["float"], open_source(str(video)), LoopOptions(smoothing=3))
    assert [r.label for r in raw] == ["red"] * 3 + ["blue"] * 3
    assert [r.label for r in smooth][:4] == ["red"] * 4  # one blue frame does not outvote two red ones
    np.testing.assert_allclose(smooth[4].scores, np.mean([r.scores for r in raw[2:5]], axis=0), atol=1e-6)


def _truncated(tmp_path: Path, model: Path) -> Path:
    folder = tmp_path / "truncated"
    folder.mkdir()
    (folder / "model_int8.tflite").write_bytes(model.read_bytes()[: model.stat().st_size // 3])
    (folder / METADATA_FILE).write_bytes((model.parent / METADATA_FILE).read_bytes())
    return folder


def _wrong_shape(tmp_path: Path, model: Path) -> Path:
    folder = tmp_path / "wrong_shape"
    folder.mkdir()
    (folder / "model_int8.tflite").write_bytes(model.read_bytes())
    metadata = json.loads((model.parent / METADATA_FILE).read_text())
    metadata["input"]["height"] = metadata["input"]["width"] = 224
    (folder / METADATA_FILE).write_text(json.dumps(metadata))
    return folder


def _metadata_with(change):
    """A model folder whose metadata.json was edited by ``change(metadata)``."""
    def make(tmp_path: Path, model: Path) -> Path:
        folder = tmp_path / "edited"
        folder.mkdir()
        (folder / "model_int8.tflite").write_bytes(model.read_bytes())
        metadata = json.loads((model.parent / METADATA_FILE).read_text())
        change(metadata)
        (folder / METADATA_FILE).write_text(json.dumps(metadata))
        return folder

    return make


def _a_file(tmp_path: Path, name: str = "plain.txt") -> Path:
    path = tmp_path / name
    path.write_text("not a folder")
    return path


def _corrupt_images(tmp_path: Path) -> Path:
    folder = tmp_path / "corrupt"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (folder / "b.png").write_bytes(b"")
    return folder


def _truncated_video(tmp_path: Path) -> Path:
    video = _colour_video(tmp_path / "full.avi")
    cut = tmp_path / "cut.avi"
    cut.write_bytes(video.read_bytes()[:3000])
    return cut


@pytest.mark.parametrize("make_model, make_source, extra, message", [
    (lambda tmp, m: tmp / "nope", None, [], "no such model folder or file"),
    (lambda tmp, m: tmp, None, [], "no model_int8.tflite in this folder"),
    (_truncated, None, [], "not a loadable TFLite model"),
    (_wrong_shape, None, [], "does not match the metadata's (1, 224, 224, 3)"),
    (None, lambda tmp: tmp / "missing.avi", [], "no such file, folder or camera"),
    (None, _corrupt_images, [], "none of the 2 images could be decoded"),
    (None, _truncated_video, [], "cut.avi: "),
    (None, lambda tmp: "7", ["--retries", "1", "--retry-delay", "0.01"], "camera device 7: cannot open"),
    (None, lambda tmp: "0", ["--serve", "localhost:99999"], "expected HOST:PORT"),
    (_metadata_with(lambda m: m.update(labels="red,green")), None, [], "labels must be a non-empty list"),
    (_metadata_with(lambda m: m.update(labels=[])), None, [], "labels must be a non-empty list"),
    (_metadata_with(lambda m: m.update(labels=["red", 2])), None, [], "labels must be a non-empty list"),
    (_metadata_with(lambda m: m.update(output=[])), None, [], "output must be an object"),
    (_metadata_with(lambda m: m["output"].update(top_k="two")), None, [], 'output.top_k must be an integer'),
    (_metadata_with(lambda m: m["output"].update(top_k=True)), None, [], 'output.top_k must be an integer'),
    (_metadata_with(lambda m: m.update(input=[32, 32])), None, [], "input must be an object"),
    (_metadata_with(lambda m: m["input"].update(height="32")), None, [], "input.height must be an integer"),
    (_metadata_with(lambda m: m["input"].update(resize="zoom")), None, [], 'input.resize must be "squash"'),
    (_metadata_with(lambda m: m["input"].update(color_order="BGR")), None, [], "input.color_order must be"),
    (_metadata_with(lambda m: m.clear()), None, [], "labels must be"),
    (None, None, ["--summary", "/proc/vgg-edge-summary.json"], "--summary /proc/vgg-edge-summary.json: cannot write"),
    (None, None, ["--summary", "{tmp}"], "is a folder; pass a file path"),
    (None, None, ["--save-every", "1", "--save-dir", "{tmp}/plain.txt/frames"], "nothing can be written under it"),
    (None, None, ["--save-every", "1", "--save-dir", "{tmp}/plain.txt"], "is a file, not a folder"),
    (None, None, ["--min-score", "0.6", "--unknown-label", "red"], "--unknown-label 'red': is one of the model's"),
    (None, None, ["--min-score", "0.6", "--unknown-label", " "], "--unknown-label ' ': is empty"),
])
def test_bad_input_is_one_line_and_non_zero(colour_models, tmp_path, make_model, make_source, extra, message):
    model = make_model(tmp_path, colour_models["int8"]) if make_model else colour_models["int8"]
    source = make_source(tmp_path) if make_source else _colour_video(tmp_path / "ok.avi")
    _a_file(tmp_path)
    done = run_cli("--model", model, "--source", source, "--headless", *[arg.format(tmp=tmp_path) for arg in extra])
    err = done.stderr.strip().splitlines()
    errors = [line for line in err if line.startswith("error: ")]
    assert done.returncode == 2, done.stderr
    # Native libraries may print their own lines first (FFmpeg, the AVI parser); ours is one, and last.
    assert len(errors) == 1 and errors[0] == err[-1] and message in errors[0], done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize("flag, value", [
    ("--retries", "-1"), ("--max-frames", "0"), ("--duration", "nan"), ("--retry-delay", "-1"), ("--top-k", "0"),
    ("--threads", "0"), ("--smooth", "0"), ("--camera-size", "640"), ("--serve-max-clients", "0"),
    ("--min-score", "0"), ("--min-score", "1.5"),
])
def test_bad_flag_is_one_line(flag, value):
    done = run_cli("--source", "x.avi", flag, value)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [done.stderr.strip()] and f"argument {flag}" in done.stderr, done.stderr


def test_corrupt_frames_in_a_folder_are_skipped_and_the_run_goes_on(colour_models, tmp_path):
    folder = _corrupt_images(tmp_path)
    Image.fromarray(patch_frame_rgb(RED_RGB)).save(folder / "c.png")
    done = run_cli("--model", colour_models["int8"], "--source", folder, "--headless", "--summary", tmp_path / "s.json")
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["label"] for line in done.stdout.splitlines()] == ["red"]
    assert json.loads((tmp_path / "s.json").read_text())["skipped_files"] == 2
    assert sum(line.startswith("skipped: ") for line in done.stderr.splitlines()) == 2


def test_truncated_video_stops_early_and_says_so(colour_models, tmp_path):
    video = _colour_video(tmp_path / "full.avi", count=40)
    cut = tmp_path / "cut.avi"
    cut.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    done = run_cli("--model", colour_models["int8"], "--source", cut, "--headless", "--summary", tmp_path / "s.json")
    summary = json.loads((tmp_path / "s.json").read_text())
    assert done.returncode == 0, done.stderr
    assert 0 < summary["frames"] == summary["frames_decoded"] < summary["frames_announced"] == 40


def test_max_frames_and_duration_bound_a_looping_run(colour_models, tmp_path):
    video = _colour_video(tmp_path / "v.avi", count=6)
    done = run_cli("--model", colour_models["int8"], "--source", video, "--headless", "--loop", "--max-frames", "15")
    assert done.returncode == 0 and len(done.stdout.splitlines()) == 15
    assert "stopped by max-frames" in done.stderr
    done = run_cli("--model", colour_models["int8"], "--source", video, "--headless", "--loop", "--duration", "1.5",
                   "--summary", tmp_path / "s.json")
    assert done.returncode == 0 and "stopped by duration" in done.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    # the loop ends at the first frame after 1.5 s of its own clock: not before, and with frames to show for it
    assert summary["stopped_by"] == "duration" and summary["wall_s"] >= 1.5 and summary["frames"] > 6


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_cleanly_with_a_summary(colour_models, tmp_path, sig):
    video = _colour_video(tmp_path / "v.avi", count=6)
    summary_path = tmp_path / "s.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "runtime", "--model", str(colour_models["int8"]), "--source", str(video), "--headless",
         "--loop", "--summary", str(summary_path)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(10):  # wait until frames flow
            assert json.loads(process.stdout.readline())["label"]
        process.send_signal(sig)
        out, err = process.communicate(timeout=20)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert "summary:" in err and "stopped by signal" in err and "Traceback" not in err
    summary = json.loads(summary_path.read_text())
    assert summary["stopped_by"] == "signal" and summary["frames"] >= 10
    assert summary["latency_ms"]["p50"] <= summary["latency_ms"]["p95"]


def test_save_every_writes_annotated_frames(colour_models, tmp_path):
    video = _colour_video(tmp_path / "v.avi", count=10)
    out = tmp_path / "frames"
    done = run_cli("--model", colour_models["int8"], "--source", video, "--headless", "--save-every", "4",
                   "--save-dir", out)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["frame_000000.jpg", "frame_000004.jpg", "frame_000008.jpg"]
    saved = cv2.imread(str(out / "frame_000000.jpg"))
    assert saved.shape == (72, 96, 3)


def test_soak_run_keeps_resident_memory_flat(colour_models, tmp_path):
    frames = [patch_frame_rgb([RED_RGB, GREEN_RGB, BLUE_RGB][i % 3], seed=i % 50) for i in range(SOAK_FRAMES + 50)]
    video = write_video_rgb(tmp_path / "soak.avi", frames, fps=30)
    summary_path = tmp_path / "s.json"
    done = run_cli("--model", colour_models["int8"], "--source", video, "--headless", "--summary", summary_path,
                   timeout=600)
    assert done.returncode == 0, done.stderr
    summary = json.loads(summary_path.read_text())
    growth = summary["rss_mb"]["end"] - summary["rss_mb"]["after_warmup"]
    print(f"soak: {summary['frames']} frames, RSS {summary['rss_mb']} MB, growth {growth:.2f} MB")
    assert summary["frames"] >= SOAK_FRAMES
    assert summary["rss_mb"]["after_warmup"] > 0, "VmRSS not readable"
    assert growth <= SOAK_RSS_GROWTH_MB
    assert summary["rss_mb"]["peak"] - summary["rss_mb"]["after_warmup"] <= SOAK_RSS_GROWTH_MB


def test_help_lists_the_stable_flags():
    done = run_cli("--help")
    assert done.returncode == 0
    for flag in ("--model", "--source", "--headless", "--max-frames", "--duration", "--serve", "--threads", "--smooth"):
        assert flag in done.stdout


def test_systemd_unit_uses_flags_the_cli_accepts():
    from runtime.__main__ import build_parser

    unit = (ROOT / "firmware_notes" / "vgg-edge-camera.service").read_text()
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    argv = exec_start.split("-m runtime", 1)[1].split()
    args = build_parser().parse_args(argv)
    assert args.source == "picamera2" and args.headless and args.serve.startswith("127.0.0.1:")


def test_make_video_interleaves_classes_and_skips_corrupt_files(tmp_path):
    from runtime.make_video import main as make_video

    for name, colour in (("cat", RED_RGB), ("dog", BLUE_RGB)):
        for i in range(3):
            write_image(tmp_path / "imgs" / name / f"{name}{i}.jpg", colour, size=(50, 40), seed=i)
    (tmp_path / "imgs" / "cat" / "cat0a.jpg").write_bytes(b"broken")  # sorts second among the cats
    out = tmp_path / "demo.avi"
    assert make_video(["--images", str(tmp_path / "imgs"), "--out", str(out), "--count", "5", "--hold", "2",
                       "--size", "64x48"]) == 0
    means = [frame_bgr.reshape(-1, 3).mean(0) for frame_bgr in read_video_bgr(out)]
    assert len(means) == 8  # 5 chosen, 1 skipped, each held 2 frames
    dominant = ["red" if m[2] > m[0] else "blue" for m in means[::2]]
    assert dominant == ["red", "blue", "blue", "red"]  # cat0, dog0, (cat0a broken), dog1, cat1
    assert make_video(["--images", str(tmp_path / "nothing"), "--out", str(tmp_path / "x.avi")]) == 2
    assert not (tmp_path / "x.avi").exists()


def test_window_overlay_shows_frames_and_q_stops_the_loop(colour_models, tmp_path, monkeypatch):
    import threading

    from runtime import loop as loop_module
    from runtime.capture import FrameGrabber

    shown = []
    monkeypatch.setattr(loop_module.cv2, "imshow", lambda title, image: shown.append(image.copy()))
    monkeypatch.setattr(loop_module.cv2, "waitKey", lambda delay: ord("q") if len(shown) >= 3 else -1)
    monkeypatch.setattr(loop_module.cv2, "destroyAllWindows", lambda: None)
    stop = threading.Event()
    video = _colour_video(tmp_path / "v.avi", count=10)
    classifier = Classifier(*locate_model(colour_models["int8"]))
    grabber = FrameGrabber(open_source(str(video))).start()
    try:
        results = []
        summary = loop_module.run_loop(classifier, grabber, LoopOptions(), [loop_module.WindowSink(stop)], stop,
                                       on_result=results.append)
    finally:
        grabber.stop()
    assert summary.frames == 3 and summary.stopped_by == "signal"
    original_bgr = cv2.cvtColor(results[0].frame.image_rgb, cv2.COLOR_RGB2BGR)
    assert shown[0].shape == original_bgr.shape
    assert (shown[0][:12, :30] != original_bgr[:12, :30]).any()  # the label box is drawn top-left
    np.testing.assert_array_equal(shown[0][-10:, -10:], original_bgr[-10:, -10:])  # in B, G, R, as OpenCV shows


def test_summary_says_resident_memory_is_unknown_without_proc(monkeypatch):
    from runtime import loop

    def no_proc(*args, **kwargs):
        raise FileNotFoundError("/proc/self/status")

    monkeypatch.setattr(loop, "open", no_proc, raising=False)  # a chroot without /proc
    assert loop.resident_mb() is None
    summary = loop.RunSummary(frames=3, wall_s=1.5)
    summary.rss_mb_end = loop._peak(None, loop.resident_mb())
    assert "RSS unknown (no /proc)" in summary.one_line() and "0.0" not in summary.one_line()
    assert summary.to_dict()["rss_mb"]["end"] is None
