"""The drift report's files: ``drift_report.md`` and its PNG plots (the JSON is the gate's report dict)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from convert.schema import DRIFT_CONFUSION_PNG, DRIFT_LAYERS_PNG, DRIFT_PROB_DIFF_PNG
from convert.tflite.drift import LayerError

WORST_LAYERS = 10  # layers listed in the report


def write_plots(out_dir: Path, class_names: Sequence[str], confusions: dict[str, list[list[int]]],
                prob_diff: np.ndarray, layers: Sequence[LayerError]) -> list[Path]:
    """Confusion matrices, the |delta prob| histogram and per-layer error, as PNG files."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    written = []
    fig, axes = plt.subplots(1, len(confusions), figsize=(4.2 * len(confusions), 4))
    for ax, (title, matrix) in zip(np.atleast_1d(axes), confusions.items()):
        matrix = np.asarray(matrix)
        ax.imshow(matrix, cmap="Blues")
        ax.set_title(title)
        ticks = range(len(class_names)) if len(class_names) <= 20 else []
        ax.set_xticks(list(ticks), [class_names[i] for i in ticks], rotation=45, ha="right")
        ax.set_yticks(list(ticks), [class_names[i] for i in ticks])
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        if len(class_names) <= 20:
            for (r, c), value in np.ndenumerate(matrix):
                ax.text(c, r, str(value), ha="center", va="center",
                        color="white" if value > matrix.max() / 2 else "black")
    fig.tight_layout()
    written.append(out_dir / DRIFT_CONFUSION_PNG)
    fig.savefig(written[-1], dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(prob_diff, bins=50, color="tab:orange")
    ax.set_yscale("log")
    ax.set_xlabel("max |float - int8| class probability, per image")
    ax.set_ylabel("images")
    fig.tight_layout()
    written.append(out_dir / DRIFT_PROB_DIFF_PNG)
    fig.savefig(written[-1], dpi=100)
    plt.close(fig)

    if layers:
        shown = list(layers)[:WORST_LAYERS * 2][::-1]
        fig, ax = plt.subplots(figsize=(8, 0.3 * len(shown) + 1.2))
        ax.barh([f"{layer.op_name} {layer.short_name}" for layer in shown],
                [layer.rmse_over_scale for layer in shown], color="tab:red")
        ax.set_xscale("log")
        ax.set_xlabel("RMSE / scale (quantization steps)")
        ax.tick_params(axis="y", labelsize=7)
        fig.tight_layout()
        written.append(out_dir / DRIFT_LAYERS_PNG)
        fig.savefig(written[-1], dpi=100)
        plt.close(fig)
    return written


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def render_markdown(report: dict) -> str:
    """The readable ``drift_report.md`` from the JSON report."""
    test = report["test"]
    lines = [
        "# Drift report",
        "",
        f"Model: {report['model']}; weights: {report['weights']}; test images: {test['n']}; "
        f"budget: top-1 agreement >= {_pct(report['budget']['min_top1_agreement'])}.",
        "",
        f"**Verdict: {report['verdict']}**" + (f" ({report['fix']['summary']})" if report.get("fix") else ""),
        "",
        "| model | test accuracy | top-1 agreement with float | mean abs prob diff | max abs prob diff |",
        "|---|---|---|---|---|",
        f"| float Keras | {_pct(test.get('accuracy_float'))} | - | - | - |",
    ]
    if report.get("float_tflite"):
        ft = report["float_tflite"]
        lines.append(f"| float TFLite (first {ft['n']} images) | {_pct(ft.get('accuracy_candidate'))} | "
                     f"{_pct(ft['top1_agreement'])} | {ft['mean_abs_prob_diff']:.2e} | {ft['max_abs_prob_diff']:.2e} |")
    lines.append(f"| int8 TFLite | {_pct(test.get('accuracy_int8'))} | {_pct(test['top1_agreement'])} | "
                 f"{test['mean_abs_prob_diff']:.4f} | {test['max_abs_prob_diff']:.4f} |")
    lines += ["", f"![confusion matrices]({DRIFT_CONFUSION_PNG})", "", f"![probability drift]({DRIFT_PROB_DIFF_PNG})", ""]
    if report.get("layers"):
        lines += ["## Per-layer quantization error (worst first)", "",
                  f"QuantizationDebugger on {report['layers_measured_on']} images. RMSE/scale is the error in "
                  "quantization steps; ~0.29 is pure rounding.", "",
                  "| op | layer | RMSE/scale | scale |", "|---|---|---|---|"]
        for layer in report["layers"][:WORST_LAYERS]:
            lines.append(f"| {layer['op']} | `{layer['layer']}` | {layer['rmse_over_scale']:.3f} | {layer['scale']:.4g} |")
        lines += ["", f"![per-layer error]({DRIFT_LAYERS_PNG})", ""]
    elif report.get("layers_measured_on") == 0:
        lines += ["## Per-layer quantization error", "", "Not measured (`--debug-images 0`).", ""]
    if report.get("fix"):
        fix = report["fix"]
        lines += ["## Automatic fix", "", fix["summary"], ""]
        if fix.get("test_top1_agreement_before") is not None:
            after = fix.get("test_top1_agreement_after")
            lines += [f"Test-set top-1 agreement of the full-integer model: {fix['test_top1_agreement_before']:.2%}"
                      + (f"; after the fix: {after:.2%}." if after is not None else "."), ""]
        for step in fix.get("steps", []):
            lines.append(f"- {step}")
        lines.append("")
    lines += ["## Largest disagreements", "", "| file | float | int8 | max abs prob diff |", "|---|---|---|---|"]
    for row in report["worst_disagreements"]:
        lines.append(f"| {row['file']} | {row['float']} ({row['float_score']:.3f}) | "
                     f"{row['quantized']} ({row['quantized_score']:.3f}) | {row['max_abs_prob_diff']:.3f} |")
    lines += ["", "## Confusion matrices (rows: true class, columns: predicted)", ""]
    for title, matrix in report["confusion"].items():
        lines += [f"{title}: `{matrix}`", ""]
    return "\n".join(lines) + "\n"
