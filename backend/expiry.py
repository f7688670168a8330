"""Session expiry: the hub forgets detached, idle sessions, so abandonment cannot fill the table.

Unused sessions (nothing ever said) go ``fresh_session_idle_s`` after their client left, used ones
after ``session_idle_s``. A session with a client attached or a reply in flight never expires.
"""

from __future__ import annotations

import asyncio
import logging
import time

log = logging.getLogger("joey.hub")


def idle_limit(session, config) -> float:
    return config.session_idle_s if session.used else config.fresh_session_idle_s


def expires_in(session, config, now: float) -> float:
    """Seconds until ``session`` may expire: its full idle limit while a client or a reply holds it."""
    if session.outbox is not None or session.answering:
        return idle_limit(session, config)
    return max(0.0, idle_limit(session, config) - (now - session.last_active))


def reap(hub) -> int:
    """Forget the hub's stale sessions (and delete them from a store of its own). Returns how many."""
    now, config = time.monotonic(), hub.config
    stale = [s for s in hub.sessions.values() if s.outbox is None and not s.answering and
             now - s.last_active > idle_limit(s, config)]
    for session in stale:
        session.closed = True
        del hub.sessions[session.id]
        if hub.store is not None and session.used and not hub.store.shared:  # Redis expires its own keys
            try:
                hub.store.delete(session.id)
            except Exception:
                log.exception("could not delete session %s", session.id[:8], extra={"session": session.id})
    hub.metrics.sessions.set(len(hub.sessions))
    return len(stale)


async def reap_forever(hub) -> None:
    shortest = min(hub.config.session_idle_s, hub.config.fresh_session_idle_s)
    while True:
        await asyncio.sleep(min(30.0, max(0.05, shortest / 4)))
        if n := reap(hub):
            log.info("expired %d idle sessions", n)
