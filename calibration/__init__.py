"""Calibration sets for post-training quantization: a stratified, seeded, repeatable selection."""

from calibration.select import (
    CalibrationItem,
    load_calibration_images,
    read_manifest,
    select_calibration,
    write_manifest,
)

__all__ = ["CalibrationItem", "load_calibration_images", "read_manifest", "select_calibration", "write_manifest"]
