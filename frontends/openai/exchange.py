"""One request's conversation on the hub: a session of its own, opened with the conversation so
far, asked once, and forgotten when the request ends.

The API is stateless (each request carries the whole conversation), so a session lives exactly
as long as its request: it is opened with ``kept=False`` (never written to the store, never
relayed to other replicas). It belongs to its caller (an API key, or a loopback address without
keys), so one caller's replies in flight are capped by ``max_replies_per_client`` and take their
turns at the engine beside everyone else's (backend/fair_queue.py). Everything else is the session API every frontend uses: ``Hub.send`` admits
the message (``server_busy``), the engine batches it with everyone's, the reply streams as
``chunk`` frames, and ``Hub.close`` cancels a reply the client no longer wants, which frees its
engine slot before the next step. The prefix cache sees the same prompt a WebSocket session of
this conversation would build, so re-sent history is copied, not computed again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
from collections.abc import AsyncIterator

from backend import protocol as p
from frontends.openai.conversation import Conversation
from frontends.openai.errors import APIError, from_protocol
from frontends.openai.request import ChatRequest
from frontends.openai.stops import StopWatch
from model.sampling import GenerationParams

log = logging.getLogger("joey.openai")

SMALLEST_TOP_P = 1e-6  # top_p 0 asks for the likeliest token alone; the sampler keeps the best one always


def sampling(chat: ChatRequest, server: GenerationParams) -> GenerationParams:
    """The server's sampling with the request's choices applied; never longer than the server's replies."""
    longest = min(chat.max_tokens or server.max_new_tokens, server.max_new_tokens)
    return dataclasses.replace(
        server, max_new_tokens=longest, min_new_tokens=min(server.min_new_tokens, longest),
        temperature=server.temperature if chat.temperature is None else chat.temperature,
        top_p=server.top_p if chat.top_p is None else max(chat.top_p, SMALLEST_TOP_P),
        seed=None if chat.seed is None else chat.seed % 2**63)


class Exchange:
    def __init__(self, hub, conversation: Conversation, params: GenerationParams, stops: tuple[str, ...] = (),
                 caller: str | None = None):
        self.hub, self.conversation, self.params, self.caller = hub, conversation, params, caller
        self.id = "chatcmpl-" + secrets.token_hex(12)  # also the message id the hub answers
        self.outbox: asyncio.Queue = asyncio.Queue()
        self.watch = StopWatch(stops)
        self.session = None
        self.finish_reason: str | None = None  # stop or length, once the reply has ended
        self.prompt_tokens = self.completion_tokens = 0

    def start(self) -> None:
        """Open the session and send the message. Raises APIError for the hub's refusals
        (server_busy, server_full, server_restarting) and leaves no session behind."""
        conversation, hub = self.conversation, self.hub
        try:
            self.session = hub.open(conversation.user_name, self.caller, conversation.history, kept=False)
            hub.attach(self.session, self.outbox)
            self.outbox.get_nowait()  # the session frame: nothing in it is for this API
            hub.send(self.session, self.id, conversation.text, conversation.name, self.params)
        except p.ProtocolError as exc:
            self.close()
            raise from_protocol(exc) from None
        self.prompt_tokens = self._prompt_tokens()

    async def text(self) -> AsyncIterator[str]:
        """The reply's text as it streams, cut at a stop sequence; then ``finish_reason`` and the
        token counts are set. Raises APIError if the reply fails or the server stops."""
        while True:
            frame = await self.outbox.get()
            if frame["type"] == "chunk":
                if released := self.watch.feed(frame["text"]):
                    yield released
                if self.watch.hit:
                    self.hub.cancel(self.session)  # its reply_end (cancelled) follows within a step
            elif frame["type"] == "reply_end":
                self._ended(frame)
                if rest := self.watch.flush():
                    yield rest
                return
            elif frame["type"] == "error" and frame["code"] != p.ErrorCode.MODEL_ERROR.value:
                # A model error is followed by its reply_end (finish "error"), which says it.
                raise from_protocol(p.ProtocolError(p.ErrorCode(frame["code"]), frame["message"]))

    async def collect(self) -> str:
        return "".join([text async for text in self.text()])

    def close(self) -> None:
        """Forget the session; a reply still running is cancelled. Safe to call more than once."""
        if self.session is not None:
            self.hub.close(self.session)

    def _ended(self, end: dict) -> None:
        if self.watch.hit:  # cancelled by us, at the stop sequence
            # A cancelled stream has no count of its own: the text generated until then, tokenized.
            self.finish_reason, self.completion_tokens = "stop", self._tokens(end["text"])
        elif end["finish_reason"] in ("stop", "length"):
            self.finish_reason, self.completion_tokens = end["finish_reason"], end["tokens"]
        elif end["finish_reason"] == "cancelled":
            raise APIError(503, "the reply was cancelled: the server is stopping", "server_restarting", retry_after=5)
        else:
            raise APIError(500, "Joey could not answer", "model_error")

    def _prompt_tokens(self) -> int:
        """The prompt's length as the generator builds it (the same turns and budget as the hub's)."""
        generator = self.hub.generator
        build = getattr(generator, "prompt_ids", None)
        if build is None:
            return 0
        try:
            return len(build(self.session.turns(generator.bot_name), self.params))
        except Exception:  # usage is a report; the reply itself is the hub's to fail
            log.exception("could not count the prompt's tokens")
            return 0

    def _tokens(self, text: str) -> int:
        tokenizer = getattr(self.hub.generator, "tokenizer", None)
        return len(tokenizer.encode(text, add_special_tokens=False)) if tokenizer is not None and text else 0
