"""The server side of one protocol-v1 conversation, with no transport attached.

An :class:`Endpoint` takes raw client frames and puts server frames (dicts) on its ``outbox``.
The WebSocket route (backend/websocket.py) and the in-process client transport
(backend/local_transport.py) both drive one, so in-process frontends get exactly the protocol that
remote clients get, minus the network.
"""

from __future__ import annotations

import asyncio
import logging
from enum import Enum

from backend import protocol as p
from backend.hub import Hub, Session

log = logging.getLogger("joey.endpoint")


class ConnectionState(Enum):
    AWAITING_SESSION = "awaiting_session"  # the first frame must be open or resume
    OPEN = "open"  # a session is attached
    CLOSED = "closed"


class Endpoint:
    def __init__(self, hub: Hub, client: str | None = None):
        self.hub = hub
        self.client = client  # the peer's address, for the per-client session bound; None in-process
        self.state = ConnectionState.AWAITING_SESSION
        self.session: Session | None = None
        self.outbox: asyncio.Queue = asyncio.Queue()

    def _enter(self, expected: ConnectionState, new: ConnectionState) -> None:
        if self.state is not expected:
            raise RuntimeError(f"connection: expected {expected.name}, got {self.state.name}")
        self.state = new

    async def receive(self, raw: str | bytes) -> None:
        """Handle one client frame; a bad one becomes a typed error frame, never an exception."""
        config = self.hub.config
        try:
            frame = p.parse_client_frame(raw, config.max_message_chars, config.max_name_chars)
            await self._dispatch(frame)
        except p.ProtocolError as exc:
            self._refuse(exc)
        except Exception:  # a server bug must cost this frame only, not the connection or the session
            log.exception("unexpected error handling a frame")
            self._refuse(p.ProtocolError(p.ErrorCode.INTERNAL_ERROR, "the server failed on this frame"))

    def _refuse(self, exc: p.ProtocolError) -> None:
        self.hub.metrics.errors.labels(exc.code.value).inc()
        self.outbox.put_nowait(p.error(exc))

    async def _dispatch(self, frame: p.ClientFrame) -> None:
        if isinstance(frame, p.Ping):
            self.outbox.put_nowait(p.pong(frame.nonce))
            return
        if isinstance(frame, (p.Open, p.Resume)):
            if self.state is not ConnectionState.AWAITING_SESSION:
                raise p.ProtocolError(p.ErrorCode.SESSION_ALREADY_OPEN, "this connection already has a session")
            if isinstance(frame, p.Open):
                session, last_seq = self.hub.open(frame.name, self.client), None
            else:
                session, last_seq = self.hub.resume(frame.session_id, frame.token), frame.last_seq
            self._enter(ConnectionState.AWAITING_SESSION, ConnectionState.OPEN)
            self.session = session
            self.hub.attach(session, self.outbox, last_seq)
            return
        if self.state is not ConnectionState.OPEN or self.session is None:
            raise p.ProtocolError(p.ErrorCode.NO_SESSION, "send open or resume first")
        if self.session.outbox is not self.outbox:  # taken over; this connection is closing
            raise p.ProtocolError(p.ErrorCode.SESSION_TAKEN_OVER, "this session was resumed elsewhere")
        if isinstance(frame, p.UserMessage):
            self.hub.send(self.session, frame.id, frame.text, frame.name)
        elif isinstance(frame, p.Edit):
            self.hub.edit(self.session, frame.message_id, frame.text, frame.name)
        elif isinstance(frame, p.Regenerate):
            self.hub.regenerate(self.session, frame.message_id)
        elif isinstance(frame, p.Continue):
            self.hub.continue_reply(self.session, frame.message_id)
        elif isinstance(frame, p.ChooseVersion):
            self.hub.choose_version(self.session, frame.message_id, frame.version)
        elif isinstance(frame, p.Cancel):
            self.hub.cancel(self.session)
        elif isinstance(frame, p.Feedback):
            self.hub.rate(self.session, frame.message_id, frame.rating)
        elif isinstance(frame, p.Reset):
            await self.hub.reset(self.session)

    def close(self) -> None:
        if self.state is ConnectionState.CLOSED:
            return
        self.state = ConnectionState.CLOSED
        if self.session is not None:
            self.hub.detach(self.session, self.outbox)
