"""Smoke test: ``bench/run_all.py --quick --tiny`` runs end to end and its numbers are sane.

No timing is asserted (performance lives in docs/benchmarks.md, as ratios to a baseline measured
in the same run): only that both servers answered every session with no error or drop, produced
tokens, and that the ratios are finite numbers.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time

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
            assert row["ttfc_p50_ms"] > 0 and row["rss_mb"] > 0 and row["pss_mb"] > 0
    assert all(math.isfinite(r["tok_s_ratio"]) and r["tok_s_ratio"] > 0 for r in server["lean"])
    assert server["storm"]["server_ready_after"]
    assert (tmp_path / "bench.png").stat().st_size > 0


def test_a_server_that_is_not_ready_in_time_is_reported_not_measured_and_fails_the_run(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run_all.py"), "--quick", "--tiny", "--start-timeout", "0.5",
         "--out", str(out), "--summary-plot", ""],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    tiny = json.loads((out / "results.json").read_text())["models"]["tiny"]
    assert "server" not in tiny and tiny["failed"].endswith("was not ready within 0.5 s:")
    assert "Not measured:" in (out / "report.md").read_text() and "FAILED:\ntiny:" in proc.stdout


def test_server_memory_counts_processes_started_from_any_thread(tmp_path):
    """The engine process's fork server is started from a worker thread: its whole tree counts."""
    from bench.common import process_tree

    started = []
    nested = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); " \
             "time.sleep(60)"
    worker = threading.Thread(target=lambda: started.append(subprocess.Popen([sys.executable, "-c", nested])))
    worker.start(), worker.join()
    try:
        deadline = time.monotonic() + 20
        while len(ours := process_tree(started[0].pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(ours) == 2 and set(ours) <= set(process_tree(os.getpid()))  # the child and its own child
    finally:
        for pid in reversed(process_tree(started[0].pid)):
            os.kill(pid, 9)
        started[0].wait()
