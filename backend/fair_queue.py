"""Fair turns at the engine: replies take engine slots owner by owner, not first come first served.

At most ``slots`` replies generate at once. The others wait in one queue per owner (a client
address, or the session itself when its frontend speaks for many people, such as the Telegram
bridge), and a freed slot goes to the next owner in a round, so one owner with many replies
waiting delays another owner's reply by at most one turn each, however early it queued them.
Within one owner, replies keep their order.

A waiter that is cancelled leaves its place; one that is cancelled in the moment it was given a
slot hands the slot on, so no slot is ever lost.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class FairQueue:
    def __init__(self, slots: int, on_turn=lambda: None):
        self.slots = slots
        self.on_turn = on_turn  # called when a waiter gets its slot: the pace the queue moves at
        self.running = 0
        self._rounds: dict[str, deque[asyncio.Future]] = {}  # insertion order is the round's order

    @property
    def waiting(self) -> int:
        return sum(len(q) for q in self._rounds.values())

    @asynccontextmanager
    async def turn(self, owner: str) -> AsyncIterator[None]:
        """Hold one slot for the body; wait fairly for it first."""
        if self.running < self.slots and not self._rounds:
            self.running += 1
        else:
            granted = asyncio.get_running_loop().create_future()
            self._rounds.setdefault(owner, deque()).append(granted)
            try:
                await granted
            except asyncio.CancelledError:
                if granted.done() and not granted.cancelled():
                    self._release()  # given a slot as it was cancelled: pass it on
                else:
                    self._leave(owner, granted)
                raise
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        self.running -= 1
        while self.running < self.slots and self._rounds:
            owner = next(iter(self._rounds))
            queue = self._rounds.pop(owner)
            granted = queue.popleft()
            if queue:
                self._rounds[owner] = queue  # its next reply waits for the next round
            if not granted.cancelled():
                self.running += 1
                granted.set_result(None)
                self.on_turn()

    def _leave(self, owner: str, granted: asyncio.Future) -> None:
        queue = self._rounds.get(owner)
        if queue is not None and granted in queue:
            queue.remove(granted)
            if not queue:
                del self._rounds[owner]
