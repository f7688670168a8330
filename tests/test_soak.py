"""bench/soak.py, briefly: its checks run and its numbers are sane (the real run is 5 minutes, in docs/benchmarks.md)."""

from __future__ import annotations

import json
import math

from bench import soak


def test_a_short_soak_loses_and_duplicates_nothing(tiny_model, tmp_path):
    base, adapter = tiny_model
    code = soak.main(["--minutes", "0.25", "--sessions", "6", "--idle", "30", "--drop-every", "2",
                      "--base-model", str(base), "--adapter", str(adapter), "--json", str(tmp_path / "soak.json")])
    result = json.loads((tmp_path / "soak.json").read_text())
    assert code == 0
    assert result["answered"] == result["sent"] > 0
    assert result["lost"] == result["duplicated"] == result["mismatched"] == 0
    assert result["drops_resumed"] > 0 and result["idle_held"] == 30
    assert not result["connection_failures"]
    assert math.isfinite(result["ttfc_p50_ms"]) and result["ttfc_p50_ms"] > 0
