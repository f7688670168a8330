"""Serve an ASGI app with a real uvicorn on a loopback port, in a background thread."""

from __future__ import annotations

import threading
import time


class ServerThread:
    def __init__(self, app, port: int, ws_options: dict | None = None, lifespan: str = "on", start_timeout: float = 60):
        import uvicorn

        self.port, self.start_timeout = port, start_timeout
        # ws_options: the server's own (backend.ws_protocol.uvicorn_options), so tests speak its WebSocket.
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                                    lifespan=lifespan, **(ws_options or {})))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + self.start_timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
