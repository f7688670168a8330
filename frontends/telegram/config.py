"""Settings of the Telegram adapter: one small dataclass, read from the environment.

The bot token is read from ``TELEGRAM_BOT_TOKEN`` only: never from a flag (it would show in
``ps`` and shell history) and never from a file in the repository. Every other field has a
``JOEY_TELEGRAM_*`` variable and, for ``joey telegram``, a flag that overrides it (model/options.py).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from urllib.parse import urlsplit

from model.options import opt, read_settings

TOKEN_ENV = "TELEGRAM_BOT_TOKEN"


MISSING_TOKEN = (f"{TOKEN_ENV} is not set. Create a bot with @BotFather, then run with "
                 f"{TOKEN_ENV}=<token> in the environment (it is read from there only).")


class TelegramConfigError(RuntimeError):
    """A setting is missing or wrong; the message says what to do (and never holds the token)."""


ENV_PREFIX = "JOEY_TELEGRAM_"


@dataclass
class TelegramConfig:
    token: str = opt("", "the bot's token from @BotFather", env=TOKEN_ENV, flag=False, secret=True)
    server: str = opt("ws://127.0.0.1:8000/ws", "joey telegram: the Joey server's WebSocket URL", env="JOEY_SERVER_URL")
    api_key: str = opt("", "joey telegram: key sent to the server (its api_key or a trusted key)", env="JOEY_API_KEY",
                       flag=False, secret=True)
    base_url: str = opt("", "Bot API base URL, e.g. http://127.0.0.1:8081/bot ('' = api.telegram.org)")
    state: str = opt("var/telegram.db", "SQLite file: chat -> session, unanswered updates, delivered replies")
    typing_interval: float = opt(4.0, "seconds between 'typing' actions; Telegram shows one for about 5 s")
    drafts: bool = opt(False, "live preview of replies (sendMessageDraft) in private chats")
    draft_interval: float = opt(0.7, "at most one draft update this often, in seconds")
    poll_timeout: float = opt(30.0, "getUpdates long-poll seconds")
    max_open_chats: int = opt(200, "Joey connections kept open; the least recently used idle ones close")
    retry_attempts: int = opt(6, "network errors in a row on one Telegram call before it counts as failed")
    retry_base: float = opt(0.5, "seconds before the first retry after a network error; doubles each time")
    max_backoff: float = opt(60.0, "longest wait between tries of a reply not yet delivered, in seconds")
    send_timeout: float = opt(30.0, "seconds Telegram may take to acknowledge a sent message before it is sent "
                                    "again (an acknowledgement later than this shows it twice)")
    server_max_backoff: float = opt(2.0, "longest wait between tries to reach the Joey server while it is down, "
                                         "in seconds: its first reply comes at most this long after it is back")
    stop_grace: float = opt(10.0, "at stop, seconds a reply part already being sent may take to finish")

    @classmethod
    def from_env(cls, env: dict | None = None, args: argparse.Namespace | None = None) -> "TelegramConfig":
        """Flags in ``args`` first, then the environment; the token from the environment only."""
        values = read_settings(cls, ENV_PREFIX, args, env)
        return cls(**{**values, "token": values.get("token", "").strip()})

    def require_token(self) -> str:
        if not self.token:
            raise TelegramConfigError(MISSING_TOKEN)
        return self.token

    def check_urls(self, server: bool = False) -> None:
        """A malformed URL is a :class:`TelegramConfigError`, not an outage to retry.

        ``server``: check the Joey server's URL too (``joey telegram`` talks to it over WebSocket).
        """
        if self.base_url and not _is_url(self.base_url, ("http", "https")):
            raise TelegramConfigError(f"JOEY_TELEGRAM_BASE_URL (--base-url) is not an http(s) URL: {self.base_url!r}; "
                                      "for example http://127.0.0.1:8081/bot")
        if server and not _is_url(self.server, ("ws", "wss")):
            raise TelegramConfigError(f"JOEY_SERVER_URL (--server) is not a ws(s) URL: {self.server!r}; "
                                      "for example ws://127.0.0.1:8000/ws")

    @property
    def file_url(self) -> str:
        if not self.base_url:
            return ""
        base = self.base_url.rstrip("/")
        return base[:-4] + "/file/bot" if base.endswith("/bot") else base + "/file/bot"


def _is_url(text: str, schemes: tuple[str, ...]) -> bool:
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number from 0 to 65535)
    except ValueError:
        return False
    return parts.scheme in schemes and bool(parts.hostname) and not any(c.isspace() for c in text)
