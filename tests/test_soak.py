"""bench/soak.py, briefly: its checks run and its numbers are sane (the real run is 5 minutes, in docs/benchmarks.md)."""

from __future__ import annotations

import json

from bench import soak


def test_a_short_soak_loses_and_duplicates_nothing(tiny_model, tmp_path):
    base, adapter = tiny_model
    sessions, idle, drop_every, minutes = 6, 30, 2, 0.15
    code = soak.main(["--minutes", str(minutes), "--sessions", str(sessions), "--idle", str(idle),
                      "--drop-every", str(drop_every), "--base-model", str(base), "--adapter", str(adapter),
                      "--json", str(tmp_path / "soak.json")])
    result = json.loads((tmp_path / "soak.json").read_text())
    assert code == 0
    # Every message answered exactly once, its chunks joining to its reply_end's text.
    assert result["answered"] == result["sent"] >= sessions  # each session chats until the end
    assert result["lost"] == result["duplicated"] == result["mismatched"] == 0
    assert not result["connection_failures"] and result["idle_held"] == idle
    assert set(result["errors"]) <= {"server_busy", "rate_limited"}  # admission refusals, waited out
    # Every drop_every-th message of each session was dropped mid-reply and resumed: a session that
    # sent n messages dropped n // drop_every of them.
    sent, most_missed = result["sent"], sessions * (drop_every - 1)
    assert (sent - most_missed) / drop_every <= result["drops_resumed"] <= sent / drop_every
    assert result["wall_s"] >= minutes * 60  # sessions chat until the deadline, then finish their message
    # Waited is taken from the first try, ttfc from the accepted one: never less, percentile by percentile.
    assert 0 < result["ttfc_p50_ms"] <= result["ttfc_p95_ms"] <= result["ttfc_p99_ms"]
    assert result["waited_p50_ms"] >= result["ttfc_p50_ms"] and result["waited_p95_ms"] >= result["ttfc_p95_ms"]
    assert 0 < result["full_p50_ms"] <= result["full_p95_ms"]
    assert result["rss_start_mb"] > 0 and result["rss_end_mb"] > 0
