"""Do two artifacts folders hold the same conversion? Model bytes and metadata.json, apart from timings.

    .venv/bin/python scripts/compare_artifacts.py OUT_A OUT_B

Used to check that a change meant to be behaviour-neutral (a restructuring) is: the same inputs must give
byte-identical TFLite models and a ``metadata.json`` with the same keys and values. What legitimately differs
between two runs is ignored: wall-clock timings, the data root's path, the hash and size of the .keras file
(it records when it was saved).
Exit 0 when they match, 1 with one line per difference when they do not. (Ours, for this repository.)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

MODEL_FILES = ("model_int8.tflite", "model_float.tflite")
# Keys of metadata.json whose values are allowed to differ between two runs: nncase's wall-clock times in
# the k210 section.
VOLATILE = {"compile_s", "simulate_s"}


def differences(a, b, path: str = "") -> list[str]:
    """Where two JSON values differ (keys in ``VOLATILE`` are skipped), as ``path: a != b`` lines."""
    if isinstance(a, dict) and isinstance(b, dict):
        found = [f"{path}/{key}: only in the first" for key in a.keys() - b.keys()]
        found += [f"{path}/{key}: only in the second" for key in b.keys() - a.keys()]
        for key in sorted(a.keys() & b.keys()):
            if key not in VOLATILE:
                found += differences(a[key], b[key], f"{path}/{key}")
        return found
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [line for i, (x, y) in enumerate(zip(a, b)) for line in differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {json.dumps(a)[:80]} != {json.dumps(b)[:80]}"]


def compare(first: Path, second: Path) -> list[str]:
    """Every difference between two artifacts folders: model bytes, then metadata.json."""
    found = []
    for name in MODEL_FILES:
        if (first / name).read_bytes() != (second / name).read_bytes():
            found.append(f"{name}: bytes differ")
    metadata = [json.loads((folder / "metadata.json").read_text()) for folder in (first, second)]
    for data in metadata:
        data.get("provenance", {}).pop("data_root", None)
        # A .keras file is a zip whose own metadata holds the time it was saved: its hash, and even its size
        # by a few bytes, differ every run. Its weights are those of the float TFLite, compared above.
        data.get("artifacts", {}).pop("model_float.keras", None)
    return found + [f"metadata.json{line}" for line in differences(*metadata)]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: compare_artifacts.py OUT_A OUT_B", file=sys.stderr)
        return 2
    found = compare(Path(args[0]), Path(args[1]))
    for line in found:
        print(line)
    print("same conversion" if not found else f"{len(found)} differences", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
