"""Helpers shared by the benchmarks: which model to use, percentiles, markdown tables, plots."""

from __future__ import annotations

import contextlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
SHIPPED_BASE, SHIPPED_ADAPTER = ROOT / "weights" / "base", ROOT / "weights" / "joey-lora"


@dataclass
class ModelChoice:
    base: str
    adapter: str | None
    label: str  # "shipped weights: ...", "tiny random model (...)" or "given paths: ..."

    @property
    def short(self) -> str:
        return self.label.split(":")[0].split(" (")[0]


@contextlib.contextmanager
def choose_model(base: str | None, adapter: str | None, force_tiny: bool = False):
    """The model to benchmark: the given paths, else weights/ when present, else a tiny model in a temp dir."""
    if base and not force_tiny:
        yield ModelChoice(base, adapter or None, f"given paths: {base}" + (f" + {adapter}" if adapter else ""))
        return
    if not force_tiny and (SHIPPED_BASE / "model.safetensors").exists():
        lora = str(SHIPPED_ADAPTER) if SHIPPED_ADAPTER.is_dir() else None
        yield ModelChoice(str(SHIPPED_BASE), lora, "shipped weights: weights/base" + (" + weights/joey-lora" if lora else ""))
        return
    from tests.tiny_model import build_tiny_model

    with tempfile.TemporaryDirectory(prefix="joey-bench-") as tmp:
        b, a = build_tiny_model(Path(tmp))
        yield ModelChoice(str(b), str(a), "tiny random model (tests/tiny_model.py: hidden 64, 2 layers, vocab ~400), "
                                          "built in a temp dir because weights/base/model.safetensors is absent")


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
