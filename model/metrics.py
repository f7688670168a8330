"""What the engine counts, as plain Python numbers, ready to be exported (e.g. to /metrics).

The engine thread writes; any thread may call :meth:`EngineMetrics.snapshot`, which copies
under a lock, so a reader never sees a histogram half updated.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

# Upper bounds in seconds, Prometheus style (each bucket counts observations <= its bound).
TTFT_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STEP_BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


@dataclass
class Histogram:
    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)  # per bucket, not cumulative; last one is +Inf
    sum: float = 0.0
    count: int = 0

    def __post_init__(self):
        self.counts = self.counts or [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        index = next((i for i, b in enumerate(self.bounds) if value <= b), len(self.bounds))
        self.counts[index] += 1
        self.sum += value
        self.count += 1

    def copy(self) -> "Histogram":
        return Histogram(self.bounds, list(self.counts), self.sum, self.count)

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations <= it) pairs, the last bound being +inf: Prometheus' form."""
        total, out = 0, []
        for bound, n in zip((*self.bounds, float("inf")), self.counts):
            total += n
            out.append((bound, total))
        return out


@dataclass(frozen=True)
class EngineStats:
    """One consistent reading of the engine's counters."""

    queue_depth: int  # requests submitted and not yet decoding (waiting or being prefilled)
    active_batch: int  # requests in the current decode batch
    tokens_generated: int  # total tokens produced since start
    requests_finished: dict[str, int]  # by finish reason: stop, length, cancelled, error
    ttft_seconds: Histogram  # submit -> first token chosen, per request
    step_seconds: Histogram  # one batched decode step (all active requests)
    prefill_tokens: int  # prompt tokens run through the model since start
    reused_tokens: int = 0  # prompt tokens copied from the prefix cache instead (not run)


class EngineMetrics:
    def __init__(self):
        self._lock = threading.Lock()
        self.tokens_generated = 0
        self.prefill_tokens = 0
        self.reused_tokens = 0
        self.finished: dict[str, int] = {}
        self.ttft = Histogram(TTFT_BOUNDS)
        self.step = Histogram(STEP_BOUNDS)

    def first_token(self, seconds: float) -> None:
        with self._lock:
            self.ttft.observe(seconds)

    def stepped(self, seconds: float) -> None:
        with self._lock:
            self.step.observe(seconds)

    def generated(self) -> None:
        self.tokens_generated += 1  # an int store is atomic under the GIL; a snapshot may lag one

    def prefilled(self, tokens: int) -> None:
        self.prefill_tokens += tokens

    def reused(self, tokens: int) -> None:
        self.reused_tokens += tokens

    def ended(self, reason: str) -> None:
        with self._lock:
            self.finished[reason] = self.finished.get(reason, 0) + 1

    def snapshot(self, queue_depth: int, active_batch: int) -> EngineStats:
        with self._lock:
            return EngineStats(queue_depth, active_batch, self.tokens_generated, dict(self.finished),
                               self.ttft.copy(), self.step.copy(), self.prefill_tokens, self.reused_tokens)
