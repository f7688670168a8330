"""uvicorn's WebSocket protocol, with the two closes it leaves unclean made clean.

Both `joey serve` and the tests run uvicorn with ``uvicorn_options(config)``, so they speak the
same WebSocket.

1. A protocol error (a frame over ``max_frame_bytes``: 1009) closed the socket right after the
   close frame. A client still sending the rest of that frame then met unread data on a closed
   socket, which the kernel answers with a TCP reset, and a reset throws away the close frame if
   the client had not read it yet. Now the server half-closes instead (the end-of-stream that
   websockets' sans-I/O connection asks for), reads and discards until the client closes too, and
   closes itself after ``close_timeout`` at the latest.
2. A client that stops reading was caught only once its socket buffers were full. A keepalive
   ping sits behind everything not yet read, so a missing pong catches it within
   ``ping_interval_s + ping_timeout_s`` whatever the buffer sizes. uvicorn then closed with 1011
   (an internal error) and ``transport.close()``, which waits forever to flush to a peer that does
   not read; now it is 1008, like the other slow-reader close, and the socket is aborted.

``WebSocketsSansIOProtocol`` is uvicorn's private code, and the methods replaced here are its
internals: hence the exact uvicorn pin in pyproject.toml, and tests/test_pinned_internals.py,
which fails when the upstream methods, or the state they keep, change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from backend.websocket import CLOSE_POLICY

if TYPE_CHECKING:
    from backend.config import Config


class JoeyWebSocketProtocol(WebSocketsSansIOProtocol):
    # Upstream parses every read, and after a protocol error handles that error again at each one.
    def data_received(self, data: bytes) -> None:
        if self.conn.parser_exc is not None:
            return  # after a protocol error: read only so that closing never turns into a reset
        super().data_received(data)

    # Upstream writes the close frame and closes the socket at once: 1. above.
    def handle_parser_exception(self) -> None:
        close = self.conn.close_sent
        assert close is not None
        self.queue.put_nowait({"type": "websocket.disconnect", "code": close.code, "reason": close.reason})
        self._write_pending()
        self.close_sent = True
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        self.close_timer = self.loop.call_later(self.close_timeout, self.transport.close)

    # Upstream fails with 1011 and transport.close(), which waits to flush to a peer that does not read: 2.
    def keepalive_timeout(self) -> None:
        self.pong_timer = None
        self.pending_ping_payload = None
        if self.close_sent or self.transport.is_closing():
            return
        self.conn.fail(CLOSE_POLICY, "no pong: the client stopped reading")
        self._write_pending()
        self.close_sent = True
        self.transport.abort()

    def _write_pending(self) -> None:
        for data in self.conn.data_to_send():
            if data:
                self.transport.write(data)
            elif self.transport.can_write_eof():  # b"" is websockets' request to half-close
                self.transport.write_eof()


def uvicorn_options(config: Config) -> dict:
    """The WebSocket settings of uvicorn.Config, for `joey serve` and the tests alike. The protocol
    is named as a class, never "auto", whose choice changed between uvicorn versions."""
    return {"ws": JoeyWebSocketProtocol, "ws_max_size": config.max_frame_bytes,
            "ws_per_message_deflate": config.ws_compression,
            "ws_ping_interval": config.ping_interval_s or None, "ws_ping_timeout": config.ping_timeout_s or None}
