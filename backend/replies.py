"""A reply's life on the hub: started, streamed chunk by chunk, ended exactly once.

Every reply ends in one ``reply_end``, whatever the generator, tokenizer or store raise, and
even when it is cancelled before its task ever ran. The one exception is a reply that a planned
restart interrupts (:meth:`Replies.drain`): it is recorded as ``interrupted``, never as an
answer. Its message is neither kept nor marked answered, exactly as after a crash, so the
client's resend after the restart is answered in full, once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from backend import protocol as p
from backend import versions
from backend.admission import Admission
from backend.config import Config
from backend.fair_queue import FairQueue
from backend.metrics import Metrics
from backend.replicas import Replicas
from backend.session import LIVE, Reply, ReplyKind, ReplyState, Session
from model.generator import Generator
from model.sampling import GenerationParams

log = logging.getLogger("joey.hub")


class Replies:
    def __init__(self, generator: Generator, config: Config, metrics: Metrics, admission: Admission,
                 replicas: Replicas, save: Callable[[Session], None]):
        self.generator, self.config, self.metrics = generator, config, metrics
        self.admission, self.replicas, self.save = admission, replicas, save
        self.live: set[Reply] = set()  # in flight, across all sessions
        # Owners take turns for the engine's slots: an address, or the session when its frontend
        # speaks for many people. The engine's own queue stays empty, so it cannot be unfair.
        self.turns = FairQueue(config.max_batch, admission.turn_taken)

    def start(self, session: Session, reply: Reply, params: GenerationParams) -> None:
        session.reply, reply.client = reply, session.client
        self.live.add(reply)
        kind = None if reply.kind is ReplyKind.ANSWER else reply.kind.value
        self.publish(session, p.reply_start(session.next_seq(), reply.message_id, kind))
        self.metrics.reply_started(len(self.live), self.admission.queued(len(self.live)))
        reply.task = asyncio.get_running_loop().create_task(self._generate(session, reply, params))
        # A task cancelled before it first runs never executes its body: the callback ends it.
        reply.task.add_done_callback(lambda _: self.finish(session, reply, ReplyState.CANCELLED, "cancelled"))

    async def _generate(self, session: Session, reply: Reply, params: GenerationParams) -> None:
        stream, outcome, finish = None, ReplyState.FAILED, "error"
        try:
            async with self.turns.turn(reply.client or session.id):
                reply.slot_at = time.monotonic()
                try:
                    turns, start = versions.prompt(session, reply, self.generator.bot_name)
                    # Only a continuation passes its start: every Generator takes (turns, params).
                    stream = (self.generator.stream(turns, params, reply_start=start) if start
                              else self.generator.stream(turns, params))
                    async for text in stream:
                        if reply.state is ReplyState.PENDING:
                            reply.move(ReplyState.PENDING, ReplyState.STREAMING)
                        self.metrics.chunk(reply)
                        reply.parts.append(text)
                        self.publish(session, p.chunk(session.next_seq(), reply.message_id, text))
                    outcome, finish = ReplyState.DONE, _reason(stream.finish_reason)
                finally:  # the engine's slot is free before the next reply takes the turn
                    if stream is not None:
                        await _close_quietly(stream)
        except asyncio.CancelledError:
            outcome, finish = ReplyState.CANCELLED, "cancelled"
        except Exception:  # tokenizer, engine, anything: the reply fails, the session carries on
            log.exception("generation failed for session %s", session.id[:8], extra={"session": session.id})
            session.deliver(self.error(p.ErrorCode.MODEL_ERROR, "Joey could not answer", reply.message_id))
        self.finish(session, reply, outcome, finish, getattr(stream, "tokens", 0) or 0)

    def finish(self, session: Session, reply: Reply, outcome: ReplyState, finish: str, tokens: int = 0) -> None:
        """End ``reply`` once: history, reply_end, dedupe record, save. Later calls do nothing."""
        if reply.finished:
            return
        if reply.interrupting:
            self._interrupted(session, reply, tokens)
            return
        reply.move(LIVE, outcome)
        self.live.discard(reply)
        versions.record(session.history, reply, finish, self.config.max_reply_versions)
        end = p.reply_end(session.next_seq(), reply.message_id, reply.text, finish, tokens)
        session.remember(end, self.config.dedupe_window)
        session.touch()
        if reply.slot_at is not None:
            self.admission.reply_ended(time.monotonic() - reply.slot_at)
        self.metrics.reply_ended(finish, tokens, len(self.live))
        self.save(session)
        self.replicas.publish(session, end)  # after the save: a follower reads the finished session
        session.deliver(end)

    def _interrupted(self, session: Session, reply: Reply, tokens: int) -> None:
        """No reply_end: the user's turn goes, and the store keeps the session as before the message."""
        reply.move(LIVE, ReplyState.INTERRUPTED)
        self.live.discard(reply)
        last = session.history[-1] if session.history else None
        if reply.kind is ReplyKind.ANSWER and last and last["role"] == "user" and last["message_id"] == reply.message_id:
            session.history.pop()
            if self.replicas.relay.shared:  # saved before its reply_start for the followers: undo that
                self.save(session)
        self.replicas.interrupted(session, reply)
        self.metrics.reply_ended("interrupted", tokens, len(self.live))
        log.info("reply %s of session %s interrupted by the restart; the client's resend will answer it",
                 reply.message_id[:16], session.id[:8], extra={"session": session.id})

    async def end(self, sessions: list[Session], timeout: float) -> None:
        """Cancel the replies of ``sessions`` and wait for them, at most ``timeout`` seconds."""
        live = [s.reply for s in sessions if s.answering]
        for reply in live:
            reply.task.cancel()
        await self._settle(sessions, live, timeout)

    async def drain(self, sessions: list[Session], grace_s: float) -> int:
        """Let the replies of ``sessions`` finish for up to ``grace_s``; interrupt the rest.
        Returns how many were interrupted."""
        live = [s.reply for s in sessions if s.answering]
        if live:
            log.info("draining: %d replies may finish within %.0f s", len(live), grace_s)
            await asyncio.wait([r.task for r in live], timeout=grace_s)
        late = [r for r in live if not r.finished]
        for reply in late:
            reply.interrupting = True
            reply.handed_off = reply.relayed  # another replica generates it: it goes on there
            reply.task.cancel()
        await self._settle(sessions, late, grace_s / 4 + 1)
        return len(late)

    async def _settle(self, sessions: list[Session], cancelled: list[Reply], timeout: float) -> None:
        if cancelled:
            await asyncio.wait([r.task for r in cancelled], timeout=timeout)
        for session in sessions:  # a generator that ignores cancellation cannot hold the session
            if session.answering:
                log.error("reply of session %s did not stop within %.1f s", session.id[:8], timeout,
                          extra={"session": session.id})
                self.finish(session, session.reply, ReplyState.CANCELLED, "cancelled")

    def publish(self, session: Session, frame: dict) -> None:
        if frame["type"] in ("reply_start", "chunk") and session.reply is not None:
            session.reply.frames.append(frame)
            self.replicas.publish(session, frame)
        session.deliver(frame)

    def error(self, code: p.ErrorCode, message: str, message_id: str | None = None) -> dict:
        self.metrics.errors.labels(code.value).inc()
        return p.error(p.ProtocolError(code, message, message_id))


def _reason(finish_reason) -> str:
    return getattr(finish_reason, "value", finish_reason) or "stop"


async def _close_quietly(stream) -> None:
    try:
        await stream.aclose()
    except Exception:
        log.exception("closing a reply stream failed")
