"""The runtime installs on its own: requirements-runtime.txt into a fresh venv pulls no TensorFlow and runs."""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
import venv

import pytest

from tests import ROOT
from tests.runtime.helpers import RED_RGB, patch_frame_rgb, write_video_rgb

REQUIREMENTS = ROOT / "requirements-runtime.txt"
HEAVY = {"tensorflow", "tensorflow-cpu", "keras", "tf-keras", "jax", "torch", "tensorboard"}


def _pins(lines) -> dict[str, str]:
    pins = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if match := re.fullmatch(r"([A-Za-z0-9_.\-]+)==(\S+)", line):
            pins[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return pins


# What pip prints when the package index cannot be reached (no network, no proxy, DNS down).
_UNREACHABLE = ("NewConnectionError", "Failed to establish a new connection", "Network is unreachable",
                "Temporary failure in name resolution", "Name or service not known", "ProxyError",
                "Connection refused", "ConnectTimeoutError")


def _pip_install(python, *args) -> None:
    """``pip install`` into a test venv; skips (with pip's reason) when the package index is unreachable, and
    fails on any other error."""
    done = subprocess.run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *map(str, args)],
                          capture_output=True, text=True, errors="replace", timeout=900, check=False)
    if done.returncode != 0:
        output = done.stdout + done.stderr
        reason = next((marker for marker in _UNREACHABLE if marker in output), None)
        if reason is not None:
            pytest.skip(f"the package index is unreachable ({reason}): this test installs from it")
        raise AssertionError(f"pip install {' '.join(map(str, args))} failed:\n{output[-2000:]}")


def test_requirements_file_matches_the_runtime_extra():
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["runtime"]
    file_pins = _pins(REQUIREMENTS.read_text().splitlines())
    assert _pins(extra).items() <= file_pins.items()
    constraints = _pins((ROOT / "constraints.txt").read_text().splitlines())
    assert file_pins.items() <= constraints.items()  # the versions the whole suite was tested with
    assert not HEAVY & set(file_pins)


@pytest.mark.slow
def test_fresh_venv_from_requirements_runs_without_tensorflow(tmp_path, colour_models):
    env_dir = tmp_path / "device_venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    _pip_install(python, "-r", REQUIREMENTS)
    installed = json.loads(subprocess.run([python, "-m", "pip", "list", "--format", "json"], check=True,
                                          capture_output=True, text=True).stdout)
    names = {re.sub(r"[-_.]+", "-", package["name"]).lower() for package in installed}
    assert not HEAVY & names, HEAVY & names

    video = write_video_rgb(tmp_path / "red.avi", [patch_frame_rgb(RED_RGB, seed=i) for i in range(5)])
    code = (
        "import runpy, sys\n"
        "sys.argv = ['runtime', '--model', sys.argv[1], '--source', sys.argv[2], '--headless']\n"
        "try:\n"
        "    runpy.run_module('runtime', run_name='__main__')\n"
        "except SystemExit as done:\n"
        "    bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'convert'))\n"
        "    assert not bad, bad\n"
        "    raise\n"
    )
    done = subprocess.run([python, "-c", code, str(colour_models["int8"]), str(video)], cwd=ROOT, capture_output=True,
                          text=True, errors="replace", timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["label"] for line in done.stdout.splitlines()] == ["red"] * 5
    assert "ai_edge_litert" in done.stderr


# What Debian Bookworm's apt ships (apt-cache policy on Debian 12.11: python3-numpy 1:1.24.2,
# python3-opencv 4.6.0, python3-pil 9.4.0); on x86_64 the same versions from PyPI stand in for them.
BOOKWORM_APT_STACK = ["numpy==1.24.2", "opencv-python-headless==4.6.0.66", "pillow==9.4.0"]


@pytest.mark.slow
@pytest.mark.parametrize("interpreter, backend", [
    (["-r", str(ROOT / "requirements-pi.txt")], "ai_edge_litert"),  # 64-bit Pi OS
    (["tflite-runtime==2.14.0"], "tflite_runtime"),  # 32-bit Pi OS: no armv7l ai-edge-litert wheel
])
def test_runtime_runs_on_the_bookworm_apt_stack(tmp_path, colour_models, interpreter, backend):
    env_dir = tmp_path / "bookworm_venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    _pip_install(python, "--only-binary=:all:", *BOOKWORM_APT_STACK)
    _pip_install(python, "--only-binary=:all:", *interpreter)
    versions = subprocess.run([python, "-c", "import numpy, cv2, PIL; print(numpy.__version__, cv2.__version__, PIL.__version__)"],
                              check=True, capture_output=True, text=True).stdout.split()
    assert versions == ["1.24.2", "4.6.0", "9.4.0"]  # the interpreter did not drag in newer NumPy/OpenCV
    video = write_video_rgb(tmp_path / "red.avi", [patch_frame_rgb(RED_RGB, seed=i) for i in range(5)])
    done = subprocess.run([python, "-m", "runtime", "--model", str(colour_models["uint8"]), "--source", str(video),
                           "--headless"], cwd=ROOT, capture_output=True, text=True, errors="replace", timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert f"{backend}," in done.stderr  # the interpreter package, named in the start-up line
    assert [json.loads(line)["label"] for line in done.stdout.splitlines()] == ["red"] * 5


def test_an_unreachable_index_skips_and_any_other_pip_failure_fails(tmp_path, monkeypatch):
    """The install tests above need the package index; without it they skip, saying so."""
    outputs = iter(["WARNING: Retrying ... NewConnectionError('<pip._vendor.urllib3.connection.HTTPSConnection>: "
                    "Failed to establish a new connection: [Errno 101] Network is unreachable')",
                    "ERROR: No matching distribution found for numpy==0.0.0"])

    def fake_run(*_args, **_kwargs):
        return subprocess.CompletedProcess([], 1, stdout="", stderr=next(outputs))

    monkeypatch.setattr(subprocess, "run", fake_run)
    with pytest.raises(pytest.skip.Exception, match="package index is unreachable"):
        _pip_install("python", "numpy")
    with pytest.raises(AssertionError, match="No matching distribution"):
        _pip_install("python", "numpy==0.0.0")
