"""What one request gives back: typed events from the engine thread, read as an async iterator.

The engine thread never touches asyncio objects directly: it collects events in a
:class:`Mailbox` and hands them to each event loop once per step (one wake-up per step instead
of one per chunk leaves the GIL with the engine for longer when many replies stream at once).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import Enum


class FinishReason(str, Enum):
    STOP = "stop"  # the model ended its turn
    LENGTH = "length"  # max_new_tokens or the context window was reached
    CANCELLED = "cancelled"  # the caller aborted it
    ERROR = "error"  # the engine failed on this request


class EngineError(RuntimeError):
    """Generation failed (the engine stopped, or this request could not run)."""


@dataclass(frozen=True, slots=True)
class TextChunk:
    text: str


@dataclass(frozen=True, slots=True)
class ReplyEnd:
    reason: FinishReason
    tokens: int  # tokens the reply holds (0 if it never started)
    error: str = ""  # why, when reason is ERROR


class Reply:
    """Async iterator of text chunks. After it ends, ``finish_reason`` and ``tokens`` are set."""

    def __init__(self, abort, request_id: int):
        self._abort, self.id = abort, request_id
        self.queue: asyncio.Queue[TextChunk | ReplyEnd] = asyncio.Queue()
        self.finish_reason: FinishReason | None = None
        self.tokens = 0
        self._held: ReplyEnd | None = None  # an end found while joining text, returned next

    def __aiter__(self) -> "Reply":
        return self

    async def __anext__(self) -> str:
        if self.finish_reason is not None:
            raise StopAsyncIteration
        event = self._held or await self.queue.get()
        self._held = None
        if isinstance(event, TextChunk):
            return self._with_queued_text(event.text)
        self.finish_reason, self.tokens = event.reason, event.tokens
        if event.reason is FinishReason.ERROR:
            raise EngineError(f"generation failed: {event.error}")
        raise StopAsyncIteration

    def _with_queued_text(self, text: str) -> str:
        """``text`` and any text queued behind it, as one chunk. When the caller falls behind (many
        replies on one event loop), a frame per token would cost more than the token: a JSON frame,
        a WebSocket send and a parse on the client each. A caller that keeps up still gets one
        chunk per token."""
        parts = [text]
        while not self.queue.empty():
            event = self.queue.get_nowait()
            if not isinstance(event, TextChunk):
                self._held = event
                break
            parts.append(event.text)
        return "".join(parts)

    async def aclose(self) -> None:
        """Abort the request if it is still running. Safe to call more than once."""
        if self.finish_reason is None:
            self.finish_reason = FinishReason.CANCELLED
            self._abort(self.id)


class Mailbox:
    """Events for the asyncio side, handed over once per engine step. Touched only by the engine thread."""

    def __init__(self):
        self._pending: dict[asyncio.AbstractEventLoop, list] = {}

    def put(self, loop: asyncio.AbstractEventLoop, reply_queue: asyncio.Queue, event: TextChunk | ReplyEnd) -> None:
        self._pending.setdefault(loop, []).append((reply_queue, event))

    def flush(self) -> None:
        for loop, items in self._pending.items():
            try:
                loop.call_soon_threadsafe(_deliver, items)
            except RuntimeError:  # that loop has closed; nobody is listening any more
                pass
        self._pending = {}


def _deliver(items: list) -> None:
    for reply_queue, event in items:
        reply_queue.put_nowait(event)
