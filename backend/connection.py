"""One WebSocket connection speaking protocol v1: thin glue between Starlette and the hub.

All outgoing frames go through one queue and one sender task, so frames never interleave and a
client that stops reading is cut off after ``send_timeout_s`` instead of blocking anyone else.
"""

from __future__ import annotations

import asyncio
import json
import logging
from enum import Enum

from starlette.websockets import WebSocket, WebSocketDisconnect

from backend import protocol as p
from backend.config import Config
from backend.hub import Hub, Session

log = logging.getLogger("joey.ws")

CLOSE_SLOW_CONSUMER = 1008  # policy violation: the client stopped reading
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_SERVICE_RESTART = 1012


class ConnectionState(Enum):
    AWAITING_SESSION = "awaiting_session"  # connected; the first frame must be open or resume
    OPEN = "open"  # a session is attached
    CLOSED = "closed"


class Connection:
    def __init__(self, websocket: WebSocket, hub: Hub, config: Config):
        self.ws, self.hub, self.config = websocket, hub, config
        self.state = ConnectionState.AWAITING_SESSION
        self.session: Session | None = None
        self.outbox: asyncio.Queue = asyncio.Queue()

    def _enter(self, expected: ConnectionState, new: ConnectionState) -> None:
        if self.state is not expected:
            raise RuntimeError(f"connection: expected {expected.name}, got {self.state.name}")
        self.state = new

    async def serve(self) -> None:
        sender = asyncio.create_task(self._send_forever())
        try:
            while True:
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                raw = message.get("text")
                if raw is None:
                    raw = message.get("bytes") or b""
                await self._handle(raw)
        except WebSocketDisconnect:
            pass
        finally:
            self.state = ConnectionState.CLOSED
            if self.session is not None:
                self.hub.detach(self.session, self.outbox)
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)

    async def _handle(self, raw: str | bytes) -> None:
        try:
            frame = p.parse_client_frame(raw, self.config.max_message_chars, self.config.max_name_chars)
            await self._dispatch(frame)
        except p.ProtocolError as exc:
            self.outbox.put_nowait(p.error(exc))

    async def _dispatch(self, frame: p.ClientFrame) -> None:
        if isinstance(frame, p.Ping):
            self.outbox.put_nowait(p.pong(frame.nonce))
            return
        if isinstance(frame, (p.Open, p.Resume)):
            if self.state is not ConnectionState.AWAITING_SESSION:
                raise p.ProtocolError(p.ErrorCode.SESSION_ALREADY_OPEN, "this connection already has a session")
            if isinstance(frame, p.Open):
                session, last_seq = self.hub.open(frame.name), None
            else:
                session, last_seq = self.hub.resume(frame.session_id, frame.token), frame.last_seq
            self._enter(ConnectionState.AWAITING_SESSION, ConnectionState.OPEN)
            self.session = session
            self.hub.attach(session, self.outbox, last_seq)
            return
        if self.state is not ConnectionState.OPEN or self.session is None:
            raise p.ProtocolError(p.ErrorCode.NO_SESSION, "send open or resume first")
        if isinstance(frame, p.UserMessage):
            self.hub.send(self.session, frame.id, frame.text)
        elif isinstance(frame, p.Cancel):
            self.hub.cancel(self.session)
        elif isinstance(frame, p.Reset):
            await self.hub.reset(self.session)

    async def _send_forever(self) -> None:
        while True:
            frame = await self.outbox.get()
            try:
                await asyncio.wait_for(self.ws.send_text(json.dumps(frame)), self.config.send_timeout_s)
            except asyncio.TimeoutError:
                log.warning("closing a connection that stopped reading")
                await self._close(CLOSE_SLOW_CONSUMER, "client too slow")
                return
            except (WebSocketDisconnect, RuntimeError):
                return
            if frame.get("code") == p.ErrorCode.SESSION_TAKEN_OVER.value:
                await self._close(1000, "session taken over")
                return
            if frame.get("code") == p.ErrorCode.SERVER_RESTARTING.value:
                await self._close(CLOSE_SERVICE_RESTART, "server restarting")
                return

    async def _close(self, code: int, reason: str) -> None:
        try:
            await self.ws.close(code, reason)
        except RuntimeError:
            pass
