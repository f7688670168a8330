"""Smoke test: ``bench/run_all.py --quick --tiny`` runs end to end and its numbers are sane.

No timing is asserted (performance lives in docs/benchmarks.md, as ratios to a baseline measured
in the same run): only what the report promises. Both servers answered every session, with no
error, drop or reply left running; no session sent more than its messages, nor got a reply longer
than the level's tokens; tokens/s is the tokens over the level's wall time; each ratio is lean /
naive of the rows reported beside it, the one-session pair the median of its runs; the chatters
beside the bad-input flood lost nothing, the flooder's connection stayed open, and the server was
ready after it.
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
    messages, new_tokens = server["messages"], server["new_tokens"]
    for kind in ("lean", "naive"):
        assert [r["sessions"] for r in server[kind]] == [1, 4]
        for row in server[kind]:
            assert_level_is_whole(row, messages, new_tokens)
            assert 0 < row["rss_mb"] <= row["peak_rss_mb"] and row["pss_mb"] > 0
    for ours, theirs in zip(server["lean"], server["naive"]):
        assert math.isclose(ours["tok_s_ratio"], ours["tok_s"] / theirs["tok_s"])
        assert math.isclose(ours["ttfc_ratio"], theirs["ttfc_p50_ms"] / ours["ttfc_p50_ms"])
    single = server["lean"][0]
    assert len(single["pair_ratios"]) == server["single_pairs"]
    assert math.isclose(sorted(single["pair_ratios"])[len(single["pair_ratios"]) // 2], single["tok_s_ratio"])
    storm = server["storm"]
    assert storm["server_ready_after"]
    assert_level_is_whole(storm["calm"], messages, new_tokens)
    for phase in storm["phases"]:
        assert_level_is_whole(phase["level"], messages, new_tokens)
        flooder = phase["flooder"]
        assert 0 < flooder["received"] <= flooder["sent"]  # one answer per bad frame at most
        assert flooder["closed"] is None  # bad frames are answered, never a reason to drop the connection
    assert (tmp_path / "bench.png").stat().st_size > 0


def assert_level_is_whole(row: dict, messages: int, new_tokens: int) -> None:
    """Every session answered, each within its messages and each reply within its tokens."""
    assert row["errors"] == row["dropped"] == row["unfinished"] == 0, row["problems"]
    assert row["sessions"] <= row["replies"] <= row["sessions"] * messages
    assert 0 < row["tokens"] <= row["replies"] * new_tokens
    assert row["wall_s"] > 0 and math.isclose(row["tok_s"], row["tokens"] / row["wall_s"])
    assert 0 < row["ttfc_p50_ms"] <= row["ttfc_p99_ms"] and not row["gap_p50_ms"] > row["gap_p99_ms"]


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
