"""Sessions in Redis (``state_url=redis://...``), so several server replicas share them.

One key per session, ``joey:session:<id>``: the same JSON row the SQLite store keeps, with the
wall-clock time of the save, expiring after ``session_idle_s`` (Redis forgets idle sessions by
itself). A replica reads a session when a client resumes it there, so a client that drops from
replica A can resume on replica B with its history and its answered message ids (a resent id is
still not answered twice). Calls are synchronous, like SQLite's: on loopback or a LAN a GET or
SET takes well under a millisecond.
"""

from __future__ import annotations

import json
import time

from backend.rows import session_row

PREFIX = "joey:session:"


class RedisStore:
    shared = True  # other replicas write too: the hub reads a session when it is resumed

    def __init__(self, url: str, ttl_s: float):
        import redis

        self.db = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self.db.ping()  # fail at start, in one line, when Redis is not there

    def save(self, session) -> None:
        row = {**session_row(session), "saved_at": time.time()}
        self.db.set(PREFIX + session.id, json.dumps(row), px=self.ttl_ms)

    def get(self, session_id: str) -> dict | None:
        raw = self.db.get(PREFIX + session_id)
        if raw is None:
            return None
        row = json.loads(raw)
        row["idle_s"] = time.time() - row.pop("saved_at")
        return row

    def delete(self, session_id: str) -> None:
        self.db.delete(PREFIX + session_id)

    def load(self, max_idle_s: float) -> list[dict]:
        return []  # shared sessions are read when resumed, not all at start

    def close(self) -> None:
        self.db.close()
