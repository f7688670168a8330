"""Settings of the Telegram adapter: one small dataclass, read from the environment.

The bot token is read from ``TELEGRAM_BOT_TOKEN`` only: never from a flag (it would show in
``ps`` and shell history) and never from a file in the repository. Every other field has a
``JOEY_TELEGRAM_*`` variable and, for ``joey telegram``, a flag that overrides it (model/options.py).
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from model.options import opt, read_settings

TOKEN_ENV = "TELEGRAM_BOT_TOKEN"


MISSING_TOKEN = (f"{TOKEN_ENV} is not set. Create a bot with @BotFather, then run with "
                 f"{TOKEN_ENV}=<token> in the environment (it is read from there only).")


class TelegramConfigError(RuntimeError):
    """A setting is missing or wrong; the message says what to do (and never holds the token)."""


ENV_PREFIX = "JOEY_TELEGRAM_"
RESET_BY = ("admins", "anyone")
SECRET_CHARS = re.compile(r"[A-Za-z0-9_-]{1,256}")  # what Telegram accepts as a webhook's secret_token


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
    webhook_url: str = opt("", "public URL Telegram posts updates to (webhook mode; its path is the route served); "
                               "'' = poll getUpdates")
    webhook_secret: str = opt("", "secret Telegram sends with each webhook update (1-256 of A-Z a-z 0-9 _ -); "
                                  "'' = a random one each start", flag=False, secret=True)
    reset_by: str = opt("admins", "who may /reset a group's conversation: admins (of the group) or anyone")
    group_user_messages: int = opt(6, "messages for Joey one member of a group may send per group_user_window "
                                      "(beyond: told once to slow down, not answered); 0 = no limit")
    group_user_window: float = opt(60.0, "seconds of the per-member rate window in groups")
    allowed_chats: str = opt("", "comma-separated chat ids the bot answers ('' = every chat not blocked)")
    blocked_chats: str = opt("", "comma-separated chat ids the bot never answers")
    listen: str = opt("", "joey telegram: host:port of the bot's own HTTP server (webhook, /healthz, /metrics); "
                          "'' = none")

    @classmethod
    def from_env(cls, env: dict | None = None, args: argparse.Namespace | None = None) -> "TelegramConfig":
        """Flags in ``args`` first, then the environment; the token from the environment only."""
        values = read_settings(cls, ENV_PREFIX, args, env)
        return cls(**{**values, "token": values.get("token", "").strip()})

    def require_token(self) -> str:
        if not self.token:
            raise TelegramConfigError(MISSING_TOKEN)
        return self.token

    def check(self, server: bool = False) -> None:
        """A setting that can never work (a malformed URL...) is a :class:`TelegramConfigError`,
        not an outage to retry.

        ``server``: check the Joey server's URL too (``joey telegram`` talks to it over WebSocket).
        """
        if self.base_url and not _is_url(self.base_url, ("http", "https")):
            raise TelegramConfigError(f"JOEY_TELEGRAM_BASE_URL (--base-url) is not an http(s) URL: {self.base_url!r}; "
                                      "for example http://127.0.0.1:8081/bot")
        if server and not _is_url(self.server, ("ws", "wss")):
            raise TelegramConfigError(f"JOEY_SERVER_URL (--server) is not a ws(s) URL: {self.server!r}; "
                                      "for example ws://127.0.0.1:8000/ws")
        if self.webhook_url and not _is_url(self.webhook_url, ("http", "https")):
            raise TelegramConfigError(f"JOEY_TELEGRAM_WEBHOOK_URL (--webhook-url) is not an http(s) URL: "
                                      f"{self.webhook_url!r}; for example https://joey.example.com/telegram")
        if self.webhook_secret and not SECRET_CHARS.fullmatch(self.webhook_secret):
            raise TelegramConfigError("JOEY_TELEGRAM_WEBHOOK_SECRET must be 1 to 256 of A-Z a-z 0-9 _ -")
        if server and self.webhook_url and not self.listen:
            raise TelegramConfigError("JOEY_TELEGRAM_WEBHOOK_URL (--webhook-url) needs JOEY_TELEGRAM_LISTEN "
                                      "(--listen host:port), where joey telegram serves it")
        if server and self.listen:
            listen_address(self.listen)
        for name in ("allowed_chats", "blocked_chats"):
            chat_ids(getattr(self, name), name)
        if self.reset_by not in RESET_BY:
            raise TelegramConfigError(f"JOEY_TELEGRAM_RESET_BY (--reset-by) is {self.reset_by!r}; "
                                      f"it must be one of: {', '.join(RESET_BY)}")

    @property
    def file_url(self) -> str:
        if not self.base_url:
            return ""
        base = self.base_url.rstrip("/")
        return base[:-4] + "/file/bot" if base.endswith("/bot") else base + "/file/bot"


def chat_ids(text: str, name: str = "chats") -> set[int]:
    """The chat ids of a comma-separated list, or a :class:`TelegramConfigError` naming ``name``."""
    try:
        return {int(part) for part in text.replace(" ", "").split(",") if part}
    except ValueError:
        raise TelegramConfigError(f"JOEY_TELEGRAM_{name.upper()} (--{name.replace('_', '-')}) is not a "
                                  f"comma-separated list of chat ids: {text!r}; for example 12345,-1001234567890") \
            from None


def listen_address(text: str) -> tuple[str, int]:
    """``host:port`` of ``--listen`` as a (host, port) pair, or a :class:`TelegramConfigError`."""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise TelegramConfigError(f"JOEY_TELEGRAM_LISTEN (--listen) is not host:port: {text!r}; "
                                  "for example 127.0.0.1:8090")
    return host.strip("[]"), int(port)


def _is_url(text: str, schemes: tuple[str, ...]) -> bool:
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number from 0 to 65535)
    except ValueError:
        return False
    return parts.scheme in schemes and bool(parts.hostname) and not any(c.isspace() for c in text)
