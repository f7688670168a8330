"""Settings of the Telegram adapter: one small dataclass, read from the environment.

The bot token is read from ``TELEGRAM_BOT_TOKEN`` only: never from a flag (it would show in
``ps`` and shell history) and never from a file in the repository. Everything else has a
``JOEY_TELEGRAM_*`` variable and, for ``joey telegram``, a flag that overrides it.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from model.options import parser_for

TOKEN_ENV = "TELEGRAM_BOT_TOKEN"


MISSING_TOKEN = (f"{TOKEN_ENV} is not set. Create a bot with @BotFather, then run with "
                 f"{TOKEN_ENV}=<token> in the environment (it is read from there only).")


class TelegramConfigError(RuntimeError):
    """A setting is missing or wrong; the message says what to do (and never holds the token)."""


@dataclass
class TelegramConfig:
    token: str = dataclasses.field(default="", repr=False)  # never printed, never logged
    base_url: str = ""  # Bot API server, e.g. http://127.0.0.1:8081/bot ('' = api.telegram.org)
    state_path: str = "var/telegram.db"  # SQLite: chat -> session, update inbox, delivered replies
    typing_interval_s: float = 4.0  # Telegram shows "typing" for about 5 s per action
    drafts: bool = False  # live preview with sendMessageDraft in private chats
    draft_interval_s: float = 0.7  # at most one draft update this often
    poll_timeout_s: float = 30.0  # getUpdates long-poll timeout
    max_open_chats: int = 200  # Joey connections kept open; the least recently used close beyond
    retry_attempts: int = 6  # network errors in a row on one Telegram call before it counts as failed
    retry_base_s: float = 0.5  # first backoff after a network error; doubles each time
    max_backoff_s: float = 60.0  # longest wait between tries of a failed reply (retried while running)
    stop_grace_s: float = 10.0  # at stop, how long a reply part already being sent may take to finish

    ENV = {"base_url": "JOEY_TELEGRAM_BASE_URL", "state_path": "JOEY_TELEGRAM_STATE",
           "typing_interval_s": "JOEY_TELEGRAM_TYPING_INTERVAL", "drafts": "JOEY_TELEGRAM_DRAFTS",
           "draft_interval_s": "JOEY_TELEGRAM_DRAFT_INTERVAL", "poll_timeout_s": "JOEY_TELEGRAM_POLL_TIMEOUT",
           "max_open_chats": "JOEY_TELEGRAM_MAX_OPEN_CHATS", "retry_attempts": "JOEY_TELEGRAM_RETRY_ATTEMPTS",
           "retry_base_s": "JOEY_TELEGRAM_RETRY_BASE", "max_backoff_s": "JOEY_TELEGRAM_MAX_BACKOFF",
           "stop_grace_s": "JOEY_TELEGRAM_STOP_GRACE"}

    @classmethod
    def from_env(cls, env: dict | None = None, **overrides) -> "TelegramConfig":
        """Environment first, then ``overrides`` (flags) that are not None."""
        env = os.environ if env is None else env
        values: dict = {"token": env.get(TOKEN_ENV, "").strip()}
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for name, var in cls.ENV.items():
            if var in env and env[var] != "":
                values[name] = parser_for(fields[name])(env[var])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def require_token(self) -> str:
        if not self.token:
            raise TelegramConfigError(MISSING_TOKEN)
        return self.token

    @property
    def file_url(self) -> str:
        if not self.base_url:
            return ""
        base = self.base_url.rstrip("/")
        return base[:-4] + "/file/bot" if base.endswith("/bot") else base + "/file/bot"

