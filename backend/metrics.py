"""Prometheus metrics (``GET /metrics``): connections, sessions, replies, errors, tokens, latency.

Each :class:`Metrics` has its own registry, so several servers in one process (the tests) keep
separate counts. Engine figures (queue depth, active batch, step time) are read from the
generator at scrape time through ``generator.stats()`` (model/metrics.py EngineStats) when it
has one; the hub's own count of replies in flight and waiting is always there.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Latency buckets from a fast CPU step (ms) to a long queue (a minute).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.connections = Gauge("joey_connections", "open WebSocket connections", registry=r)
        self.connections_total = Counter("joey_connections_accepted", "WebSocket connections accepted", registry=r)
        self.sessions = Gauge("joey_sessions", "sessions held in memory", registry=r)
        self.replies_in_flight = Gauge("joey_replies_in_flight", "replies being generated or waiting", registry=r)
        self.replies_queued = Gauge("joey_replies_queued", "replies waiting for an engine slot", registry=r)
        self.replies = Counter("joey_replies_total", "replies ended, by finish reason", ["finish_reason"], registry=r)
        self.errors = Counter("joey_errors_total", "error frames sent, by code", ["code"], registry=r)
        self.closes = Counter("joey_closes_total", "connections closed by the server, by close code", ["code"],
                              registry=r)
        self.tokens = Counter("joey_tokens_total", "tokens generated in replies", registry=r)
        self.first_token = Histogram("joey_time_to_first_token_seconds", "reply_start to first chunk",
                                     buckets=LATENCY_BUCKETS, registry=r)
        self.inter_token = Histogram("joey_inter_token_seconds", "gap between two chunks of one reply",
                                     buckets=LATENCY_BUCKETS, registry=r)
        self._generator = None
        r.register(_EngineCollector(self))

    def watch(self, generator) -> None:
        """Read engine figures from ``generator`` at each scrape."""
        self._generator = generator

    def reply_started(self, in_flight: int, queued: int) -> None:
        self.replies_in_flight.set(in_flight)
        self.replies_queued.set(queued)

    def chunk(self, reply) -> None:
        now = time.monotonic()
        if reply.last_chunk_at is None:
            self.first_token.observe(now - reply.started)
        else:
            self.inter_token.observe(now - reply.last_chunk_at)
        reply.last_chunk_at = now

    def reply_ended(self, finish_reason: str, tokens: int, in_flight: int) -> None:
        self.replies.labels(finish_reason).inc()
        self.tokens.inc(max(0, tokens))
        self.replies_in_flight.set(in_flight)

    def engine_stats(self):
        """The generator's EngineStats (model/metrics.py), or None where it has no stats()."""
        stats = getattr(self._generator, "stats", None)
        if not callable(stats):
            return None
        try:
            return stats()
        except Exception:  # a scrape must not fail because the engine is stopping
            return None

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _EngineCollector:
    """The engine's own figures, read at scrape time: queue depth, batch, tokens, step and TTFT."""

    def __init__(self, metrics: Metrics):
        self.metrics = metrics

    def collect(self):
        stats = self.metrics.engine_stats()
        if stats is None:
            return
        for name, key, help_text in (
                ("joey_engine_queue_depth", "queue_depth", "requests submitted and not yet decoding"),
                ("joey_engine_active_batch", "active_batch", "requests in the current decode batch")):
            if isinstance(value := getattr(stats, key, None), (int, float)):
                yield GaugeMetricFamily(name, help_text, value=value)
        for name, key, help_text in (
                ("joey_engine_tokens_generated", "tokens_generated", "tokens the engine produced"),
                ("joey_engine_prefill_tokens", "prefill_tokens", "prompt tokens run through the model"),
                ("joey_engine_prefix_reused_tokens", "reused_tokens",
                 "prompt tokens copied from the prefix cache instead of run")):
            if isinstance(value := getattr(stats, key, None), (int, float)):
                yield CounterMetricFamily(name, help_text, value=value)
        for name, key, help_text in (
                ("joey_engine_step_seconds", "step_seconds", "one batched decode step"),
                ("joey_engine_time_to_first_token_seconds", "ttft_seconds", "submit to first token, in the engine")):
            histogram = getattr(stats, key, None)
            if histogram is not None and hasattr(histogram, "cumulative"):
                buckets = [("+Inf" if bound == float("inf") else repr(float(bound)), n)
                           for bound, n in histogram.cumulative()]
                yield HistogramMetricFamily(name, help_text, buckets=buckets, sum_value=histogram.sum)
