"""The client Transport for frontends that run inside the server process (``joey serve --telegram``).

It drives the same :class:`~backend.endpoint.Endpoint` the WebSocket route drives, so an
in-process frontend gets exactly the protocol a remote client gets, minus the network. It lives
in the backend because it reaches into the hub; the client package (``client/``) imports nothing
from the backend.
"""

from __future__ import annotations

import json

from backend.endpoint import Endpoint
from client.transport import ConnectionLost


class LocalTransport:
    """Drives an in-process hub through the same Endpoint the WebSocket route uses."""

    def __init__(self, hub):
        self.hub = hub
        self._endpoint = None

    async def connect(self) -> None:
        self._endpoint = Endpoint(self.hub)

    async def send(self, frame: dict) -> None:
        await self._endpoint.receive(json.dumps(frame))

    async def recv(self) -> dict:
        frame = await self._endpoint.outbox.get()
        if frame["type"] == "error" and frame["code"] == "server_restarting":
            self._endpoint.close()
            raise ConnectionLost(frame["message"])
        return frame

    async def close(self) -> None:
        if self._endpoint is not None:
            self._endpoint.close()
