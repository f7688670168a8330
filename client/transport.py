"""How the client reaches a server: the Transport interface and its WebSocket implementation.

A transport moves protocol-v1 frames (dicts) and raises :class:`ConnectionLost` when the link
goes; the client above it reconnects and resumes. The in-process transport lives beside the hub
(backend/local_transport.py), because it drives the server side directly.
"""

from __future__ import annotations

import json
from typing import Protocol


class ConnectionLost(Exception):
    """The link to the server is gone (or never came up); the client may reconnect and resume."""


class Transport(Protocol):
    async def connect(self) -> None: ...

    async def send(self, frame: dict) -> None: ...

    async def recv(self) -> dict: ...  # raises ConnectionLost

    async def close(self) -> None: ...


class WebSocketTransport:
    def __init__(self, url: str, api_key: str | None = None, open_timeout: float = 10.0, local_host: str | None = None):
        self.url, self.api_key, self.open_timeout = url, api_key, open_timeout
        self.local_host = local_host  # the address to connect from (a load test speaks for many addresses)
        self._ws = None

    async def connect(self) -> None:
        from websockets.asyncio.client import connect

        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else None
        try:
            self._ws = await connect(self.url, additional_headers=headers, open_timeout=self.open_timeout,
                                     max_size=2**20, local_addr=(self.local_host, 0) if self.local_host else None)
        except OSError as exc:
            raise ConnectionLost(str(exc)) from exc
        except Exception as exc:  # handshake refusals, timeouts
            raise ConnectionLost(f"{type(exc).__name__}: {exc}") from exc

    async def send(self, frame: dict) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            await self._ws.send(json.dumps(frame))
        except (ConnectionClosed, AttributeError) as exc:
            raise ConnectionLost(str(exc)) from exc

    async def recv(self) -> dict:
        from websockets.exceptions import ConnectionClosed

        try:
            return json.loads(await self._ws.recv())
        except (ConnectionClosed, AttributeError) as exc:
            raise ConnectionLost(str(exc)) from exc

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
