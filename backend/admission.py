"""Admission: who may start a session or a reply now. Every refusal is a typed error with retry_after.

- ``rate_limited``: a session sent more than ``rate_limit_messages`` in ``rate_limit_window_s``.
- ``server_busy``: the reply would wait longer than ``max_queue_wait_s`` for an engine slot
  (estimated: ``max_batch`` slots, each freed after a reply's recent average hold), or more than
  ``max_queued_replies`` wait already. A refusal now, with a truthful ``retry_after``, beats a
  first token in minutes. Waiting replies take their turns fairly (backend/fair_queue.py).
- ``server_busy`` too: one client address already has ``max_replies_per_client`` replies in
  flight, so no address can take the engine from the others (a trusted bridge or an
  in-process frontend, which speak for many people, is not one address).
- ``too_many_sessions``: one client address holds ``max_sessions_per_client`` sessions.
- ``server_full``: the server holds ``max_sessions`` sessions.
- ``invalid_field``: a frontend's sampling parameters do not validate. They are capped first: a
  reply longer than the server's ``max_new_tokens`` is never made.

The hub is the only submitter to the engine, so it counts the queue itself: replies in flight
beyond ``max_batch`` are waiting. None of these checks has a side effect unless it admits.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import deque
from collections.abc import Collection

from backend import protocol as p
from backend.config import Config
from backend.expiry import expires_in
from backend.relay import LocalRelay, RateWindowed, Relay
from backend.session import Session
from model.sampling import GenerationParams

# A first guess of how long one reply holds an engine slot, until replies have been measured.
INITIAL_REPLY_S = 5.0
PACE_WINDOW_S = 60.0  # turns older than this say nothing about the queue's pace now
LOCAL = LocalRelay()  # keeps nothing itself: a window lives in its session's sent_times


class Admission:
    def __init__(self, config: Config):
        self.config = config
        self.reply_s = INITIAL_REPLY_S  # moving average of how long a reply holds its engine slot
        self.ended = 0  # replies measured: until a batch's worth, reply_s is mostly the guess
        self.promised = 0.0  # monotonic time the last refused reply was told to come back
        self.turns: deque[float] = deque(maxlen=config.max_batch)  # when waiting replies got slots

    def queued(self, replies_in_flight: int) -> int:
        return max(0, replies_in_flight - self.config.max_batch)

    def check_capacity(self, replies_in_flight: int, message_id: str | None) -> None:
        """May one more reply wait for an engine slot? Not when more than ``max_queued_replies``
        wait already, nor when it would wait longer than ``max_queue_wait_s`` for its slot."""
        queued = self.queued(replies_in_flight + 1)  # counting the one asking to start
        per_slot_s = self.per_slot_s()
        within_wait = math.floor(self.wait_bound_s() / per_slot_s) if per_slot_s > 0 else queued
        excess = queued - min(self.config.max_queued_replies, within_wait)
        if queued and excess > 0:
            # Each refused reply is told a later time than the one before, a slot apart: a crowd
            # told the same moment would all come back together and be refused again.
            now = time.monotonic()
            self.promised = max(now + excess * per_slot_s, self.promised + per_slot_s)
            retry = min(60.0, max(1.0, self.promised - now))
            raise p.ProtocolError(p.ErrorCode.SERVER_BUSY, f"Joey has a queue; try again in {retry:.0f} s",
                                  message_id, retry_after=retry)

    def check_share(self, replies: Collection, client: str | None, message_id: str | None) -> None:
        """May ``client`` start one more reply beside its own ones in ``replies``?"""
        if client is None:
            return
        if sum(1 for r in replies if r.client == client) >= self.config.max_replies_per_client:
            retry = min(60.0, max(1.0, self.reply_s))  # one of its own replies ends by then
            raise p.ProtocolError(p.ErrorCode.SERVER_BUSY, f"this address has {self.config.max_replies_per_client} "
                                  f"replies in flight; try again in {retry:.0f} s", message_id, retry_after=retry)

    def check_rate(self, session: RateWindowed, message_id: str | None,
                   relay: LocalRelay | Relay | None = None) -> None:
        """Refuse or count one message of ``session`` against its rate window, kept by ``relay``
        (on every replica together when it is Redis's; None: this replica's alone)."""
        relay = relay or LOCAL
        window, now = self.config.rate_limit_window_s, relay.now()
        sent = relay.sent_times(session, now, window)
        if len(sent) >= self.config.rate_limit_messages:
            retry = min(sent) + window - now
            raise p.ProtocolError(p.ErrorCode.RATE_LIMITED, f"too many messages; retry in {retry:.0f} s",
                                  message_id, retry_after=max(0.0, retry))
        relay.count_sent(session, now, window)

    def capped(self, params: GenerationParams, message_id: str | None) -> GenerationParams:
        """``params`` within the server's max_new_tokens, or an invalid_field refusal."""
        # The context was checked at start-up against the server's max_new_tokens: no request goes past it.
        longest = min(params.max_new_tokens, self.config.max_new_tokens)
        params = dataclasses.replace(params, max_new_tokens=longest, min_new_tokens=min(params.min_new_tokens, longest))
        try:
            params.validate()
        except ValueError as exc:
            raise p.ProtocolError(p.ErrorCode.INVALID_FIELD, str(exc), message_id) from None
        return params

    def check_sessions(self, sessions: Collection[Session], client: str | None) -> None:
        """May ``client`` (None: an in-process frontend, which speaks for many people) open one more?"""
        own = [] if client is None else [s for s in sessions if s.client == client]
        if len(own) >= self.config.max_sessions_per_client:
            now = time.monotonic()  # the truth: when the first of its own can expire (a week for a used one)
            retry = max(1.0, min(expires_in(s, self.config, now) for s in own))
            raise p.ProtocolError(p.ErrorCode.TOO_MANY_SESSIONS,
                                  "this address holds too many sessions; resume one instead of opening more",
                                  retry_after=retry)
        if len(sessions) >= self.config.max_sessions:
            raise p.ProtocolError(p.ErrorCode.SERVER_FULL, "too many sessions; try again later", retry_after=60)

    def per_slot_s(self) -> float:
        """How often a waiting reply gets a slot: from how long replies hold one, or, slower when
        it is, from the pace waiting replies got theirs lately (a fuller batch steps slower)."""
        by_hold = self.reply_s / max(1, self.config.max_batch)
        now = time.monotonic()
        if len(self.turns) < self.turns.maxlen or now - self.turns[0] > PACE_WINDOW_S:
            return by_hold
        return max(by_hold, (now - self.turns[0]) / len(self.turns))

    def wait_bound_s(self) -> float:
        """``max_queue_wait_s``; half of it until a batch of replies has been measured, because a
        fresh server's first crowd waits on the guessed pace, and a loaded machine misses it."""
        measured = self.ended >= self.config.max_batch
        return self.config.max_queue_wait_s if measured else self.config.max_queue_wait_s / 2

    def turn_taken(self) -> None:
        self.turns.append(time.monotonic())

    def reply_ended(self, duration_s: float) -> None:
        self.ended += 1
        self.reply_s = 0.9 * self.reply_s + 0.1 * duration_s
