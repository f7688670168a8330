"""``joey telegram``'s own HTTP server (``--listen host:port``): its webhook route, /healthz and /metrics.

In-process (``joey serve --telegram``) the Joey server's app serves the webhook instead.
"""

from __future__ import annotations

import asyncio
import socket

import uvicorn
from starlette.applications import Starlette

from frontends.telegram import webhook
from frontends.telegram.config import TelegramConfig, TelegramConfigError, listen_address


class OwnServer:
    def __init__(self, config: TelegramConfig, adapter, routes: list):
        self.config = config
        self.app = Starlette(routes=[*webhook.routes(config, lambda request: adapter), *routes])
        self.server: uvicorn.Server | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        host, port = listen_address(self.config.listen)
        try:  # bound here, so a port in use is one clear line instead of uvicorn's exit
            sock = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
        except OSError as exc:
            raise TelegramConfigError(f"cannot listen on {self.config.listen} (JOEY_TELEGRAM_LISTEN, --listen): "
                                      f"{exc.strerror or exc}") from None
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", lifespan="off", access_log=False))
        # _serve, not serve: serve() would take SIGINT/SIGTERM from joey telegram's own handlers.
        self._task = asyncio.get_running_loop().create_task(self.server._serve([sock]))
        while not self.server.started:
            if self._task.done():
                self._task.result()
                raise TelegramConfigError(f"cannot serve HTTP on {self.config.listen}")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self._task is not None:
            self.server.should_exit = True
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
