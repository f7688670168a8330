"""One engine owns the model: a thread that batches every running request into one decode step.

The asyncio side calls :meth:`Engine.submit` and gets a :class:`Reply`, an async iterator of
text chunks fed through its own queue. The event loop never runs a tensor operation. Closing a
Reply (or cancelling the task that reads it) aborts its request and frees its batch slot before
the next step.

While other requests decode, a step runs at most one prefill pass, of at most ``prefill_chunk``
positions or as many as there are requests in the engine if more, so a long new prompt delays
the running streams by one chunk's time per step instead of stalling them for its whole prefill,
and the prompts of many sessions still go in as fast as their replies come out. A prompt first
copies the keys and values it shares with an earlier prompt and reply (:class:`PrefixCache`:
the system message, and the conversation so far), so usually only the new message is prefilled.

Slots ``0..max_batch-1`` of the model's KV cache decode; the rest belong to the prefix cache.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import itertools
import logging
import queue
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import torch

from model import heap
from model.detokenize import StreamDecoder
from model.lean import LeanLlama
from model.metrics import EngineMetrics, EngineStats
from model.prefix_cache import PrefixCache
from model.engine_options import EngineOptions
from model.prefill_plan import plan
from model.reply import EngineError, FinishReason, Mailbox, Reply, ReplyEnd, TextChunk
from model.sampling import GenerationParams, choose

__all__ = ["Engine", "EngineError", "FinishReason", "Reply"]
log = logging.getLogger("joey.engine")


@dataclass
class _Request:
    id: int
    prompt: list[int]
    params: GenerationParams
    emit: callable
    generator: torch.Generator
    decoder: StreamDecoder  # holds the reply's token ids
    submitted: float = field(default_factory=time.perf_counter)
    prefilled: int = 0  # prompt tokens already in the KV cache
    continues: int | None = None  # the prefix-cache slot of its conversation's previous turn
    answered: bool = False  # its first token has been chosen

    @property
    def generated(self) -> tuple[int, ...]:
        return self.decoder.ids  # a copy: the decoder's list is its own

    @property
    def last_token(self) -> int:
        """The token the next decode step runs: the reply's last, or the prompt's before it."""
        return self.decoder.last if len(self.decoder) else self.prompt[-1]

    @property
    def length(self) -> int:
        return len(self.prompt) + len(self.decoder)


class Engine:
    def __init__(self, model: LeanLlama, tokenizer, stop_ids: set[int], stop_text: str | None,
                 options: EngineOptions, warmup=None, prefix: list[int] = (), mailbox=None):
        self.model, self.stop_ids, self.stop_text = model, stop_ids, stop_text
        self._stop_index = torch.tensor(sorted(stop_ids), dtype=torch.long)
        # Per slot: which tokens the prompt or reply already holds (for the repetition penalty).
        self._seen = torch.zeros(model.max_slots, model.vocab_size, dtype=torch.bool)
        # The engine thread decodes with its own copy: a fast tokenizer is not safe to share.
        self._tokenizer = copy.deepcopy(tokenizer)
        self.max_batch = min(options.max_batch, model.max_slots)
        self.cache = PrefixCache(range(self.max_batch, model.max_slots))
        # Every prompt starts the same way (the system message): a pinned cache entry.
        self.prefix = list(prefix) if prefix and self.cache.capacity else []
        # The repetition penalty is for what was said, not for the sheet: the system message's
        # tokens (names, the show) must stay as likely as the adapter learnt them.
        self._system = list(prefix)
        self.prefill_chunk, self.sentence_holdback = options.prefill_chunk, options.sentence_holdback
        self._warmup = warmup  # run on the engine thread before it takes requests (compiling)
        self._inbox: queue.Queue = queue.Queue()
        # Where each step's events go: to event loops in this process, or to the parent of an
        # engine process (model/engine_process.py). Anything with flush(); emit callables feed it.
        self._mailbox = mailbox or Mailbox()
        self._waiting: deque[_Request] = deque()  # the head may be part-way through its prefill
        self._active: list[_Request] = []  # decoding, in slots 0..n-1
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._warm = threading.Event()
        self.failure: BaseException | None = None
        self.metrics = EngineMetrics()

    # --- any thread ---------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def ready(self) -> bool:
        """Running and warmed up (compiled): requests are answered at full speed."""
        return self.running and self._warm.is_set()

    @property
    def active(self) -> int:
        return len(self._active)

    @property
    def waiting(self) -> int:
        return len(self._waiting) + self._inbox.qsize()

    @property
    def tokens_generated(self) -> int:
        return self.metrics.tokens_generated

    def stats(self) -> EngineStats:
        return self.metrics.snapshot(queue_depth=self.waiting, active_batch=self.active)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="joey-engine", daemon=True)
        self._thread.start()

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self._warm.wait(timeout)

    def join(self, timeout: float | None = None) -> None:
        """Wait for the engine thread to end (after :meth:`stop`, or a failure)."""
        if self._thread is not None:
            self._thread.join(timeout)

    def stop(self) -> None:
        if self.running:
            self._inbox.put(("stop", None))
            self._thread.join(timeout=10)

    # --- asyncio side -------------------------------------------------------------------------
    def submit(self, prompt: list[int], params: GenerationParams) -> Reply:
        if not self.running:
            raise EngineError("the engine is not running")
        params.validate()
        reply = Reply(self.abort, next(self._ids))
        self.add(reply.id, prompt, params, functools.partial(self._mailbox.put, asyncio.get_running_loop(), reply.queue))
        return reply

    def add(self, request_id: int, prompt: list[int], params: GenerationParams, emit) -> None:
        """Queue a request whose events go to ``emit`` (any thread; ``submit`` is the asyncio face)."""
        # Not torch.seed(): it reseeds every device backend, and the CUDA, XPU and MTIA ones each
        # format a stack trace to defer that, which was a tenth of the event loop's time at 64 sessions.
        seed = params.seed if params.seed is not None else random.getrandbits(63)
        decoder = StreamDecoder(self._tokenizer, params.max_new_tokens, self.sentence_holdback)
        self._inbox.put(("submit", _Request(request_id, list(prompt), params, emit,
                                            torch.Generator().manual_seed(seed), decoder)))

    def abort(self, request_id: int) -> None:
        self._inbox.put(("abort", request_id))

    # --- engine thread ------------------------------------------------------------------------
    def _run(self) -> None:
        held = False
        try:
            with torch.inference_mode():
                if self._warmup is not None:
                    self._warmup()
                if self.prefix:
                    self.model.prefill(self.cache.place(self.prefix, len(self.prefix), pinned=True), self.prefix)
                heap.hold()  # torch, transformers and the graphs now live as long as the engine
                held = True
                self._warm.set()
                self._loop()
        except BaseException as exc:  # keep the reason for /readyz, fail everyone cleanly
            log.exception("engine failed")
            self.failure = exc
            for req in [*self._active, *self._waiting]:
                req.emit(ReplyEnd(FinishReason.ERROR, len(req.decoder), str(exc)))
            self._mailbox.flush()
        finally:
            if held:
                heap.release()

    def _loop(self) -> None:
        while self._take_inbox(block=not (self._active or self._waiting)):
            self._prefill()
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
                self._end(req, FinishReason.CANCELLED)
        for slot, req in enumerate(self._active):
            if req.id == request_id:
                self._release(slot, FinishReason.CANCELLED)
                return

    def _prefill(self) -> None:
        """Feed waiting prompts into free slots, several per pass (model/prefill_plan.py): all of
        them when nothing is decoding, else one pass per step (a second would pay a pass's fixed
        cost again). The pass computes at most ``prefill_chunk`` positions, or one per request in
        the engine if there are more: larger passes stall the running streams, smaller ones let
        prompts wait while the batch runs part empty (docs/benchmarks.md, "Prefill budget").
        Prompts being filled sit in slots n, n+1, ... (n = requests decoding), so they join the
        dense decode slots when done; only the queue's head may be left part-filled."""
        budget = None if not self._active else max(self.prefill_chunk, len(self._active) + len(self._waiting))
        while self._waiting and len(self._active) < self.max_batch:
            try:
                self.model.check_fits(len(self._waiting[0].prompt))
            except ValueError as exc:
                self._end(self._waiting.popleft(), FinishReason.ERROR, str(exc))
                continue
            first = len(self._active)
            rows = plan(self._waiting, self.max_batch - first, budget, self.model.fits, self.cache)
            for slot, row in enumerate(rows, start=first):
                if row.source is not None:
                    self.model.move_slot(row.source, slot, row.start)
                    self.metrics.reused(row.start)
                    row.req.continues = row.source if row.continues else None
                row.req.prefilled = row.start + row.take
                self.metrics.prefilled(row.take)
            done = [r.req for r in rows if r.req.prefilled == len(r.req.prompt)]
            # Prompts that lack only their last token (the rest came from the prefix cache: a
            # message asked again, say) are what a decode step takes, one token at its position
            # per row: they join the batch, and the next step (compiled for any batch) runs
            # them, where a one-token prefill pass would run eager.
            by_step = len(done) == len(rows) and all(r.take == 1 for r in rows)
            logits = None if by_step else \
                self.model.prefill_rows(first, [(r.req.prompt[r.start:r.start + r.take], r.start) for r in rows])
            for slot, req in enumerate(done, start=first):
                self._waiting.popleft()
                self._active.append(req)
                self._seen[slot] = False
                said = req.prompt[len(self._system):] if req.prompt[:len(self._system)] == self._system else req.prompt
                self._seen[slot, said] = True
            if done and logits is not None:
                self._advance(first, logits[:len(done)])
            if len(done) < len(rows) or (budget is not None and not by_step):
                return  # the head is part-filled, or this step's one pass has run

    def _step(self) -> None:
        started = time.perf_counter()
        tokens = torch.tensor([r.last_token for r in self._active])
        positions = torch.tensor([r.length - 1 for r in self._active])
        self._advance(0, self.model.decode(tokens, positions))
        self.metrics.stepped(time.perf_counter() - started)

    def _advance(self, first: int, logits: torch.Tensor) -> None:
        """Choose the next token of slots ``first``, ``first + 1``, ... (row i of ``logits`` is
        slot ``first + i``) and act on it."""
        slots = range(first, first + logits.shape[0])
        reqs = [self._active[s] for s in slots]
        too_short = [i for i, r in enumerate(reqs) if len(r.decoder) < r.params.min_new_tokens]
        if len(too_short) == len(reqs):  # one fill is cheaper than the indexed write
            logits.index_fill_(1, self._stop_index, float("-inf"))
        elif too_short:
            logits[torch.tensor(too_short).unsqueeze(1), self._stop_index] = float("-inf")
        seen = self._seen[first:first + len(reqs)]  # a view, not a copy
        tokens = choose(logits, seen, [r.params for r in reqs], [r.generator for r in reqs])
        # One indexing op per step, not one per token. A slot released below gets its row reset
        # by the request that takes it next, so a bit set for an ending reply does no harm.
        seen[range(len(slots)), tokens] = True
        # Walk backwards: releasing slot s moves the last request into it, and every slot after
        # s has been handled by then.
        for slot, token in sorted(zip(slots, tokens), reverse=True):
            self._take(slot, token)

    def _take(self, slot: int, token: int) -> None:
        req = self._active[slot]
        if not req.answered:
            req.answered = True
            self.metrics.first_token(time.perf_counter() - req.submitted)
        if token in self.stop_ids:
            self._release(slot, FinishReason.STOP)
            return
        chunk = req.decoder.push(token)
        self.metrics.generated()
        if self.stop_text and self.stop_text in (text := req.decoder.text()):
            req.decoder.drop_last()  # the stop text belongs to the next line, not this reply
            self._release(slot, FinishReason.STOP, final=text[: text.index(self.stop_text)])
            return
        if chunk:
            req.emit(TextChunk(chunk))
        if len(req.decoder) >= req.params.max_new_tokens or not self.model.fits(req.length):
            self._release(slot, FinishReason.LENGTH)

    def _end(self, req: _Request, reason: FinishReason, error: str = "") -> None:
        req.emit(ReplyEnd(reason, len(req.decoder), error))
        self.metrics.ended(reason.value)

    def _release(self, slot: int, reason: FinishReason, final: str | None = None) -> None:
        req = self._active[slot]
        # Cut by the limit: end at the last sentence end rather than mid-sentence.
        rest = req.decoder.finish_at_sentence() if reason is FinishReason.LENGTH else req.decoder.flush(final)
        if rest:
            req.emit(TextChunk(rest))
        self._end(req, reason)
        self._keep(slot, req)
        last = len(self._active) - 1
        if slot != last:
            moved = self._active[last]
            self.model.move_slot(last, slot, moved.length)
            self._seen[slot] = self._seen[last]
            self._active[slot] = moved
        self._active.pop()
        if self._waiting and self._waiting[0].prefilled:  # its part-filled slot follows the dense end
            self.model.move_slot(last + 1, last, self._waiting[0].prefilled)

    def _keep(self, slot: int, req: _Request) -> None:
        """Copy a finished request's keys and values into the prefix cache, for its conversation's
        next message. The last token chosen never ran through the model, so it is not there."""
        ids = (req.prompt + list(req.generated))[:req.length - 1]
        if len(ids) > len(self.prefix):
            kept = self.cache.place(ids, len(req.prompt), supersedes=req.continues)
            if kept is not None:
                self.model.move_slot(slot, kept, len(ids))
