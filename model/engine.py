"""One engine owns the model: a thread that batches every running request into one decode step.

The asyncio side calls :meth:`Engine.submit` and gets a :class:`Reply`, an async iterator of
text chunks fed through its own queue. The event loop never runs a tensor operation. Closing a
Reply (or cancelling the task that reads it) aborts its request and frees its batch slot before
the next step.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import itertools
import logging
import queue
import threading
from collections import deque
from dataclasses import dataclass
from enum import Enum

import torch

from model.detokenize import StreamDecoder
from model.lean import LeanLlama
from model.sampling import GenerationParams, choose

log = logging.getLogger("joey.engine")


class FinishReason(str, Enum):
    STOP = "stop"  # the model ended its turn
    LENGTH = "length"  # max_new_tokens or the context window was reached
    CANCELLED = "cancelled"  # the caller aborted it
    ERROR = "error"  # the engine failed on this request


class EngineError(RuntimeError):
    pass


@dataclass
class _Request:
    id: int
    prompt: list[int]
    params: GenerationParams
    emit: callable
    generator: torch.Generator
    decoder: StreamDecoder  # holds the reply's token ids

    @property
    def generated(self) -> list[int]:
        return self.decoder.ids


class Reply:
    """Async iterator of text chunks. After it ends, ``finish_reason`` and ``tokens`` are set."""

    def __init__(self, engine: "Engine", request_id: int):
        self._engine, self.id = engine, request_id
        self._queue: asyncio.Queue = asyncio.Queue()
        self.finish_reason: FinishReason | None = None
        self.tokens = 0

    def __aiter__(self) -> "Reply":
        return self

    async def __anext__(self) -> str:
        if self.finish_reason is not None:
            raise StopAsyncIteration
        kind, value, tokens = await self._queue.get()
        if kind == "text":
            return value
        self.finish_reason, self.tokens = value, tokens
        if value is FinishReason.ERROR:
            raise EngineError(f"generation failed: {tokens}")
        raise StopAsyncIteration

    async def aclose(self) -> None:
        """Abort the request if it is still running. Safe to call more than once."""
        if self.finish_reason is None:
            self.finish_reason = FinishReason.CANCELLED
            self._engine.abort(self.id)


class _Mailbox:
    """Events for the asyncio side, handed over once per engine step.

    One wake-up of each event loop per step, instead of one per chunk, leaves the GIL with the
    engine for longer when many replies stream at once. Touched only by the engine thread.
    """

    def __init__(self):
        self._pending: dict[asyncio.AbstractEventLoop, list] = {}

    def put(self, loop: asyncio.AbstractEventLoop, reply_queue: asyncio.Queue, event: tuple) -> None:
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


class Engine:
    def __init__(self, model: LeanLlama, tokenizer, stop_ids: set[int], stop_text: str | None,
                 max_batch: int, threads: int = 1, max_prefills_per_step: int = 2):
        self.model, self.stop_ids, self.stop_text = model, stop_ids, stop_text
        self._stop_index = torch.tensor(sorted(stop_ids), dtype=torch.long)
        # Per slot: which tokens the prompt or reply already holds (for the repetition penalty).
        self._seen = torch.zeros(model.max_slots, model.vocab_size, dtype=torch.bool)
        # The engine thread decodes with its own copy: a fast tokenizer is not safe to share.
        self._tokenizer = copy.deepcopy(tokenizer)
        self.max_batch = min(max_batch, model.max_slots)
        self.threads, self.max_prefills_per_step = threads, max_prefills_per_step
        self._inbox: queue.Queue = queue.Queue()
        self._mailbox = _Mailbox()
        self._waiting: deque[_Request] = deque()
        self._active: list[_Request] = []
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self.failure: BaseException | None = None
        self.tokens_generated = 0

    # --- asyncio side -------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def active(self) -> int:
        return len(self._active)

    @property
    def waiting(self) -> int:
        return len(self._waiting) + self._inbox.qsize()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="joey-engine", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self.running:
            self._inbox.put(("stop", None))
            self._thread.join(timeout=10)

    def submit(self, prompt: list[int], params: GenerationParams) -> Reply:
        if not self.running:
            raise EngineError("the engine is not running")
        params.validate()
        loop = asyncio.get_running_loop()
        reply = Reply(self, next(self._ids))

        emit = functools.partial(self._mailbox.put, loop, reply._queue)
        seed = params.seed if params.seed is not None else torch.seed()
        gen = torch.Generator().manual_seed(seed)
        decoder = StreamDecoder(self._tokenizer)
        self._inbox.put(("submit", _Request(reply.id, list(prompt), params, emit, gen, decoder)))
        return reply

    def abort(self, request_id: int) -> None:
        self._inbox.put(("abort", request_id))

    # --- engine thread ------------------------------------------------------------------------
    def _run(self) -> None:
        torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                self._loop()
        except BaseException as exc:  # keep the reason for /readyz, fail everyone cleanly
            log.exception("engine failed")
            self.failure = exc
            for req in [*self._active, *self._waiting]:
                req.emit(("end", FinishReason.ERROR, str(exc)))
            self._mailbox.flush()

    def _loop(self) -> None:
        while self._take_inbox(block=not (self._active or self._waiting)):
            self._admit()
            if self._active:
                self._step()
            self._mailbox.flush()

    def _take_inbox(self, block: bool) -> bool:
        """Apply queued submits and aborts. Returns False when asked to stop."""
        while True:
            try:
                kind, item = self._inbox.get(block=block, timeout=0.5 if block else None)
            except queue.Empty:
                return True
            block = False
            if kind == "stop":
                return False
            if kind == "submit":
                self._waiting.append(item)
            elif kind == "abort":
                self._abort(item)

    def _abort(self, request_id: int) -> None:
        for req in list(self._waiting):
            if req.id == request_id:
                self._waiting.remove(req)
                req.emit(("end", FinishReason.CANCELLED, 0))
        for slot, req in enumerate(self._active):
            if req.id == request_id:
                self._release(slot, FinishReason.CANCELLED)
                return

    def _admit(self) -> None:
        admitted = 0
        while self._waiting and len(self._active) < self.max_batch and admitted < self.max_prefills_per_step:
            req = self._waiting.popleft()
            slot = len(self._active)
            try:
                logits = self.model.prefill(slot, req.prompt)
            except ValueError as exc:
                req.emit(("end", FinishReason.ERROR, str(exc)))
                continue
            self._active.append(req)
            self._seen[slot] = False
            self._seen[slot, req.prompt] = True
            admitted += 1
            self._advance([slot], logits.unsqueeze(0))

    def _step(self) -> None:
        tokens = torch.tensor([r.generated[-1] for r in self._active])
        positions = torch.tensor([len(r.prompt) + len(r.generated) - 1 for r in self._active])
        self._advance(list(range(len(self._active))), self.model.decode(tokens, positions))

    def _advance(self, slots: list[int], logits: torch.Tensor) -> None:
        """Choose each slot's next token (row i of ``logits`` belongs to ``slots[i]``) and act on it."""
        reqs = [self._active[s] for s in slots]
        too_short = [i for i, r in enumerate(reqs) if len(r.generated) < r.params.min_new_tokens]
        if too_short:
            logits[torch.tensor(too_short).unsqueeze(1), self._stop_index] = float("-inf")
        tokens = choose(logits, self._seen[slots], [r.params for r in reqs], [r.generator for r in reqs])
        # Walk backwards: releasing slot s moves the last request into it, and every slot after
        # s has been handled by then.
        for slot, token in sorted(zip(slots, tokens), reverse=True):
            self._take(slot, token)

    def _take(self, slot: int, token: int) -> None:
        req = self._active[slot]
        if token in self.stop_ids:
            self._release(slot, FinishReason.STOP)
            return
        chunk = req.decoder.push(token)
        self._seen[slot, token] = True
        self.tokens_generated += 1
        if self.stop_text and self.stop_text in (text := req.decoder.text()):
            req.generated.pop()  # the stop text belongs to the next line, not this reply
            self._release(slot, FinishReason.STOP, final=text[: text.index(self.stop_text)])
            return
        if chunk:
            req.emit(("text", chunk, 0))
        full = len(req.prompt) + len(req.generated) >= self.model.max_len - 1
        if len(req.generated) >= req.params.max_new_tokens or full:
            self._release(slot, FinishReason.LENGTH)

    def _release(self, slot: int, reason: FinishReason, final: str | None = None) -> None:
        req = self._active[slot]
        if chunk := req.decoder.flush(final):
            req.emit(("text", chunk, 0))
        req.emit(("end", reason, len(req.generated)))
        last = len(self._active) - 1
        if slot != last:
            moved = self._active[last]
            self.model.move_slot(last, slot, len(moved.prompt) + len(moved.generated))
            self._seen[slot] = self._seen[last]
            self._active[slot] = moved
        self._active.pop()
