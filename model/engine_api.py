"""The one face every engine shows the generator: what the hub needs, and nothing of how.

Three implementations: :class:`~model.engine.Engine` (a thread of this process),
:class:`~model.engine_process.EngineProcess` (the same engine in a child process: the server's
default) and :class:`~model.remote.RemoteEngine` (an OpenAI-compatible server such as vLLM). Each
takes prompts as token ids, so every engine sees exactly the prompt our builder renders.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from model.metrics import EngineStats
from model.reply import Reply
from model.sampling import GenerationParams


@runtime_checkable
class EngineClient(Protocol):
    @property
    def ready(self) -> bool:
        """Started, warmed up and not failed: new requests are answered at full speed."""

    def start(self) -> None:
        """Start; returns once requests can be submitted (warm-up may go on: see ``ready``)."""

    def submit(self, prompt: list[int], params: GenerationParams) -> Reply:
        """Queue a request on the running event loop; its text arrives through the Reply."""

    def abort(self, request_id: int) -> None:
        """Cancel a request and free its batch slot (safe for one that has already ended)."""

    def stats(self) -> EngineStats:
        """One consistent reading of the counters, for /metrics and /readyz."""

    def stop(self) -> None:
        """Close: running replies end, and the engine's resources are released."""
