"""One Joey client per Telegram chat: created on first use, resumed from the store, closed when idle.

A chat's session id and token live in the store, so a client closed here (too many open
chats) or lost in a restart resumes the same conversation when the chat speaks again. While
the server is down, every try to reach it waits at most ``max_backoff_s``, connecting and
reconnecting alike, so a waiting chat is answered soon after the server is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from typing import Callable

from client import ConnectionLost, JoeyClient, backoff_s
from client.client import RECONNECT_BASE_S
from frontends.telegram.chat_store import ChatStore
from frontends.telegram.ordering import ChatOrder

log = logging.getLogger("joey.telegram")


class JoeyChats:
    def __init__(self, store: ChatStore, transport_factory: Callable[[], object], order: ChatOrder,
                 max_open: int, max_backoff_s: float):
        self.store, self.transport_factory, self.order = store, transport_factory, order
        self.max_open, self.max_backoff_s = max_open, max_backoff_s
        self.clients: OrderedDict[int, JoeyClient] = OrderedDict()
        self._down_since: float | None = None  # when the server stopped answering (logged once per outage)

    @property
    def down(self) -> bool:
        """True while the Joey server is known to be unreachable."""
        return self._down_since is not None

    def is_open(self, chat_id: int) -> bool:
        return self.store.current_chat(chat_id) in self.clients

    async def client(self, chat_id: int, name: str | None) -> JoeyClient:
        """The chat's Joey client, connected; created (and its session resumed) on first use.

        ``name`` names the person only when a new session opens; in groups each ``ask`` names
        its own speaker, which is what counts there.
        """
        chat_id = self.store.current_chat(chat_id)
        client = self.clients.get(chat_id)
        if client is not None:
            self.clients.move_to_end(chat_id)
            return client
        saved = self.store.session_for(chat_id)
        client = JoeyClient(self.transport_factory(), name=name, max_backoff_s=self.max_backoff_s,
                            session_id=saved[0] if saved else None, token=saved[1] if saved else None)

        def on_session(frame: dict) -> None:  # every open and resume, so a new session is remembered
            self.store.save_session(self.store.current_chat(chat_id), frame["session_id"], frame["token"])

        client.on_session = on_session
        failures = 0
        while True:
            try:
                await client.start()
                break
            except ConnectionLost as exc:
                failures += 1
                if self._down_since is None:
                    self._down_since = time.monotonic()
                    log.warning("Joey server unreachable (%s); messages wait, trying every %.1f s at most",
                                exc, self.max_backoff_s)
                await asyncio.sleep(backoff_s(RECONNECT_BASE_S, failures, self.max_backoff_s))
        if self._down_since is not None:
            log.info("Joey server reachable again after %.0f s", time.monotonic() - self._down_since)
            self._down_since = None
        self.clients[chat_id] = client
        await self._evict()
        return client

    def migrate(self, old_chat_id: int, new_chat_id: int) -> None:
        """A group became a supergroup: its session (and open client) now belong to the new id."""
        self.store.migrate(old_chat_id, new_chat_id)
        if old_chat_id in self.clients and new_chat_id not in self.clients:
            self.clients[new_chat_id] = self.clients.pop(old_chat_id)

    async def _evict(self) -> None:
        """Close the least recently used idle clients beyond max_open (they resume later)."""
        idle = [c for c in self.clients if not self.order.busy(c)]
        # Taken out before the first await: chats opening meanwhile must not pick the same ones.
        closing = [self.clients.pop(chat_id) for chat_id in idle[:max(0, len(self.clients) - self.max_open)]]
        for client in closing:
            with contextlib.suppress(Exception):
                await client.close()

    async def close(self) -> None:
        for client in self.clients.values():
            with contextlib.suppress(Exception):
                await client.close()
        self.clients.clear()
