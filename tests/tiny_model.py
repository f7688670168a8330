"""The tiny test models live in bench/tiny_model.py (the benchmarks use them too)."""

from bench.tiny_model import LINES, build_tiny_model  # noqa: F401
