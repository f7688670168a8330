"""Smoke test: ``bench/run_all.py --quick --tiny`` runs end to end and its numbers are sane.

No timing is asserted (performance lives in docs/benchmarks.md, as ratios to a baseline measured
in the same run): only that both servers answered every session with no error or drop, produced
tokens, and that the ratios are finite numbers.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

from tests.conftest import ROOT


def test_quick_benchmark_runs_through_both_servers_with_sane_numbers(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run_all.py"), "--quick", "--tiny", "--out", str(out),
         "--summary-plot", str(tmp_path / "bench.png")],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    server = json.loads((out / "results.json").read_text())["models"]["tiny"]["server"]
    for kind in ("lean", "naive"):
        assert [r["sessions"] for r in server[kind]] == [1, 4]
        for row in server[kind]:
            assert row["errors"] == 0 and row["dropped"] == 0, row["problems"]
            assert row["replies"] > 0 and row["tokens"] > 0 and row["tok_s"] > 0
            assert row["ttfc_p50_ms"] > 0 and row["rss_mb"] > 0
    assert all(math.isfinite(r["tok_s_ratio"]) and r["tok_s_ratio"] > 0 for r in server["lean"])
    assert server["storm"]["server_ready_after"]
    assert (tmp_path / "bench.png").stat().st_size > 0
