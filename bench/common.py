"""Helpers shared by the benchmarks: which model to use, a server's memory, percentiles, markdown tables, plots."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from model.prefill_plan import PREFILL_CHUNK

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"


def memory_mb(pid: int) -> dict:
    """Memory of process ``pid`` and its descendants (a server, its engine process and that
    one's fork server), in MiB: resident (RSS, summed, so pages two processes share count
    twice), proportional (PSS: a shared page counts in shares, the fair sum), and the sum of
    each process's peak RSS."""
    totals = {"rss_mb": 0.0, "pss_mb": 0.0, "peak_rss_mb": 0.0}
    for member in process_tree(pid):
        try:
            status = dict(line.split(":", 1) for line in Path(f"/proc/{member}/status").read_text().splitlines())
            rollup = Path(f"/proc/{member}/smaps_rollup").read_text().splitlines()
        except FileNotFoundError:  # it has just exited (a compile worker, say)
            continue
        totals["rss_mb"] += int(status["VmRSS"].split()[0]) / 1024
        totals["peak_rss_mb"] += int(status["VmHWM"].split()[0]) / 1024
        totals["pss_mb"] += sum(int(line.split()[1]) for line in rollup if line.startswith("Pss:")) / 1024
    return totals


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants, from /proc (Linux). Each thread lists the children it
    started, and the engine's fork server is started from a worker thread, not the main one."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):  # a thread that has just ended
            found += [int(child) for child in (task / "children").read_text().split()]
    return [pid, *(p for child in found for p in process_tree(child))]


# A level measured while processes outside the benchmark keep this many cores busy is not a
# result: it is recorded beside the level and warned about loudly.
BUSY_CORES = 0.5


def _cpu_ticks(pids: list[int]) -> tuple[int, int]:
    """(busy ticks of the whole machine, ticks spent by ``pids``), from /proc (Linux)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    busy = sum(fields) - fields[3] - fields[4]  # all but idle and iowait
    ours = 0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ours += int(stat[11]) + int(stat[12])  # utime, stime
    return busy, ours


def outside_load(seconds: float = 1.0) -> dict:
    """Cores kept busy by processes outside this benchmark (not it, not the servers it started)
    over ``seconds``, beside the 1-minute load average. The load average alone cannot tell: it
    remembers the benchmark's own previous level for minutes."""
    pids = process_tree(os.getpid())
    busy0, ours0 = _cpu_ticks(pids)
    time.sleep(seconds)
    busy1, ours1 = _cpu_ticks(pids)
    cores = max(0.0, (busy1 - busy0) - (ours1 - ours0)) / os.sysconf("SC_CLK_TCK") / seconds
    load = {"outside_cores": round(cores, 2), "load_avg": round(os.getloadavg()[0], 2)}
    if cores > BUSY_CORES:
        print(f"WARNING: other processes keep {cores:.1f} cores busy (over {BUSY_CORES}): the next level's "
              "figures are from a busy machine, not results", file=sys.stderr, flush=True)
    return load


@dataclass
class ModelChoice:
    name: str  # "mini", "smollm2", "tiny" or "given"
    base: str
    adapter: str | None
    label: str  # what the output says was measured
    threads: int = 1  # torch threads of both servers: the preset's engine threads (model/presets.py)
    prefill_chunk: int = PREFILL_CHUNK  # the lean engine's: the preset's


def preset_model(name: str) -> ModelChoice:
    """A preset's files; an adapter that is not there yet (still training) is left out, and said so."""
    from model.presets import ensure_base, resolve

    preset = resolve(name)
    ensure_base(preset)
    adapter = preset.adapter if preset.adapter and (Path(preset.adapter) / "adapter_config.json").is_file() else None
    rel = lambda p: str(Path(p).relative_to(ROOT)) if Path(p).is_relative_to(ROOT) else p  # noqa: E731
    label = f"{name}: {rel(preset.base)}" + (f" + {rel(adapter)}" if adapter else " (no adapter: none trained yet)")
    return ModelChoice(name, preset.base, adapter, label, preset.engine_threads, preset.prefill_chunk)


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
