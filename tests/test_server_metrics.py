"""backend/metrics.py: /metrics after a chat, the counters and histograms moved (issue 11, item 6);
backend/logs.py: JSON log lines."""

from __future__ import annotations

import json
import logging

import httpx
from prometheus_client.parser import text_string_to_metric_families

from backend.logs import JsonFormatter
from tests.conftest import connect


async def scrape(server) -> dict[str, float]:
    async with httpx.AsyncClient(base_url=server.http) as http:
        response = await http.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if "le" in sample.labels:
                continue
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[sample.name + (f"{{{labels}}}" if labels else "")] = sample.value
    return samples


async def test_metrics_move_after_a_chat(make_server):
    # No sentence holdback: the tiny model's random text rarely ends a sentence, so with it most
    # of the reply would wait and arrive as one chunk, which leaves no gap to measure.
    server = make_server(max_new_tokens=20, min_new_tokens=5, sentence_holdback=0)
    before = await scrape(server)
    async with connect(server.url) as c:
        await c.open()
        end, frames = await c.ask("How you doin'?", "m1")
        await c.ws.send("{bad")
        assert (await c.recv())["code"] == "bad_json"
        during = await scrape(server)
    after = await scrape(server)
    assert during["joey_connections"] == 1 and during["joey_sessions"] == 1
    assert after["joey_replies_total{finish_reason=%s}" % end["finish_reason"]] == 1
    assert after["joey_tokens_total"] - before.get("joey_tokens_total", 0) == end["tokens"] > 0
    assert after["joey_errors_total{code=bad_json}"] == 1
    assert after["joey_time_to_first_token_seconds_count"] == 1
    # One gap between each two chunks sent. A client that falls behind gets queued text joined
    # into one chunk (model/reply.py), so how many chunks come is up to the machine's load.
    chunks = sum(frame["type"] == "chunk" for frame in frames)
    assert chunks >= 1 and after["joey_inter_token_seconds_count"] == chunks - 1
    assert after["joey_connections_accepted_total"] >= 1
    assert after["joey_engine_active_batch"] == 0 and after["joey_engine_queue_depth"] == 0
    assert after["joey_engine_step_seconds_count"] >= end["tokens"] - 1 > 0
    assert after["joey_engine_tokens_generated_total"] >= end["tokens"]
    # Every prompt starts with the system message, copied from the prefix cache, never recomputed.
    assert after["joey_engine_prefix_reused_tokens_total"] > 0 and after["joey_engine_prefill_tokens_total"] > 0


def test_json_log_lines_carry_session_ids_and_no_secrets():
    record = logging.LogRecord("joey.hub", logging.WARNING, __file__, 1, "reply failed for %s", ("abcdefgh",),
                               None)
    record.session = "abcdefghijklmnopqrstuv"
    line = json.loads(JsonFormatter().format(record))
    assert line["level"] == "WARNING" and line["logger"] == "joey.hub" and line["session"] == "abcdefgh"
    assert line["message"] == "reply failed for abcdefgh" and "abcdefghijklmnop" not in json.dumps(line)
