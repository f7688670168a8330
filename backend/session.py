"""One conversation (:class:`Session`) and one answer in it (:class:`Reply`), with explicit states.

A reply's life is one small object: ``pending`` (reply_start sent, waiting for the engine's
first chunk) -> ``streaming`` -> ``done`` | ``cancelled`` | ``failed``. A session is answering
exactly while it holds a reply that has not reached a terminal state, so there is no separate
flag that could be left behind: once the reply ends, however it ends, the session is idle.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import OrderedDict, deque
from enum import Enum

from model.prompt import BOT_NAME, Turn


class IllegalTransition(RuntimeError):
    pass


class ReplyState(Enum):
    PENDING = "pending"
    STREAMING = "streaming"
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"


TERMINAL = frozenset({ReplyState.DONE, ReplyState.CANCELLED, ReplyState.FAILED})


class Reply:
    def __init__(self, message_id: str, regenerate: bool = False):
        self.message_id, self.regenerate = message_id, regenerate
        self.state = ReplyState.PENDING
        self.frames: list[dict] = []  # its reply_start and chunks, replayed to a resuming client
        self.parts: list[str] = []
        self.task: asyncio.Task | None = None
        self.started = time.monotonic()
        self.last_chunk_at: float | None = None

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL

    def move(self, expected: ReplyState | frozenset, new: ReplyState) -> None:
        allowed = expected if isinstance(expected, frozenset) else frozenset({expected})
        if self.state not in allowed:
            names = " or ".join(sorted(s.name for s in allowed))
            raise IllegalTransition(f"reply {self.message_id[:16]!r}: expected {names}, got {self.state.name}")
        self.state = new


LIVE = frozenset({ReplyState.PENDING, ReplyState.STREAMING})


class SessionState(Enum):
    IDLE = "idle"
    ANSWERING = "answering"
    CLOSED = "closed"


class Session:
    def __init__(self, user_name: str, max_history: int, client: str | None = None):
        self.id = secrets.token_urlsafe(16)  # 128 random bits, shown to the client
        self.token = secrets.token_urlsafe(32)  # the secret that proves ownership on resume
        self.user_name = user_name
        self.client = client  # the address that opened it, for the per-client bound (None: in-process)
        self.closed = False
        self.history: deque[dict] = deque(maxlen=max_history)
        self.seq = 0
        self.last_active = time.monotonic()
        self.answered: OrderedDict[str, dict] = OrderedDict()  # message id -> its final reply_end
        self.reply: Reply | None = None  # the reply in flight, if any
        self.outbox: asyncio.Queue | None = None
        self.sent_times: deque[float] = deque()
        self.orphan_timer: asyncio.TimerHandle | None = None

    @classmethod
    def restore(cls, row: dict, max_history: int) -> "Session":
        session = cls(row["user_name"], max_history)
        session.id, session.token, session.seq = row["id"], row["token"], row["seq"]
        session.history.extend(row["history"])
        session.answered.update(row["answered"])
        session.last_active = time.monotonic() - row["idle_s"]
        return session

    @property
    def state(self) -> SessionState:
        if self.closed:
            return SessionState.CLOSED
        return SessionState.ANSWERING if self.answering else SessionState.IDLE

    @property
    def answering(self) -> bool:
        return self.reply is not None and not self.reply.finished

    @property
    def used(self) -> bool:
        """Whether anything was ever said: unused sessions expire fast and are not persisted."""
        return self.seq > 0

    def touch(self) -> None:
        self.last_active = time.monotonic()

    def turns(self) -> list[Turn]:
        return [Turn((h.get("name") or self.user_name) if h["role"] == "user" else BOT_NAME, h["text"])
                for h in self.history]

    def last_user_index(self) -> int | None:
        for i in range(len(self.history) - 1, -1, -1):
            if self.history[i]["role"] == "user":
                return i
        return None
