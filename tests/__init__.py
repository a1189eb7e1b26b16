"""The test suite. Folders mirror the code: tests/ the shared stage and its CLI, tests/tflite/ and tests/k210/
the two targets, tests/runtime/ the device package."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the repository
