"""Admission: who may start a session or a reply now. Every refusal is a typed error with retry_after.

- ``rate_limited``: a session sent more than ``rate_limit_messages`` in ``rate_limit_window_s``.
- ``server_busy``: more than ``max_queued_replies`` replies already wait for an engine slot
  (``max_batch`` replies decode at once). A refusal now beats an answer in minutes.
- ``too_many_sessions``: one client address holds ``max_sessions_per_client`` sessions.
- ``server_full``: the server holds ``max_sessions`` sessions.

The hub is the only submitter to the engine, so it counts the queue itself: replies in flight
beyond ``max_batch`` are waiting. None of these checks has a side effect unless it admits.
"""

from __future__ import annotations

import math
import time

from backend import protocol as p
from backend.config import Config
from backend.session import Session

# A first guess of how long one reply holds an engine slot, until replies have been measured.
INITIAL_REPLY_S = 5.0


class Admission:
    def __init__(self, config: Config):
        self.config = config
        self.reply_s = INITIAL_REPLY_S  # moving average of reply durations, for retry_after

    def queued(self, replies_in_flight: int) -> int:
        return max(0, replies_in_flight - self.config.max_batch)

    def check_capacity(self, replies_in_flight: int, message_id: str | None) -> None:
        queued = self.queued(replies_in_flight + 1)  # counting the one asking to start
        if queued > self.config.max_queued_replies:
            # Slots free up max_batch at a time, each after about one reply's duration.
            waves = math.ceil(queued / max(1, self.config.max_batch))
            retry = min(60.0, max(1.0, self.reply_s * waves))
            raise p.ProtocolError(p.ErrorCode.SERVER_BUSY, f"Joey has a queue; try again in {retry:.0f} s",
                                  message_id, retry_after=retry)

    def check_rate(self, session: Session, message_id: str | None, relay=None) -> None:
        """Refuse or count one message of ``session`` against its rate window (on every replica
        together when a ``relay`` shares it)."""
        window = self.config.rate_limit_window_s
        if relay is not None:
            now = time.time()
            sent = relay.sent_times(session.id, now, window)
        else:
            now = time.monotonic()
            while session.sent_times and session.sent_times[0] <= now - window:
                session.sent_times.popleft()
            sent = session.sent_times
        if len(sent) >= self.config.rate_limit_messages:
            retry = min(sent) + window - now
            raise p.ProtocolError(p.ErrorCode.RATE_LIMITED, f"too many messages; retry in {retry:.0f} s",
                                  message_id, retry_after=max(0.0, retry))
        if relay is not None:
            relay.count_sent(session.id, now, window)
        else:
            session.sent_times.append(now)

    def check_sessions(self, total: int, of_client: int) -> None:
        if of_client >= self.config.max_sessions_per_client:
            raise p.ProtocolError(p.ErrorCode.TOO_MANY_SESSIONS,
                                  "this address holds too many sessions; resume one instead of opening more",
                                  retry_after=self.config.fresh_session_idle_s)
        if total >= self.config.max_sessions:
            raise p.ProtocolError(p.ErrorCode.SERVER_FULL, "too many sessions; try again later", retry_after=60)

    def reply_ended(self, duration_s: float) -> None:
        self.reply_s = 0.9 * self.reply_s + 0.1 * duration_s
