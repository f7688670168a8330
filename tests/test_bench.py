"""Smoke test: ``bench/run_all.py --quick`` runs end to end on the tiny model and prints its tables.

No timing is asserted here: performance lives in the benchmarks (docs/benchmarks.md), which
report ratios against baselines measured in the same run.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT


def test_quick_benchmarks_run_and_print_tables(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run_all.py"), "--quick", "--tiny", "--out", str(out),
         "--summary-plot", str(tmp_path / "bench.png")],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = proc.stdout
    assert "tiny random model" in text
    for heading in ("## Decode throughput", "## Server end to end", "## Bad-input storm"):
        assert heading in text
    assert "| concurrency | HF generate tok/s | lean engine tok/s | ratio ours/HF |" in text
    assert "| sessions | replies | first chunk p50 ms |" in text
    results = json.loads((out / "results.json").read_text())
    assert [r["concurrency"] for r in results["engine"]["rows"]] == [1, 4, 16]
    assert [r["sessions"] for r in results["server"]["rows"]] == [1, 8, 32]
    assert all(r["dropped"] == 0 and r["errors"] == 0 for r in results["server"]["rows"])
    assert results["server"]["storm"]["server_ready_after"]
    for name in ("engine.png", "server.png"):
        assert (out / name).stat().st_size > 0
    assert (tmp_path / "bench.png").stat().st_size > 0
