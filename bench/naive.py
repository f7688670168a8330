"""The naive baseline: how the original single-user bot served, behind the same protocol.

Each message is answered by HF ``model.generate()`` with a ``TextIteratorStreamer``, one request
at a time (a single worker thread), with no batching and no KV-cache reuse across requests. It
implements the same Generator protocol as the lean engine (model/generator.py), so the same
server, hub and WebSocket code run in front of it and only the generation differs.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from dataclasses import dataclass, field

from model.character import default_character
from model.prompt import Turn, build_prompt, stop_token_ids
from model.metrics import EngineMetrics, EngineStats
from model.reply import FinishReason, Reply, ReplyEnd, TextChunk
from model.sampling import GenerationParams


@dataclass
class _Job:
    prompt: list[int]
    params: GenerationParams
    loop: asyncio.AbstractEventLoop
    cancelled: threading.Event = field(default_factory=threading.Event)
    # The engine's own reply type: closing it sets ``cancelled``, which stops generate().
    reply: Reply = field(init=False)

    def __post_init__(self):
        self.reply = Reply(lambda _id: self.cancelled.set(), 0)

    def send(self, event: TextChunk | ReplyEnd) -> None:
        self.loop.call_soon_threadsafe(self.reply.queue.put_nowait, event)


class NaiveGenerator:
    def __init__(self, model, tokenizer, context: int, threads: int = 1):
        self.model, self.tokenizer, self.context, self.threads = model, tokenizer, context, threads
        self.bot_name = default_character().name
        self._stop_ids = sorted(stop_token_ids(tokenizer))
        self._jobs: queue.Queue = queue.Queue()
        self._worker: threading.Thread | None = None
        self._metrics = EngineMetrics()

    @classmethod
    def load(cls, base: str, adapter: str | None, context: int = 512, threads: int = 1) -> "NaiveGenerator":
        import torch

        from model.loading import load_merged

        torch.set_num_threads(1)  # set up as the lean engine is (build_engine says why); _serve sets its own
        model, tokenizer = load_merged(base, adapter)
        return cls(model, tokenizer, min(context, model.config.max_position_embeddings), threads)

    @property
    def ready(self) -> bool:
        return self._worker is not None and self._worker.is_alive()

    def stats(self) -> EngineStats:
        """No engine counters: only the queue, for /readyz and /metrics."""
        return self._metrics.snapshot(queue_depth=self._jobs.qsize(), active_batch=0)

    def start(self) -> None:
        self._worker = threading.Thread(target=self._serve, name="naive-generate", daemon=True)
        self._worker.start()

    def stop(self) -> None:
        if self.ready:
            self._jobs.put(None)
            self._worker.join(timeout=30)

    def stream(self, turns: list[Turn], params: GenerationParams) -> Reply:
        prompt = build_prompt(self.tokenizer, turns, self.context - params.max_new_tokens - 1)
        job = _Job(prompt, params, asyncio.get_running_loop())
        self._jobs.put(job)
        return job.reply

    def _serve(self) -> None:
        import torch

        torch.set_num_threads(self.threads)
        while (job := self._jobs.get()) is not None:
            if job.cancelled.is_set():
                continue
            try:
                self._generate(job)
            except Exception as exc:  # noqa: BLE001 - one failed request must not stop the baseline
                job.send(ReplyEnd(FinishReason.ERROR, 0, str(exc)))

    def _generate(self, job: _Job) -> None:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        class Cancelled(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs) -> bool:
                return job.cancelled.is_set()

        p = job.params
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        sampling = {} if p.greedy else dict(do_sample=True, temperature=p.temperature, top_k=p.top_k, top_p=p.top_p)
        result = {}

        def run() -> None:
            with torch.inference_mode():
                result["ids"] = self.model.generate(
                    torch.tensor([job.prompt]), attention_mask=torch.ones(1, len(job.prompt), dtype=torch.long),
                    max_new_tokens=p.max_new_tokens, min_new_tokens=p.min_new_tokens, do_sample=not p.greedy,
                    repetition_penalty=p.repetition_penalty, eos_token_id=self._stop_ids,
                    pad_token_id=self._stop_ids[0], streamer=streamer,
                    stopping_criteria=StoppingCriteriaList([Cancelled()]), **sampling)

        # generate() fills the streamer; this thread forwards its text as it comes, as the
        # original bot did with a TextIteratorStreamer.
        producer = threading.Thread(target=run, daemon=True)
        producer.start()
        for text in streamer:
            if text:
                job.send(TextChunk(text))
        producer.join()
        new = result["ids"][0, len(job.prompt):].tolist()
        ended = bool(new) and new[-1] in self._stop_ids
        reason = FinishReason.CANCELLED if job.cancelled.is_set() else FinishReason.STOP if ended else FinishReason.LENGTH
        job.send(ReplyEnd(reason, len(new) - ended))
