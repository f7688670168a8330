"""Per-chat turns: one chat's updates are handled one at a time, in update_id order.

The Application runs updates concurrently (``concurrent_updates(True)``), so different chats
never wait for each other. Within a chat, each update takes a ticket when it is received (in
``update_id`` order, before any task runs) and its handler waits for its turn. This does not
rely on the order in which asyncio happens to start the handler tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque


class ChatOrder:
    def __init__(self) -> None:
        self._queues: dict[int, deque[int]] = {}
        self._ready: dict[int, asyncio.Event] = {}

    def register(self, chat_id: int, update_id: int) -> None:
        """Take a ticket for ``update_id``; call in update_id order."""
        if update_id in self._ready:
            return
        queue = self._queues.setdefault(chat_id, deque())
        self._ready[update_id] = asyncio.Event()
        queue.append(update_id)
        if queue[0] == update_id:
            self._ready[update_id].set()

    def busy(self, chat_id: int) -> bool:
        """True while the chat has an update being handled or waiting."""
        return chat_id in self._queues

    def waiting(self, chat_id: int) -> int:
        """How many of the chat's updates wait behind the one whose turn it is."""
        return max(0, len(self._queues.get(chat_id, ())) - 1)

    @contextlib.asynccontextmanager
    async def turn(self, chat_id: int, update_id: int):
        self.register(chat_id, update_id)  # a no-op for updates ticketed on receipt
        try:
            await self._ready[update_id].wait()
            yield
        finally:
            queue = self._queues[chat_id]
            queue.remove(update_id)
            del self._ready[update_id]
            if queue:
                self._ready[queue[0]].set()
            else:
                del self._queues[chat_id]
