"""A small async Python client for protocol v1 (docs/protocol.md). It imports nothing from the server.

    from client import JoeyClient, WebSocketTransport

    async with JoeyClient(WebSocketTransport("ws://127.0.0.1:8000/ws")) as joey:
        end = await joey.ask("How you doin'?", on_chunk=lambda text: print(text, end=""))

Inside the server process the same client runs over ``backend.local_transport.LocalTransport``,
so the Telegram adapter behaves the same whether the server is here or elsewhere. ``backoff_s``
is the one retry policy; the Telegram adapter waits by it too.
"""

from client.backoff import backoff_s
from client.client import ClientError, JoeyClient
from client.transport import ConnectionLost, Transport, WebSocketTransport

__all__ = ["ClientError", "ConnectionLost", "JoeyClient", "Transport", "WebSocketTransport", "backoff_s"]
