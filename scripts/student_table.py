"""The README's Pi-sized variants table from ``make student`` runs: ``python -m scripts.student_table OUT``.

Reads ``OUT/students/*/student.json`` (each written by ``python -m convert.pi.student``, with its int8 latency
and the main model's measured in one pass) and ``OUT``'s own drift report, and prints one Markdown row per
variant after a row for ``make convert``'s model, then a line naming the run and its CPU. The latencies are
comparable only when every variant was timed in one run (``make student VARIANTS="A B ..."``); when they were
not, a line says so and the first row's latency is the last variant's run's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from convert.k210.options import KmodelOptions
from convert.k210.pipeline import choose_plan, student_shape
from convert.pi.student import STUDENT_JSON, STUDENTS_DIR
from convert.schema import DRIFT_JSON_FILE, INT8_TFLITE_FILE, read_conversion


def _percent(value) -> str:
    return "" if value is None else f"{value:.2%}"


def _gate(verdict: str, float_ops: int) -> str:
    """The gate's verdict beside the agreement: nothing for a full-integer PASS."""
    if verdict == "PASS" and not float_ops:
        return ""
    return " (gate FAIL)" if verdict == "FAIL" else f" (gate {verdict}: {float_ops} float ops)"


def rows(artifacts: Path) -> list[str]:
    metadata, conversion = read_conversion(artifacts)
    summaries = [json.loads(path.read_text()) for path in sorted((artifacts / STUDENTS_DIR).glob(f"*/{STUDENT_JSON}"))]
    if not summaries:
        raise SystemExit(f"{artifacts / STUDENTS_DIR}: no make student output; run make student first")
    size = metadata.input.height
    main = choose_plan(KmodelOptions(artifacts=artifacts, width=1.0, input_size=size), len(metadata.labels),
                       student_shape(conversion.provenance), for_kpu=False)
    report = json.loads((artifacts / DRIFT_JSON_FILE).read_text())
    drift = report["test"]
    runs = {json.dumps(summary["latency"].get("run"), sort_keys=True) for summary in summaries}
    run = summaries[-1]["latency"].get("run") or {}
    last = summaries[-1]["latency"]["full_int8_ms"]
    out = ["| variant | GMAC | parameters | int8 size | test accuracy float / int8 | int8 vs its float | "
           "int8 latency 1 / 2 threads | ratio to make convert's model (1 / 2 threads) |",
           "|---|---|---|---|---|---|---|---|",
           f"| make convert's model ({main.name.replace(' x1 ', ' ')}) | {main.macs / 1e9:.2f} | "
           f"{main.params / 1e6:.2f}M | {(artifacts / INT8_TFLITE_FILE).stat().st_size / 1e6:.2f} MB | "
           f"{_percent(drift['accuracy_float'])} / {_percent(drift['accuracy_int8'])} | "
           f"{_percent(drift['top1_agreement'])}{_gate(report['verdict'], len(report['int8_model']['float_ops']))} | "
           f"{last['1']:.1f} / {last['2']:.1f} ms | 1 / 1 |"]
    for summary in summaries:
        latency = summary["latency"]
        verdict = summary.get("verdict") or ("PASS" if summary["gate_passed"] else "FAIL")  # older student.json
        out.append(
            f"| {summary['variant']} | {summary['gmacs']:.2f} | {summary['params'] / 1e6:.2f}M | "
            f"{summary['int8_bytes'] / 1e6:.2f} MB | {_percent(summary['accuracy_float'])} / "
            f"{_percent(summary['accuracy_int8'])} | {_percent(summary['top1_agreement'])}"
            f"{_gate(verdict, summary.get('float_ops', 0))}"
            f" | {latency['student_int8_ms']['1']:.1f} / "
            f"{latency['student_int8_ms']['2']:.1f} ms | {latency['ratio_to_full']['1']:.3f} / "
            f"{latency['ratio_to_full']['2']:.3f} |")
    if len(runs) == 1 and run:
        out.append(f"\nLatencies of one pass ({run['measured_at']}; {run['cpu']}).")
    else:
        out.append(f"\nNOT one run: the variants' latencies come from {len(runs)} separate runs, so their ratios to "
                   "the full model compare, their milliseconds do not; rebuild them together with "
                   "make student VARIANTS=\"...\".")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.student_table", description=__doc__.splitlines()[0])
    parser.add_argument("artifacts", type=Path, help="the make convert folder make student wrote into")
    args = parser.parse_args(argv)
    print("\n".join(rows(args.artifacts)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
