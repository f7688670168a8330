"""The in-process Telegram frontend: ``joey serve --telegram`` (or ``--frontends telegram``).

It runs on the server's event loop and talks to the hub through ``LocalTransport``: exactly
the protocol a remote client speaks, minus the network. Settings come from the environment
(TELEGRAM_BOT_TOKEN, JOEY_TELEGRAM_*; see docs/telegram.md).
"""

from __future__ import annotations

from typing import ClassVar

from backend.client import LocalTransport
from frontends.telegram.bot import TelegramAdapter
from frontends.telegram.config import MISSING_TOKEN, TelegramConfig


class TelegramFrontend:
    name: ClassVar[str] = "telegram"

    def __init__(self, config: TelegramConfig, hub, max_message_chars: int = 1000):
        self.config, self.hub = config, hub
        self.adapter = TelegramAdapter(config, lambda: LocalTransport(hub), max_message_chars)

    @classmethod
    def from_config(cls, config, hub) -> "TelegramFrontend":
        telegram = TelegramConfig.from_env()
        telegram.require_token()  # fail at once, with a clear message, before the server starts
        return cls(telegram, hub, config.max_message_chars)

    @classmethod
    def preflight(cls, config) -> str | None:
        """A problem to report before the server starts (a missing token), or None."""
        return None if TelegramConfig.from_env().token else MISSING_TOKEN

    async def start(self) -> None:
        await self.adapter.start()

    async def stop(self) -> None:
        await self.adapter.stop()

