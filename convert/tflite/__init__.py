"""The TFLite target: export, op inspection, drift metrics, the gate and its fix, the drift report."""
