"""An engine elsewhere: replies streamed from vLLM (or any OpenAI-compatible server) serving the
Joey LoRA by name, behind the same face as our own engines (model/engine_api.py).

Each request is one streamed POST to ``{url}/completions`` in a task of its own on the caller's
event loop. The prompt goes as the token ids our builder rendered, and every setting of
:class:`GenerationParams` goes with it (model/remote_api.py). The engine sends back the reply's
token ids, and our own :class:`StreamDecoder` turns them into text, exactly as our engine does:
no character split across chunks, and the last ``sentence_holdback`` tokens before the limit
stream whole sentences only, so a reply cut by its limit ends at a sentence end. An engine that
sends text without token ids gets the same rules, counting one token per event.

Faults, before the first token: an engine down, unreachable or overloaded (429, 502-504) is
tried again, up to ``retries`` times with a doubling backoff (or the engine's Retry-After), on
whichever engine is then the least loaded; a refusal (400, 404) ends the reply with an error at
once. After the first token nothing is tried again, since the user has seen text: a dropped
stream, an error event or a silent engine ends the reply with ``FinishReason.ERROR``, and the hub
sends its typed error frame. Cancelling closes the HTTP stream, and vLLM aborts the request when
its client goes. Every reply ends exactly once.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time

import httpx

from model.detokenize import StreamDecoder
from model.metrics import EngineMetrics, EngineStats
from model.remote_api import (RETRYABLE_STATUS, Delta, EngineRefused, EngineUnavailable, RemoteError,
                              StreamBroken, completion_body, deltas, error_text, retry_after)
from model.remote_pool import Backend, Pool, RemoteSettings
from model.reply import EngineError, FinishReason, Reply, ReplyEnd, TextChunk
from model.sampling import GenerationParams

__all__ = ["RemoteEngine", "RemoteSettings"]
log = logging.getLogger("joey.remote")

_FINISH = {"stop": FinishReason.STOP, "length": FinishReason.LENGTH}


class TextStream(StreamDecoder):
    """The StreamDecoder's rules for an engine that sends text but no token ids: each event
    counts as one token (vLLM sends one per token; others may join a few)."""

    def __init__(self, limit: int | None = None, holdback: int = 0):
        super().__init__(None, limit, holdback)
        self._raw = ""

    def push_text(self, text: str) -> str:
        self._raw += text
        return self.push(0)

    def _decode(self) -> None:
        self._text = self._raw.lstrip()


class _Request:
    """One reply's progress: its decoder, and whether its first token has come."""

    def __init__(self, reply: Reply, params: GenerationParams, holdback: int, tokenizer):
        self.reply, self.params = reply, params
        self.decoder = StreamDecoder(tokenizer, params.max_new_tokens, holdback)
        self.text_only = TextStream(params.max_new_tokens, holdback)
        self.by_text = False  # the engine sends no token ids: text_only decodes
        self.answered = False
        self.submitted = time.perf_counter()

    @property
    def stream(self) -> StreamDecoder:
        return self.text_only if self.by_text else self.decoder

    def emit(self, text: str) -> None:
        if text:
            self.reply.queue.put_nowait(TextChunk(text))


class RemoteEngine:
    """:class:`~model.engine_api.EngineClient` over OpenAI-compatible engines at ``urls``."""

    def __init__(self, urls: list[str], tokenizer, stop_ids: set[int], stop_text: str | None = None,
                 settings: RemoteSettings = RemoteSettings(), sentence_holdback: int = 16):
        self.pool = Pool(urls, settings)
        self.settings, self.stop_ids, self.stop_text = settings, set(stop_ids), stop_text
        self.sentence_holdback = sentence_holdback
        self._tokenizer = tokenizer  # used on the event loop only, as the prompt builder's is
        self._ids = itertools.count(1)
        self._tasks: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Task]] = {}
        # One TLS context for all: each request has a client of its own (below), and a fresh
        # context would load the CA bundle again every time.
        self._ssl = httpx.create_ssl_context()
        self._waiting = self._active = 0  # waiting for a first token; streaming
        self._started = self._stopped = False
        self.metrics = EngineMetrics()

    # --- the EngineClient face ----------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._started and not self._stopped

    @property
    def ready(self) -> bool:
        return self.running and self.pool.any_up

    @property
    def reason(self) -> str:
        """Why not ready ('' when ready): for /readyz and the log."""
        if not self._started:
            return "the remote engine client has not started"
        if self._stopped:
            return "the remote engine client has stopped"
        return self.pool.reason

    @property
    def active(self) -> int:
        return self._active

    @property
    def waiting(self) -> int:
        return self._waiting

    @property
    def tokens_generated(self) -> int:
        return self.metrics.tokens_generated

    def stats(self) -> EngineStats:
        return self.metrics.snapshot(queue_depth=self._waiting, active_batch=self._active)

    def start(self) -> None:
        """Ask every engine once, then poll them: returns at once even if none is up (``ready``
        and ``reason`` say so, and requests wait for one through their retries)."""
        self.pool.start()
        self._started = True
        if not self.pool.any_up:
            log.warning("no remote engine is up yet: %s", self.pool.reason)

    def wait_ready(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.ready:
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def stop(self) -> None:
        self._stopped = True
        self.pool.stop()
        for request_id in list(self._tasks):
            self.abort(request_id)

    def submit(self, prompt: list[int], params: GenerationParams) -> Reply:
        if not self.running:
            raise EngineError(self.reason)
        params.validate()  # here, so a bad request fails in its caller
        loop = asyncio.get_running_loop()
        reply = Reply(self.abort, next(self._ids))
        request = _Request(reply, params, self.sentence_holdback, self._tokenizer)
        task = loop.create_task(self._run(request, list(prompt)), name=f"joey-remote-{reply.id}")
        self._tasks[reply.id] = (loop, task)
        task.add_done_callback(lambda _: self._tasks.pop(reply.id, None))
        return reply

    def abort(self, request_id: int) -> None:
        """Cancel the request's task, which closes its HTTP stream (any thread)."""
        if (entry := self._tasks.get(request_id)) is None:
            return  # ended already
        loop, task = entry
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            task.cancel()
        elif not loop.is_closed():
            loop.call_soon_threadsafe(task.cancel)

    # --- one request --------------------------------------------------------------------------
    def _client(self) -> httpx.AsyncClient:
        """A client for one request. Not a pool shared by all: a pool's connections belong to one
        event loop, a cancelled stream's connection cannot be reused anyway, and a reply lasts
        far longer than opening a connection takes."""
        s = self.settings
        # Reads are timed per event by _attempt (the first token may wait in the engine's queue).
        return httpx.AsyncClient(timeout=httpx.Timeout(None, connect=s.connect_timeout_s, write=s.connect_timeout_s),
                                 headers=self.pool.headers, verify=self._ssl)

    async def _run(self, request: _Request, prompt: list[int]) -> None:
        self._waiting += 1
        end = ReplyEnd(FinishReason.ERROR, 0, "the request did not run")
        try:
            end = await self._with_retries(request, prompt)
        except asyncio.CancelledError:
            end = ReplyEnd(FinishReason.CANCELLED, len(request.stream))
        except Exception as exc:  # noqa: BLE001 - whatever went wrong, the reply ends, once
            log.exception("remote request failed")
            end = ReplyEnd(FinishReason.ERROR, len(request.stream), f"{type(exc).__name__}: {exc}")
        finally:
            if request.answered:
                self._active -= 1
            else:
                self._waiting -= 1
            self.metrics.ended(end.reason.value)
            request.reply.queue.put_nowait(end)

    async def _with_retries(self, request: _Request, prompt: list[int]) -> ReplyEnd:
        s = self.settings
        body = completion_body(prompt, request.params, s.model, self.stop_ids, self.stop_text)
        for attempt in itertools.count():
            backend = self.pool.choose()
            backend.in_flight += 1
            try:
                return await self._attempt(backend, body, request)
            except EngineUnavailable as exc:
                if attempt >= s.retries:
                    log.warning("giving up on a request after %d tries: %s", attempt + 1, exc)
                    return ReplyEnd(FinishReason.ERROR, 0, f"{exc} (after {attempt + 1} tries)")
                wait = exc.retry_after if exc.retry_after is not None else s.retry_backoff_s * 2 ** attempt
                log.info("engine %s unavailable (%s); trying again in %.2f s", backend.url, exc, wait)
            except RemoteError as exc:
                log.warning("remote reply failed: %s", exc)
                return ReplyEnd(FinishReason.ERROR, len(request.stream), str(exc))
            finally:
                backend.in_flight -= 1
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def _attempt(self, backend: Backend, body: dict, request: _Request) -> ReplyEnd:
        """One streamed POST. Raises EngineUnavailable (before the first token: may be retried),
        EngineRefused or StreamBroken."""
        s, loop, url = self.settings, asyncio.get_running_loop(), backend.url
        finish: Delta | None = None
        usage: dict = {}
        try:
            async with asyncio.timeout(s.first_token_timeout_s) as deadline, self._client() as client:
                async with client.stream("POST", f"{url}/completions", json=body) as response:
                    if response.status_code != 200:
                        text = error_text((await response.aread()).decode(errors="replace"))
                        if response.status_code in RETRYABLE_STATUS:
                            raise EngineUnavailable(f"the engine at {url} answered {response.status_code}: {text}",
                                                    retry_after(response.headers))
                        raise EngineRefused(f"the engine at {url} refused the request ({response.status_code}): {text}")
                    async for delta in deltas(response.aiter_lines()):
                        self._take(request, delta)
                        usage = delta.usage or usage
                        if request.answered:
                            deadline.reschedule(loop.time() + s.token_timeout_s)
                        if delta.finish_reason:
                            finish = delta  # the usage event and [DONE] follow: read on, so the connection is kept
        except TimeoutError:
            if not request.answered:
                raise StreamBroken(f"no first token from the engine at {url} within "
                                   f"{s.first_token_timeout_s:g} s (first_token_timeout_s)") from None
            raise StreamBroken(f"the engine at {url} sent nothing for {s.token_timeout_s:g} s "
                               f"(token_timeout_s)") from None
        except httpx.TransportError as exc:
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
                backend.mark_down(f"the engine at {url} does not answer: {reason}")
            if not request.answered:
                raise EngineUnavailable(f"the engine at {url} failed before the reply started: {reason}") from exc
            backend.mark_down(f"the engine at {url} dropped a reply: {reason}")
            raise StreamBroken(f"the engine at {url} dropped the reply: {reason}") from exc
        if finish is None:
            raise StreamBroken(f"the stream from the engine at {url} ended without a finish reason")
        return self._finish(request, finish, usage)

    def _take(self, request: _Request, delta: Delta) -> None:
        """One event's tokens (or text) into the reply's chunks."""
        if delta.token_ids is None and delta.text and not request.answered:
            request.by_text = True
        tokens = [t for t in delta.token_ids or () if t not in self.stop_ids]
        got = bool(tokens) or (request.by_text and bool(delta.text)) or delta.finish_reason is not None
        if got and not request.answered:
            request.answered = True
            self._waiting -= 1
            self._active += 1
            self.metrics.first_token(time.perf_counter() - request.submitted)
        if request.by_text:
            if delta.text:
                request.emit(request.text_only.push_text(delta.text))
                self.metrics.generated()
            return
        for token in tokens:
            request.emit(request.decoder.push(token))
            self.metrics.generated()

    def _finish(self, request: _Request, finish: Delta, usage: dict) -> ReplyEnd:
        reason = _FINISH.get(finish.finish_reason)
        stream = request.stream
        if reason is None:  # "abort" (the engine shut down) or anything unknown
            raise StreamBroken(f"the engine ended the reply with finish reason {finish.finish_reason!r}")
        if reason is FinishReason.LENGTH:
            request.emit(stream.finish_at_sentence())
        else:
            text = stream.text()
            cut = self.stop_text and isinstance(finish.stop_reason, str) and self.stop_text in text
            request.emit(stream.flush(text[:text.index(self.stop_text)] if cut else None))
        tokens = len(stream)
        if request.by_text:
            tokens = int(usage.get("completion_tokens") or tokens)
        return ReplyEnd(reason, tokens)
