"""Replies across replicas, through Redis: the replica that generates a reply publishes its frames;
a replica where the client resumed relays them live, with exact ``seq`` replay.

Keys and channels (next to backend/redis_store.py's ``joey:session:<id>``):

- ``joey:live:<id>``: a list of the live reply's ``reply_start`` and chunks, for replay after a
  resuming client's ``last_seq``. Written by the owner, deleted when the reply ends.
- ``joey:frames:<id>``: pub/sub, every frame of the live reply, ``reply_end`` last. The owner
  saves the session before it publishes ``reply_end``, so a follower that reads the session
  then sees the finished reply.
- ``joey:sent:<id>``: a sorted set of the session's message times, so its rate limit holds on
  every replica together.
- ``joey:control``: pub/sub to all replicas: ``cancel`` (stop your reply of session X) and
  ``takeover`` (a client resumed session X elsewhere: tell your connection and let go).

A server alone has a :class:`LocalRelay`: the same interface, with nothing to relay and each
session's rate window kept in memory, so the hub has one code path for one replica or many.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger("joey.relay")

LIVE, FRAMES, CONTROL, SENT = "joey:live:", "joey:frames:", "joey:control", "joey:sent:"
# Refreshed by every frame: a crashed owner's followers give up this long after its last one
# (a live reply sends frames far more often, even while it waits its turn: max_queue_wait_s).
LIVE_TTL_MS = 120_000
# Published instead of a reply_end when a restart's grace ran out first; never sent to a client.
INTERRUPTED = "reply_interrupted"


class RateWindowed(Protocol):
    """What a rate window is kept for: a session, or the OpenAI API's caller."""

    id: str
    sent_times: deque[float]


class LocalRelay:
    """One replica: no frame leaves it, and a session's rate window is its own ``sent_times``."""

    shared = False  # as store.shared: no other replica reads what this one writes

    def published(self, session_id: str, frame: dict) -> None:
        pass

    def live_frames(self, session_id: str) -> list[dict]:
        return []

    async def follow(self, session_id: str, after_seq: int, deliver: Callable[[dict], None]) -> dict | None:
        return None

    @staticmethod
    def now() -> float:
        return time.monotonic()  # one process: a clock that never jumps

    def sent_times(self, session: RateWindowed, now: float, window_s: float) -> list[float]:
        while session.sent_times and session.sent_times[0] <= now - window_s:
            session.sent_times.popleft()
        return list(session.sent_times)

    def count_sent(self, session: RateWindowed, now: float, window_s: float) -> None:
        session.sent_times.append(now)

    def send(self, action: str, session_id: str) -> None:
        pass

    def start(self, on_control: Callable[[str, str], None]) -> None:
        pass

    async def stop(self) -> None:
        pass


class Relay:
    shared = True  # other replicas follow its replies, reading their sessions from the shared store

    def __init__(self, url: str):
        import redis
        import redis.asyncio

        self.sync = redis.Redis.from_url(url, socket_timeout=5)
        self.aio = redis.asyncio.Redis.from_url(url)
        self.replica = secrets.token_hex(8)  # tells this replica's own control messages apart
        self._listener: asyncio.Task | None = None

    # --- the owner's side ---------------------------------------------------------------------
    def published(self, session_id: str, frame: dict) -> None:
        """Record and broadcast one frame of a reply generated here."""
        pipe = self.sync.pipeline()
        if frame["type"] == "reply_start":
            pipe.delete(LIVE + session_id)
        if frame["type"] in ("reply_start", "chunk"):
            pipe.rpush(LIVE + session_id, json.dumps(frame))
            pipe.pexpire(LIVE + session_id, LIVE_TTL_MS)
        else:
            pipe.delete(LIVE + session_id)
        pipe.publish(FRAMES + session_id, json.dumps(frame))
        pipe.execute()

    # --- a follower's side --------------------------------------------------------------------
    def live_frames(self, session_id: str) -> list[dict]:
        return [json.loads(f) for f in self.sync.lrange(LIVE + session_id, 0, -1)]

    async def follow(self, session_id: str, after_seq: int, deliver: Callable[[dict], None]) -> dict | None:
        """Deliver the live reply's frames after ``after_seq``, in order, once each, until its
        ``reply_end`` (returned). None when the reply ended before we could listen."""
        pubsub = self.aio.pubsub()
        await pubsub.subscribe(FRAMES + session_id)
        try:
            last = after_seq
            backlog = await self.aio.lrange(LIVE + session_id, 0, -1)  # read after subscribing: no gap
            if not backlog:
                return None
            for frame in map(json.loads, backlog):
                if frame["seq"] > last:
                    deliver(frame)
                    last = frame["seq"]
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is None:
                    if await self.aio.exists(LIVE + session_id):
                        continue
                    # The list goes with the reply_end in one transaction: a last look for it.
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is None:
                        return None  # the owner went away without a reply_end
                frame = json.loads(message["data"])
                if frame["type"] == INTERRUPTED:
                    return frame
                if frame["seq"] > last:
                    deliver(frame)
                    last = frame["seq"]
                if frame["type"] == "reply_end":
                    return frame
        finally:
            await pubsub.aclose()

    # --- a session's rate window, shared ------------------------------------------------------
    @staticmethod
    def now() -> float:
        return time.time()  # replicas on several machines share one window: the wall clock

    def sent_times(self, session: RateWindowed, now: float, window_s: float) -> list[float]:
        """Wall-clock times of the session's messages within the window, on every replica."""
        key = SENT + session.id
        pipe = self.sync.pipeline()
        pipe.zremrangebyscore(key, "-inf", now - window_s)
        pipe.zrange(key, 0, -1, withscores=True)
        return [score for _, score in pipe.execute()[1]]

    def count_sent(self, session: RateWindowed, now: float, window_s: float) -> None:
        key = SENT + session.id
        pipe = self.sync.pipeline()
        pipe.zadd(key, {f"{now:.6f}-{secrets.token_hex(4)}": now})
        pipe.pexpire(key, max(1, int(window_s * 1000)))
        pipe.execute()

    # --- control ------------------------------------------------------------------------------
    def send(self, action: str, session_id: str) -> None:
        self.sync.publish(CONTROL, json.dumps({"action": action, "session_id": session_id, "from": self.replica}))

    def start(self, on_control: Callable[[str, str], None]) -> None:
        self._listener = asyncio.get_running_loop().create_task(self._listen(on_control))

    async def _listen(self, on_control: Callable[[str, str], None]) -> None:
        pubsub = self.aio.pubsub()
        await pubsub.subscribe(CONTROL)
        try:
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
                if message is None:
                    continue
                data = json.loads(message["data"])
                if data["from"] != self.replica:
                    try:
                        on_control(data["action"], data["session_id"])
                    except Exception:
                        log.exception("control message %s failed", data["action"])
        finally:
            await pubsub.aclose()

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        await self.aio.aclose()
        self.sync.close()
