"""Helpers shared by the benchmarks: which model to use, percentiles, markdown tables, plots."""

from __future__ import annotations

import contextlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"


@dataclass
class ModelChoice:
    name: str  # "mini", "smollm2", "tiny" or "given"
    base: str
    adapter: str | None
    label: str  # what the output says was measured


def preset_model(name: str) -> ModelChoice:
    """A preset's files; an adapter that is not there yet (still training) is left out, and said so."""
    from model.presets import ensure_base, resolve

    preset = resolve(name)
    ensure_base(preset)
    adapter = preset.adapter if preset.adapter and (Path(preset.adapter) / "adapter_config.json").is_file() else None
    rel = lambda p: str(Path(p).relative_to(ROOT)) if Path(p).is_relative_to(ROOT) else p  # noqa: E731
    label = f"{name}: {rel(preset.base)}" + (f" + {rel(adapter)}" if adapter else " (no adapter: none trained yet)")
    return ModelChoice(name, preset.base, adapter, label)


@contextlib.contextmanager
def tiny_model():
    """A tiny random model in a temp dir (bench/tiny_model.py), for smoke runs."""
    from bench.tiny_model import build_tiny_model

    with tempfile.TemporaryDirectory(prefix="joey-bench-") as tmp:
        b, a = build_tiny_model(Path(tmp))
        yield ModelChoice("tiny", str(b), str(a), "tiny random model (bench/tiny_model.py: hidden 64, 2 layers, vocab ~400)")


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def median(values: list[float]) -> float:
    return percentile(values, 50)


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def fmt(x, digits: int = 1) -> str:
    if isinstance(x, float):
        if x != x:
            return "n/a"
        return f"{x:,.{digits}f}"
    return str(x)


def markdown_table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    lines += ["| " + " | ".join(c if isinstance(c, str) else fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
