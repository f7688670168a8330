"""The OpenAI-compatible chat API as a frontend: ``joey serve --openai`` (or ``--frontends openai``).

It is a plugin like the Telegram one, registered under ``joey_chat.frontends``, and it serves
HTTP: its ``routes`` (routes.py) are mounted at /v1 when the app is created, and answer once
:meth:`start` has run. Each request becomes an :class:`~frontends.openai.exchange.Exchange` on the
hub's session API, so the engine, its batching, the admission bounds and /metrics are the same
ones every other frontend goes through. docs/openai.md is the guide.
"""

from __future__ import annotations

import logging
import time
from typing import ClassVar

from backend import protocol as p
from backend.config import Config
from frontends.openai.access import Access, Caller
from frontends.openai.conversation import to_conversation
from frontends.openai.errors import APIError, from_protocol, not_ready
from frontends.openai.exchange import Exchange, sampling
from frontends.openai.request import ChatRequest
from frontends.openai.routes import build_routes

log = logging.getLogger("joey.openai")


class OpenAIFrontend:
    name: ClassVar[str] = "openai"

    def __init__(self, config: Config, hub):
        self.config, self.hub = config, hub
        self.access = Access(config)
        self.created = int(time.time())  # the models' "created"

    @classmethod
    def from_config(cls, config: Config, hub) -> "OpenAIFrontend":
        return cls(config, hub)

    @classmethod
    def routes(cls, config: Config) -> list:
        return build_routes(cls.name)

    async def start(self) -> None:
        log.info("serving the OpenAI-compatible API at /v1, model %r (%s)", self.model_id,
                 "API keys required" if self.access.keyed else "no keys: loopback clients only")

    async def stop(self) -> None:
        """Nothing of its own to end: the hub's stop, which follows, ends the replies in flight,
        and each request answers 503 (a stream, an error event)."""

    @property
    def model_id(self) -> str:
        """The served character, as a model name: ``joey``."""
        return self.hub.generator.bot_name.lower()

    def check_model(self, model: str) -> None:
        if model != self.model_id:
            raise APIError(404, f"the model {model[:64]!r} does not exist; this server serves {self.model_id!r}",
                           "model_not_found", "model")

    def begin(self, chat: ChatRequest, caller: Caller) -> Exchange:
        """Start answering ``chat`` for ``caller``: an Exchange whose reply is on its way, or an
        APIError (404, 400, 413, 429, 503) with nothing started and nothing kept."""
        self.check_model(chat.model)
        if not self.hub.generator.ready:  # warming up, or the engine failed: as /readyz says
            raise not_ready()
        conversation = to_conversation(chat, self.config.max_message_chars, self.config.max_name_chars)
        try:  # the engine's queue first, so a full queue does not also cost the caller a request
            self.hub.admission.check_capacity(len(self.hub.replies), None)
        except p.ProtocolError as exc:
            raise from_protocol(exc) from None
        self.access.count(caller, self.hub.relay)
        exchange = Exchange(self.hub, conversation, sampling(chat, self.hub.params), chat.stop, caller.id)
        exchange.start()
        return exchange
