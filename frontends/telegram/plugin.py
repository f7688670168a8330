"""The in-process Telegram frontend: ``joey serve --telegram`` (or ``--frontends telegram``).

It runs on the server's event loop and talks to the hub through ``LocalTransport``: exactly
the protocol a remote client speaks, minus the network. Settings come from the environment
(TELEGRAM_BOT_TOKEN, JOEY_TELEGRAM_*; see docs/telegram.md).

Start-up problems are found by :meth:`TelegramFrontend.preflight`, which ``joey serve`` runs
before the server starts: a missing token, a malformed Bot API URL, a state file that cannot
be written, a token Telegram refuses, a Bot API it cannot reach. Each becomes one line and
exit code 2, as with ``joey telegram``, instead of a traceback from inside the server's start-up.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

from telegram import Bot

from backend.local_transport import LocalTransport
from frontends.telegram import webhook
from frontends.telegram.bot import TelegramAdapter
from frontends.telegram.chat_store import open_chat_store
from frontends.telegram.config import MISSING_TOKEN, TelegramConfig, TelegramConfigError
from frontends.telegram.redact import protect
from frontends.telegram.retry import reach_bot_api


class TelegramFrontend:
    name: ClassVar[str] = "telegram"

    def __init__(self, config: TelegramConfig, hub):
        self.config, self.hub = config, hub
        self.adapter = TelegramAdapter(config, lambda: LocalTransport(hub))

    @classmethod
    def from_config(cls, config, hub) -> "TelegramFrontend":
        telegram = TelegramConfig.from_env()
        telegram.require_token()  # fail at once, with a clear message, before the server starts
        return cls(telegram, hub)

    @classmethod
    def routes(cls, config) -> list:
        """The webhook's route on the Joey server's app (none in polling mode)."""
        return webhook.routes(TelegramConfig.from_env(), _running_adapter)

    @classmethod
    def preflight(cls, config) -> str | None:
        """A problem to report before the server starts, or None: asks the Bot API who the bot is.

        Runs outside any event loop (``joey serve`` calls it before uvicorn starts).
        """
        telegram = TelegramConfig.from_env()
        if not telegram.token:
            return MISSING_TOKEN
        try:
            telegram.check()
            open_chat_store(telegram.state).close()
            asyncio.run(_check_bot_api(telegram))
        except TelegramConfigError as exc:
            return str(exc)
        return None

    async def start(self) -> None:
        await self.adapter.start()

    async def stop(self) -> None:
        await self.adapter.stop()


def _running_adapter(request):
    frontend = request.app.state.frontends.get(TelegramFrontend.name)
    return frontend.adapter if frontend is not None else None


async def _check_bot_api(config: TelegramConfig) -> None:
    protect(config.token)
    urls = {"base_url": config.base_url, "base_file_url": config.file_url} if config.base_url else {}
    bot = Bot(config.token, **urls)
    try:
        await reach_bot_api(bot.initialize, config.retry_attempts, config.retry_base)
    finally:
        await bot.shutdown()
