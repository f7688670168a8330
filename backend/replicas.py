"""The hub's side of running several replicas (backend/relay.py carries the frames through Redis).

- A resumed session is read from the shared store (``shared_copy``): another replica may have
  moved it on.
- The replica generating a reply publishes its frames (``publish``).
- A replica where a client resumes a session whose reply is live elsewhere follows it: a
  *relayed* :class:`~backend.session.Reply` whose task delivers the owner's frames to the client
  after its ``last_seq``, and ends with the owner's ``reply_end``. ``cancel`` on it asks the owner
  to stop and waits for that ``reply_end``.
- A reply whose owner stops without a ``reply_end`` (a restart's grace ran out: ``interrupted``;
  or a crash: its live list expires) is not an answer: its follower tells the client
  ``server_restarting``, and the client's resend is answered whole by whichever replica it reaches.
- Every resume tells the other replicas (``takeover``): one still holding a connection for the
  session tells it ``session_taken_over`` and lets go, without aborting the reply, which its
  new follower relays.

A server alone has a :class:`~backend.relay.LocalRelay` and a store of its own: then every step
above finds nothing to do, and the hub calls them all the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from backend import protocol as p
from backend.config import Config
from backend.relay import INTERRUPTED, LocalRelay, Relay
from backend.session import LIVE, Reply, ReplyKind, ReplyState, Session

log = logging.getLogger("joey.replicas")


class Replicas:
    def __init__(self, sessions: dict[str, Session], store, config: Config,
                 save: Callable[[Session], None], error: Callable[..., dict]):
        """``sessions``: the hub's own table; ``save``: the hub's save of a session (errors logged);
        ``error``: the hub's error frame for a code, a message and a message id (errors counted)."""
        self.sessions, self.store, self.config = sessions, store, config
        self.save, self.error = save, error
        self.relay: LocalRelay | Relay = LocalRelay()  # the app sets Redis's with several replicas

    def shared_copy(self, session_id: str) -> Session | None:
        """With a store shared by replicas, the stored session is the newest, unless this replica is
        the one using it (attached here, or answering here). None: use the hub's own copy."""
        if self.store is None or not self.store.shared:
            return None
        here = self.sessions.get(session_id)
        if here is not None and (here.outbox is not None or here.answering):
            return None
        try:
            row = self.store.get(session_id)
        except Exception:
            log.exception("could not read session %s", session_id[:8])
            return None
        if row is None:
            return None
        session = Session.restore(row, self.config.max_history_turns)
        self.sessions[session_id] = session
        return session

    def publish(self, session: Session, frame: dict) -> None:
        """Show one frame of a reply generated here to the other replicas (an unkept session has no
        follower). Before its reply_start, the session is saved: followers read the user's turn."""
        if not session.kept:
            return
        if frame["type"] == "reply_start" and self.relay.shared:
            self.save(session)
        try:
            self.relay.published(session.id, frame)
        except Exception:  # Redis down: this replica's own client still gets everything
            log.exception("could not publish a frame of session %s", session.id[:8], extra={"session": session.id})

    def resumed(self, session: Session) -> None:
        """A client resumed ``session`` here: take it over, and follow its reply if it is live elsewhere."""
        try:
            self.relay.send("takeover", session.id)
            frames = [] if session.answering else self.relay.live_frames(session.id)
        except Exception:
            log.exception("could not reach the other replicas for session %s", session.id[:8])
            return
        if not frames:
            return
        reply = Reply(frames[0]["message_id"], ReplyKind.of(frames[0]))
        reply.relayed = True
        reply.frames = frames
        reply.parts = [f["text"] for f in frames if f["type"] == "chunk"]
        reply.move(ReplyState.PENDING, ReplyState.STREAMING)
        session.reply = reply
        session.seq = max(session.seq, frames[-1]["seq"])
        reply.task = asyncio.get_running_loop().create_task(self._follow(session, reply))
        reply.task.add_done_callback(lambda _: self._ended(session, reply, None))

    def let_go(self) -> None:
        """This replica stops: the replies it relays from elsewhere go on there, uncancelled."""
        for session in self.sessions.values():
            if session.answering and session.reply.relayed:
                session.reply.handed_off = True

    async def _follow(self, session: Session, reply: Reply) -> None:
        def deliver(frame: dict) -> None:
            if frame["type"] == "chunk":
                reply.frames.append(frame)
                reply.parts.append(frame["text"])
            session.seq = max(session.seq, frame["seq"])
            session.deliver(frame)

        end, cancelled = None, False
        try:
            end = await self.relay.follow(session.id, reply.frames[-1]["seq"], deliver)
        except asyncio.CancelledError:
            cancelled = True
            if not reply.handed_off:  # the client's cancel (or reset): the owner stops, we relay its reply_end
                with contextlib.suppress(Exception):
                    self.relay.send("cancel", session.id)
                    end = await asyncio.wait_for(self.relay.follow(session.id, session.seq, deliver),
                                                 self.config.shutdown_grace_s)
        except Exception:
            log.exception("following the reply of session %s failed", session.id[:8])
        if end is not None and end["type"] == INTERRUPTED:
            end = None
        if self._ended(session, reply, end) is None and not cancelled and not reply.handed_off:
            # Its owner stopped without a reply_end (a restart's grace ran out, or a crash), so the
            # message is not answered: the client resends it, as after a restart, and it is answered whole.
            session.deliver(self.error(p.ErrorCode.SERVER_RESTARTING, "the replica answering this message "
                                       "stopped; resume and send it again", reply.message_id))

    def interrupted(self, session: Session, reply: Reply) -> None:
        """A reply generated here was interrupted by a restart: its followers stop waiting for it."""
        self.publish(session, {"type": INTERRUPTED, "seq": session.seq, "message_id": reply.message_id})

    def _ended(self, session: Session, reply: Reply, end: dict | None) -> dict | None:
        """Take the finished reply from the store (the owner saved it before its reply_end).
        Returns its reply_end, None if it has none."""
        if reply.finished:
            return end
        row = None
        with contextlib.suppress(Exception):
            row = self.store.get(session.id)
        if row is not None:
            session.history.clear()
            session.history.extend(row["history"])
            session.answered.clear()
            session.answered.update(row["answered"])
            session.seq = max(session.seq, row["seq"])
            stored = row["answered"].get(reply.message_id)
            if end is None and stored and stored["seq"] > reply.frames[0]["seq"] and not reply.handed_off:
                session.deliver(stored)  # it ended while we were not listening
                end = stored
        reply.move(LIVE, ReplyState.DONE if end and end["finish_reason"] != "cancelled" else ReplyState.CANCELLED)
        return end

    def on_control(self, action: str, session_id: str) -> None:
        """A message from another replica: ``takeover`` or ``cancel`` of ``session_id``."""
        session = self.sessions.get(session_id)
        if session is None:
            return
        if action == "takeover":
            if session.outbox is not None:
                session.deliver(self.error(p.ErrorCode.SESSION_TAKEN_OVER, "this session was resumed elsewhere"))
                session.outbox = None
            session.adopt_reply()
            if session.answering and session.reply.relayed:
                session.reply.handed_off = True
                session.reply.task.cancel()
        elif action == "cancel" and session.answering and not session.reply.relayed:
            session.reply.task.cancel()  # as Hub.cancel: the reply ends as cancelled, and its reply_end goes out
