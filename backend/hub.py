"""The session hub: every frontend (WebSocket, Telegram, ...) talks to Joey through this API.

It knows no transport. A frontend opens or resumes a :class:`Session`, attaches an
``asyncio.Queue`` to receive server frames (plain dicts from backend.protocol), and calls
:meth:`Hub.send`, :meth:`Hub.regenerate`, :meth:`Hub.continue_reply`, :meth:`Hub.cancel` and
:meth:`Hub.reset` (backend/versions.py: what regenerate and continue do to Joey's turn). A stateless
frontend (the OpenAI-compatible API) opens a session per request with the conversation so far,
never kept (``kept=False``), and :meth:`Hub.close` forgets it when the request ends.

Rules (docs/protocol.md):
- One message at a time: a message that arrives while Joey is answering gets a ``busy`` error,
  so a client never wonders which of two queued messages a reply belongs to.
- Replies are owned by the session, not the connection. If the connection drops, the reply goes
  on for ``orphan_grace_s`` so a resuming client gets the missing chunks; after that it is
  aborted and its engine slot freed.
- Every reply ends in exactly one ``reply_end`` (backend/replies.py), but for one that a planned
  restart interrupts: that one is not kept, as after a crash, and the client's resend answers it.
- Stream frames carry a per-session ``seq``; a resume replays the in-flight reply after the
  client's ``last_seq``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Iterable

from backend import expiry, versions
from backend import protocol as p
from backend.admission import Admission
from backend.config import Config
from backend.feedback import Ratings
from backend.metrics import Metrics
from backend.relay import LocalRelay, Relay
from backend.replicas import Replicas
from backend.replies import Replies
from backend.session import Reply, ReplyKind, ReplyState, Session
from backend.rows import hash_token
from model.generator import Generator
from model.prompt import DEFAULT_USER_NAME
from model.sampling import GenerationParams

__all__ = ["Hub", "Session", "Reply", "ReplyState"]

log = logging.getLogger("joey.hub")


class Hub:
    def __init__(self, generator: Generator, config: Config, store=None, metrics: Metrics | None = None):
        self.config, self.store = config, store
        self.metrics = metrics or Metrics()
        self.admission = Admission(config)
        self.sessions: dict[str, Session] = {}
        self.params = GenerationParams(
            max_new_tokens=config.max_new_tokens, min_new_tokens=config.min_new_tokens,
            temperature=config.temperature, top_k=config.top_k, top_p=config.top_p,
            repetition_penalty=config.repetition_penalty,
        )
        self._reaper: asyncio.Task | None = None
        self.ratings = Ratings(config.feedback_path)
        self.stopping = False  # set by stop(): no new sessions or replies, clients are told to come back
        self.replicas = Replicas(self.sessions, store, config, self._save, self._error)
        self.runner = Replies(generator, config, self.metrics, self.admission, self.replicas, self._save)
        self.replies = self.runner.live  # in flight, across all sessions

    @property
    def generator(self) -> Generator:
        return self.runner.generator

    @generator.setter
    def generator(self, generator: Generator) -> None:
        self.runner.generator = generator

    @property
    def relay(self) -> LocalRelay | Relay:
        """backend/relay.py: a LocalRelay, or Redis's that the app sets with several replicas (state_url)."""
        return self.replicas.relay

    @relay.setter
    def relay(self, relay: LocalRelay | Relay) -> None:
        self.replicas.relay = relay

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        self.loop = asyncio.get_running_loop()  # in-process frontends schedule work on it
        if self.store is not None:
            for row in self.store.load(self.config.session_idle_s):
                self.sessions[row["id"]] = Session.restore(row, self.config.max_history_turns)
            log.info("restored %d sessions", len(self.sessions))
        self._reaper = self.loop.create_task(expiry.reap_forever(self))

    async def stop(self, grace_s: float | None = None) -> None:
        """Drain: take no new message, let running replies finish within ``grace_s``
        (interrupted after it, never kept as answers), then tell every client the server restarts."""
        self.stopping = True
        if self._reaper:
            self._reaper.cancel()
        self.replicas.let_go()
        sessions = list(self.sessions.values())
        await self.runner.drain(sessions, self.config.shutdown_grace_s if grace_s is None else grace_s)
        restarting = p.error(p.ProtocolError(p.ErrorCode.SERVER_RESTARTING, "the server is restarting; resume soon"))
        for session in sessions:  # each was saved when it last changed
            session.deliver(restarting)
            session.closed = True
        self.sessions.clear()
        self.ratings.close()

    # --- sessions -----------------------------------------------------------------------------
    def open(self, name: str | None = None, client: str | None = None, history: Iterable[dict] = (),
             kept: bool = True) -> Session:
        """A new session, its history starting with ``history`` (turns as in ``Session.history``).
        ``kept=False``: a stateless frontend's, never written to the store nor relayed."""
        self._refuse_if_stopping()
        try:
            self.admission.check_sessions(self.sessions.values(), client)
        except p.ProtocolError:  # at a bound: expired sessions make room before anyone is refused
            self.reap()
            self.admission.check_sessions(self.sessions.values(), client)
        session = Session(name or DEFAULT_USER_NAME, self.config.max_history_turns, client)
        session.history.extend(history)
        session.kept = kept
        self.sessions[session.id] = session
        self.metrics.sessions.set(len(self.sessions))
        return session  # saved once something is said: an abandoned open costs no disk

    def close(self, session: Session) -> None:
        """Forget ``session`` now, as a stateless frontend does when its request ends: a reply in
        flight is cancelled (its engine slot is free before the next step) and ends unseen."""
        self.cancel(session)
        session.outbox = None
        session.closed = True
        if self.sessions.get(session.id) is session:
            del self.sessions[session.id]
            self.metrics.sessions.set(len(self.sessions))

    def resume(self, session_id: str, token: str) -> Session:
        self._refuse_if_stopping()
        session = self.replicas.shared_copy(session_id) or self.sessions.get(session_id)
        # Compare in constant time, and say the same thing for every failure: no oracle.
        if session is None or not hmac.compare_digest(session.token_hash.encode(), hash_token(token).encode()):
            raise p.ProtocolError(p.ErrorCode.RESUME_REFUSED, "unknown or expired session, or wrong token")
        session.token = token  # the session frame gives it back
        session.touch()
        self.replicas.resumed(session)
        return session

    def on_control(self, action: str, session_id: str) -> None:
        """A message from another replica (backend/replicas.py)."""
        self.replicas.on_control(action, session_id)

    def attach(self, session: Session, outbox: asyncio.Queue, last_seq: int | None = None) -> None:
        """Route the session's frames to ``outbox``, starting with the session frame.

        The in-flight reply's frames after ``last_seq`` follow it at once, so the client misses
        and repeats nothing. A fresh open passes ``last_seq=None``. A previous connection is
        told it was taken over.
        """
        if session.outbox is not None and session.outbox is not outbox:
            session.deliver(self._error(p.ErrorCode.SESSION_TAKEN_OVER, "this session was resumed elsewhere"))
        session.outbox = outbox
        session.adopt_reply()
        outbox.put_nowait(self.snapshot(session, resumed=last_seq is not None))
        for frame in session.frames_after(last_seq):
            outbox.put_nowait(frame)

    def detach(self, session: Session, outbox: asyncio.Queue) -> None:
        if session.outbox is not outbox:
            return
        session.outbox = None
        session.touch()
        if session.answering:
            session.orphan_timer = asyncio.get_running_loop().call_later(
                self.config.orphan_grace_s, self._abort_orphan, session)

    def snapshot(self, session: Session, resumed: bool) -> dict:
        in_flight = None
        if session.answering:
            in_flight = {"message_id": session.reply.message_id, "seq": session.reply.frames[0]["seq"]}
        limits = {"max_message_chars": self.config.max_message_chars, "max_new_tokens": self.params.max_new_tokens,
                  "rate_limit_messages": self.config.rate_limit_messages,
                  "rate_limit_window_s": self.config.rate_limit_window_s,
                  "max_name_chars": self.config.max_name_chars, "max_reply_versions": self.config.max_reply_versions}
        return p.session_frame(session.id, session.token, resumed, list(session.history), session.seq,
                               in_flight, limits)

    # --- conversation -------------------------------------------------------------------------
    def send(self, session: Session, message_id: str, text: str, name: str | None = None,
             params: GenerationParams | None = None) -> None:
        """Start answering ``text`` (said by ``name``, else the session's user), sampled with
        ``params`` (else the server's; a longer reply than the server's max_new_tokens is never
        made). Raises ProtocolError (busy, rate_limited, server_busy, invalid_field) without side
        effects."""
        session.touch()
        if session.answering and session.reply.message_id == message_id:
            return  # still in flight: its frames are on their way
        if message_id in session.answered:  # answered before: repeat the result, do not generate again
            session.deliver({**session.answered[message_id], "duplicate": True})
            return
        params = self.params if params is None else self.admission.capped(params, message_id)
        self._admit(session, message_id)
        self._ask(session, message_id, text, name, params)

    def edit(self, session: Session, message_id: str, text: str, name: str | None = None) -> None:
        """Ask ``message_id`` again as ``text``: the conversation branches there. That message and
        every turn after it leave the history (and their answers the dedupe record), then Joey
        answers the new text under the same id."""
        session.touch()
        at = session.turn_index("user", message_id)
        if at is None:
            raise p.ProtocolError(p.ErrorCode.INVALID_FIELD, f"no message {message_id!r} to edit here", message_id)
        self._admit(session, message_id)
        while len(session.history) > at:
            session.answered.pop(session.history.pop()["message_id"], None)
        self._ask(session, message_id, text, name, self.params)

    def _ask(self, session: Session, message_id: str, text: str, name: str | None, params: GenerationParams) -> None:
        turn = {"role": "user", "text": text, "message_id": message_id}
        session.history.append({**turn, "name": name} if name else turn)
        self.runner.start(session, Reply(message_id), params)

    def rate(self, session: Session, message_id: str, rating: str | None) -> None:
        """Rate Joey's reply to ``message_id`` ("up", "down"; None clears it): kept on its turn in
        the history, and with its context in the feedback file (backend/feedback.py)."""
        session.touch()
        at = session.turn_index("joey", message_id)
        if at is None:
            raise p.ProtocolError(p.ErrorCode.INVALID_FIELD, f"no reply of Joey's to {message_id!r} to rate here",
                                  message_id)
        if session.history[at].get("rating") != rating:
            # A change counts as a message in the rate window: each one is a line on disk.
            self.admission.check_rate(session, message_id, self.relay)
            session.history[at].pop("rating", None)
            session.history[at].update({"rating": rating} if rating else {})
            self._save(session)
            self.ratings.keep(session.id, session.history, at, rating)
        session.deliver(p.feedback_done(message_id, rating))

    def regenerate(self, session: Session, message_id: str | None = None) -> None:
        """Answer the last user message again; Joey's previous answer stays as an earlier version."""
        self._idle(session, message_id)
        target = versions.last_message(session, message_id, p.ErrorCode.NOTHING_TO_REGENERATE)
        self._admit(session, target)
        self.runner.start(session, Reply(target, ReplyKind.REGENERATE), self.params)

    def continue_reply(self, session: Session, message_id: str | None = None) -> None:
        """Go on with Joey's last reply where a stop or the length limit cut it: same id, same turn."""
        self._idle(session, message_id)
        target, text = versions.continuable(session, message_id)
        self._admit(session, target)
        self.runner.start(session, Reply(target, ReplyKind.CONTINUE, prefix=text), self.params)

    def choose_version(self, session: Session, message_id: str, version: int) -> None:
        """Choose a version of Joey's reply to ``message_id``: the next answer follows it."""
        self._idle(session, message_id)
        frame = versions.choose(session.history, message_id, version)
        self._save(session)
        session.deliver(frame)

    def cancel(self, session: Session) -> None:
        """Stop the reply in flight (its reply_end says "cancelled"). A no-op when idle."""
        if session.answering:
            session.reply.task.cancel()

    async def reset(self, session: Session) -> None:
        await self.runner.end([session], self.config.shutdown_grace_s)
        session.history.clear()
        self._publish(session, p.reset_done(session.next_seq()))
        self._save(session)

    # --- a reply's life -----------------------------------------------------------------------
    def _refuse_if_stopping(self) -> None:
        if self.stopping:
            raise p.ProtocolError(p.ErrorCode.SERVER_RESTARTING, "the server is restarting; resume soon")

    def _idle(self, session: Session, message_id: str | None) -> None:
        session.touch()
        if session.answering:
            raise p.ProtocolError(p.ErrorCode.BUSY, "Joey is still answering; wait for reply_end or cancel",
                                  message_id or session.reply.message_id)

    def _admit(self, session: Session, message_id: str | None) -> None:
        self._refuse_if_stopping()
        self._idle(session, message_id)
        self.admission.check_capacity(len(self.replies), message_id)
        self.admission.check_share(self.replies, session.client, message_id)
        self.admission.check_rate(session, message_id, self.relay)

    def _abort_orphan(self, session: Session) -> None:
        session.orphan_timer = None
        if session.outbox is None:
            self.cancel(session)

    # --- plumbing -----------------------------------------------------------------------------
    def _error(self, code: p.ErrorCode, message: str, message_id: str | None = None) -> dict:
        return self.runner.error(code, message, message_id)

    def _publish(self, session: Session, frame: dict) -> None:
        self.runner.publish(session, frame)

    def _save(self, session: Session) -> None:
        if self.store is None or not session.used or not session.kept:
            return
        try:
            self.store.save(session)
        except Exception:  # a full disk must not stop the conversation; the session lives on in memory
            log.exception("could not save session %s", session.id[:8], extra={"session": session.id})

    # --- expiry (backend/expiry.py) ---------------------------------------------------------
    def reap(self) -> int:
        return expiry.reap(self)

