"""The protocol-v1 conversation: open or resume a session, ask, cancel, reset.

Reconnects are invisible to the caller: the client resumes its session with the highest
``seq`` it has seen, the server replays what was missed, and a message whose answer was not
seen is resent under the same id (the server never answers an id twice; it repeats the
stored answer instead). Chunks are passed on once each, in order, and the final text is the
server's.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Callable

from client.backoff import backoff_s
from client.transport import ConnectionLost, Transport

log = logging.getLogger("joey.client")

RECONNECT_BASE_S = 0.4  # the first wait before reconnecting; then backoff_s doubles it up to max_backoff_s


class ClientError(Exception):
    """A typed error frame from the server (``code`` is stable, see docs/protocol.md)."""

    def __init__(self, frame: dict):
        super().__init__(f"{frame['code']}: {frame['message']}")
        self.code, self.message, self.retry_after = frame["code"], frame["message"], frame.get("retry_after")


class JoeyClient:
    def __init__(self, transport: Transport, name: str | None = None, session_id: str | None = None,
                 token: str | None = None, reconnect: bool = True, max_backoff_s: float = 10.0,
                 max_attempts: int | None = None):
        self.transport, self.name = transport, name
        self.session_id, self.token = session_id, token
        self.reconnect, self.max_backoff_s, self.max_attempts = reconnect, max_backoff_s, max_attempts
        self.last_seq = 0
        self.history: list[dict] = []
        self.session_lost = False  # True when a resume was refused and a new session opened
        self.limits: dict = {}  # the server's limits (docs/protocol.md), from its latest session frame
        self.on_session: Callable[[dict], None] | None = None  # called on every session frame

    async def __aenter__(self) -> "JoeyClient":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def start(self) -> dict:
        await self.transport.connect()
        return await self._hello()

    async def close(self) -> None:
        await self.transport.close()

    async def _hello(self) -> dict:
        if self.session_id and self.token:
            await self.transport.send({"type": "resume", "session_id": self.session_id, "token": self.token,
                                       "last_seq": self.last_seq})
            frame = await self._answer()
            if frame["type"] == "error" and frame["code"] == "resume_refused":
                log.warning("session %s is gone; starting a new one", self.session_id[:8])
                self.session_lost, self.last_seq = True, 0
            elif frame["type"] == "error":
                raise ClientError(frame)
            else:
                return self._took_session(frame)
        await self.transport.send({"type": "open", **({"name": self.name} if self.name else {})})
        frame = await self._answer()
        if frame["type"] == "error":
            raise ClientError(frame)
        return self._took_session(frame)

    async def _answer(self) -> dict:
        """The next frame; ``server_restarting`` is a lost connection (the server closes next)."""
        frame = await self.transport.recv()
        if frame["type"] == "error" and frame["code"] == "server_restarting":
            raise ConnectionLost("the server is restarting")
        return frame

    def _took_session(self, frame: dict) -> dict:
        self.session_id, self.token = frame["session_id"], frame["token"]
        self.history = frame["history"]
        self.limits = frame.get("limits", {})
        # Frames up to last_seq stay skipped; newer ones are replayed after this frame. A server
        # restored from disk may be behind what we saw: then trust its numbering.
        self.last_seq = min(self.last_seq, frame["last_seq"]) if frame["resumed"] else frame["last_seq"]
        if self.on_session:
            self.on_session(frame)
        return frame

    async def _reconnect(self) -> None:
        attempt = 0
        while True:
            attempt += 1
            await asyncio.sleep(backoff_s(RECONNECT_BASE_S, attempt, self.max_backoff_s))
            try:
                await self.transport.close()
            except Exception:  # the old connection is already gone
                pass
            try:
                await self.transport.connect()
                await self._hello()
                return
            except ConnectionLost as exc:
                if self.max_attempts and attempt >= self.max_attempts:
                    raise
                log.info("reconnect attempt %d failed: %s", attempt, exc)

    async def _recv(self) -> dict:
        """The next frame, reconnecting as needed; frames already seen are dropped."""
        while True:
            try:
                frame = await self._answer()
            except ConnectionLost as lost:
                await self._recover(lost)
                return {"type": "_reconnected"}
            if frame["type"] == "error" and frame["code"] == "session_taken_over":
                raise ClientError(frame)  # another client owns the session now: do not fight it
            seq = frame.get("seq")
            if seq is not None and not frame.get("duplicate"):
                if seq <= self.last_seq:
                    continue
                self.last_seq = seq
            return frame

    async def _send(self, frame: dict) -> None:
        try:
            await self.transport.send(frame)
        except ConnectionLost as lost:
            await self._recover(lost)
            await self.transport.send(frame)

    async def _recover(self, lost: ConnectionLost) -> None:
        """Reconnect and resume after ``lost``, or pass it on when reconnecting is off."""
        if not self.reconnect:
            raise lost
        await self._reconnect()

    async def ask(self, text: str, message_id: str | None = None,
                  on_chunk: Callable[[str], object] | None = None, name: str | None = None) -> dict:
        """Send a message and return its ``reply_end`` frame; chunks go to ``on_chunk`` as they come.

        ``name`` is who says it, for this turn only (a group chat's speaker); None: the session's
        own name. A resend after a reconnect names the same speaker.
        """
        message_id = message_id or uuid.uuid4().hex
        message = {"type": "message", "id": message_id, "text": text, **({"name": name} if name else {})}
        shown = current = ""  # passed on to on_chunk; this reply's text (a restart's redo starts again)
        await self._send(message)
        while True:
            frame = await self._recv()
            kind = frame["type"]
            if kind == "_reconnected":
                await self._send(message)  # answered already? the server repeats the answer
            elif kind == "reply_start" and frame["message_id"] == message_id:
                current = ""
            elif kind in ("chunk", "reply_end") and frame["message_id"] == message_id:
                current = frame["text"] if kind == "reply_end" else current + frame["text"]
                # Only text that extends what was shown: a reply redone after a restart repeats none.
                if on_chunk and current.startswith(shown) and len(current) > len(shown):
                    on_chunk(current[len(shown):])
                    shown = current
                if kind == "reply_end":
                    return frame
            elif kind == "error" and frame.get("message_id") in (message_id, None):
                raise ClientError(frame)

    async def cancel(self) -> None:
        """Ask the server to stop the reply in flight; the running ``ask`` returns "cancelled"."""
        await self._send({"type": "cancel"})

    async def reset(self) -> None:
        await self._send({"type": "reset"})
        while True:
            kind = (await self._recv())["type"]
            if kind == "reset":
                break
            if kind == "_reconnected":  # the confirmation is not replayed: ask again (a reset is idempotent)
                await self._send({"type": "reset"})
        self.history = []
