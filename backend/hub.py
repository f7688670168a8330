"""The session hub: every frontend (WebSocket, Telegram, ...) talks to Joey through this API.

It knows no transport. A frontend opens or resumes a :class:`Session`, attaches an
``asyncio.Queue`` to receive server frames (plain dicts from backend.protocol), and calls
:meth:`Hub.send`, :meth:`Hub.cancel` and :meth:`Hub.reset`.

Rules (docs/protocol.md):
- One message at a time: a message that arrives while Joey is answering gets a ``busy`` error,
  so a client never wonders which of two queued messages a reply belongs to.
- Replies are owned by the session, not the connection. If the connection drops, the reply goes
  on for ``orphan_grace_s`` so a resuming client gets the missing chunks; after that it is
  aborted and its engine slot freed.
- Stream frames carry a per-session ``seq``; a resume replays the in-flight reply after the
  client's ``last_seq``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import time
from collections import OrderedDict, deque
from enum import Enum

from backend import protocol as p
from backend.config import Config
from backend.store import SessionStore
from model.engine import EngineError
from model.generator import Generator
from model.prompt import BOT_NAME, DEFAULT_USER_NAME, Turn
from model.sampling import GenerationParams

log = logging.getLogger("joey.hub")


class SessionState(Enum):
    IDLE = "idle"
    ANSWERING = "answering"
    CLOSED = "closed"


class IllegalTransition(RuntimeError):
    pass


class Session:
    def __init__(self, user_name: str, max_history: int):
        self.id = secrets.token_urlsafe(16)  # 128 random bits, shown to the client
        self.token = secrets.token_urlsafe(32)  # the secret that proves ownership on resume
        self.user_name = user_name
        self.state = SessionState.IDLE
        self.history: deque[dict] = deque(maxlen=max_history)
        self.seq = 0
        self.last_active = time.monotonic()
        self.answered: OrderedDict[str, dict | None] = OrderedDict()  # message id -> reply_end
        self.in_flight: list[dict] = []  # stream frames of the reply being generated
        self.task: asyncio.Task | None = None
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

    def transition(self, expected: SessionState, new: SessionState) -> None:
        if self.state is not expected:
            raise IllegalTransition(f"session {self.id[:8]}: expected {expected.name}, got {self.state.name}")
        self.state = new

    def turns(self) -> list[Turn]:
        return [Turn(self.user_name if h["role"] == "user" else BOT_NAME, h["text"]) for h in self.history]


class Hub:
    def __init__(self, generator: Generator, config: Config, store: SessionStore | None = None):
        self.generator, self.config, self.store = generator, config, store
        self.sessions: dict[str, Session] = {}
        self.params = GenerationParams(
            max_new_tokens=config.max_new_tokens, min_new_tokens=config.min_new_tokens,
            temperature=config.temperature, top_k=config.top_k, top_p=config.top_p,
            repetition_penalty=config.repetition_penalty,
        )
        self._reaper: asyncio.Task | None = None

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        self.loop = asyncio.get_running_loop()  # in-process frontends schedule work on it
        if self.store is not None:
            for row in self.store.load(self.config.session_idle_s):
                self.sessions[row["id"]] = Session.restore(row, self.config.max_history_turns)
            log.info("restored %d sessions", len(self.sessions))
        self._reaper = self.loop.create_task(self._reap_forever())

    def _save(self, session: Session) -> None:
        if self.store is not None:
            self.store.save(session)

    async def stop(self) -> None:
        if self._reaper:
            self._reaper.cancel()
        restarting = p.error(p.ProtocolError(p.ErrorCode.SERVER_RESTARTING, "the server is restarting; resume soon"))
        for session in list(self.sessions.values()):
            await self._close(session)  # a reply in flight ends as "cancelled" and is saved
            self._deliver(session, restarting)

    # --- sessions -----------------------------------------------------------------------------
    def open(self, name: str | None = None) -> Session:
        if len(self.sessions) >= self.config.max_sessions:
            self.reap()
        if len(self.sessions) >= self.config.max_sessions:
            raise p.ProtocolError(p.ErrorCode.SERVER_FULL, "too many sessions; try again later", retry_after=60)
        session = Session(name or DEFAULT_USER_NAME, self.config.max_history_turns)
        self.sessions[session.id] = session
        self._save(session)
        return session

    def resume(self, session_id: str, token: str) -> Session:
        session = self.sessions.get(session_id)
        # Compare in constant time, and say the same thing for every failure: no oracle.
        if session is None or not hmac.compare_digest(session.token.encode(), token.encode()):
            raise p.ProtocolError(p.ErrorCode.RESUME_REFUSED, "unknown or expired session, or wrong token")
        session.last_active = time.monotonic()
        return session

    def attach(self, session: Session, outbox: asyncio.Queue, last_seq: int | None = None) -> None:
        """Route the session's frames to ``outbox``, starting with the session frame.

        The in-flight reply's frames after ``last_seq`` follow it at once, so the client misses
        and repeats nothing. A fresh open passes ``last_seq=None``. A previous connection is
        told it was taken over.
        """
        if session.outbox is not None and session.outbox is not outbox:
            session.outbox.put_nowait(p.error(p.ProtocolError(p.ErrorCode.SESSION_TAKEN_OVER,
                                                              "this session was resumed elsewhere")))
        session.outbox = outbox
        if session.orphan_timer:
            session.orphan_timer.cancel()
            session.orphan_timer = None
        outbox.put_nowait(self.snapshot(session, resumed=last_seq is not None))
        for frame in session.in_flight:
            if frame["seq"] > (last_seq or 0):
                outbox.put_nowait(frame)

    def detach(self, session: Session, outbox: asyncio.Queue) -> None:
        if session.outbox is not outbox:
            return
        session.outbox = None
        session.last_active = time.monotonic()
        if session.state is SessionState.ANSWERING:
            session.orphan_timer = asyncio.get_running_loop().call_later(
                self.config.orphan_grace_s, self._abort_orphan, session)

    def snapshot(self, session: Session, resumed: bool) -> dict:
        in_flight = None
        if session.in_flight:
            in_flight = {"message_id": session.in_flight[0]["message_id"], "seq": session.in_flight[0]["seq"]}
        limits = {"max_message_chars": self.config.max_message_chars, "max_new_tokens": self.params.max_new_tokens,
                  "rate_limit_messages": self.config.rate_limit_messages,
                  "rate_limit_window_s": self.config.rate_limit_window_s}
        return p.session_frame(session.id, session.token, resumed, list(session.history), session.seq,
                               in_flight, limits)

    # --- conversation -------------------------------------------------------------------------
    def send(self, session: Session, message_id: str, text: str) -> None:
        """Start answering ``text``. Raises ProtocolError (busy, rate_limited) without side effects."""
        session.last_active = time.monotonic()
        if message_id in session.answered:
            done = session.answered[message_id]
            if done is not None:  # answered before: repeat the result, do not generate again
                self._deliver(session, {**done, "duplicate": True})
            return  # still in flight: its frames are on their way
        if session.state is SessionState.ANSWERING:
            raise p.ProtocolError(p.ErrorCode.BUSY, "Joey is still answering; wait for reply_end or cancel",
                                  message_id)
        self._check_rate(session, message_id)
        session.transition(SessionState.IDLE, SessionState.ANSWERING)
        session.answered[message_id] = None
        while len(session.answered) > self.config.dedupe_window:
            session.answered.popitem(last=False)
        session.history.append({"role": "user", "text": text, "message_id": message_id})
        session.task = asyncio.get_running_loop().create_task(self._answer(session, message_id))

    def cancel(self, session: Session) -> None:
        """Stop the reply in flight (its reply_end says "cancelled"). A no-op when idle."""
        if session.task and not session.task.done():
            session.task.cancel()

    async def reset(self, session: Session) -> None:
        if session.task and not session.task.done():
            session.task.cancel()
            await asyncio.gather(session.task, return_exceptions=True)
        session.history.clear()
        self._publish(session, p.reset_done(self._next_seq(session)))
        self._save(session)

    # --- internals ----------------------------------------------------------------------------
    def _check_rate(self, session: Session, message_id: str) -> None:
        now, window = time.monotonic(), self.config.rate_limit_window_s
        while session.sent_times and session.sent_times[0] <= now - window:
            session.sent_times.popleft()
        if len(session.sent_times) >= self.config.rate_limit_messages:
            retry = session.sent_times[0] + window - now
            raise p.ProtocolError(p.ErrorCode.RATE_LIMITED, f"too many messages; retry in {retry:.0f} s",
                                  message_id, retry_after=retry)
        session.sent_times.append(now)

    def _next_seq(self, session: Session) -> int:
        session.seq += 1
        return session.seq

    def _deliver(self, session: Session, frame: dict) -> None:
        if session.outbox is not None:
            session.outbox.put_nowait(frame)

    def _publish(self, session: Session, frame: dict) -> None:
        if frame["type"] in ("reply_start", "chunk"):
            session.in_flight.append(frame)
        self._deliver(session, frame)

    async def _answer(self, session: Session, message_id: str) -> None:
        self._publish(session, p.reply_start(self._next_seq(session), message_id))
        parts: list[str] = []
        finish, tokens = "error", 0
        reply = None
        try:
            reply = self.generator.stream(session.turns(), self.params)
            async for text in reply:
                parts.append(text)
                self._publish(session, p.chunk(self._next_seq(session), message_id, text))
            finish, tokens = reply.finish_reason.value, reply.tokens
        except asyncio.CancelledError:
            finish = "cancelled"
        except (EngineError, ValueError) as exc:
            log.warning("generation failed for %s: %s", session.id[:8], exc)
            self._deliver(session, p.error(p.ProtocolError(p.ErrorCode.MODEL_ERROR, "Joey could not answer", message_id)))
        finally:
            if reply is not None:
                await reply.aclose()
        text = "".join(parts)
        if text:
            session.history.append({"role": "joey", "text": text, "message_id": message_id})
        end = p.reply_end(self._next_seq(session), message_id, text, finish, tokens or len(parts))
        session.answered[message_id] = end
        session.in_flight = []
        session.transition(SessionState.ANSWERING, SessionState.IDLE)
        session.last_active = time.monotonic()
        self._save(session)
        self._deliver(session, end)

    def _abort_orphan(self, session: Session) -> None:
        session.orphan_timer = None
        if session.outbox is None:
            self.cancel(session)

    async def _close(self, session: Session) -> None:
        self.cancel(session)
        if session.task:
            await asyncio.gather(session.task, return_exceptions=True)
        self._save(session)
        session.state = SessionState.CLOSED
        self.sessions.pop(session.id, None)

    def reap(self) -> int:
        """Forget idle, detached sessions older than session_idle_s. Returns how many."""
        cutoff = time.monotonic() - self.config.session_idle_s
        stale = [s for s in self.sessions.values()
                 if s.outbox is None and s.state is SessionState.IDLE and s.last_active < cutoff]
        for session in stale:
            session.state = SessionState.CLOSED
            del self.sessions[session.id]
            if self.store is not None:
                self.store.delete(session.id)
        return len(stale)

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(min(30.0, max(0.05, self.config.session_idle_s / 4)))
            if n := self.reap():
                log.info("expired %d idle sessions", n)
