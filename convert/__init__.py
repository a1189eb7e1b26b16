"""Keras VGG classifier -> float and full-integer int8 TFLite, with a measured drift report.

Run ``python -m convert --help``. Nothing here runs at import time.
"""
