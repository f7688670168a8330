"""Shared pieces of the Telegram tests (tests/test_telegram*.py): the fake Bot API and an adapter in either mode.

The fixtures here are imported by name into each test module, where pytest finds them.
"""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from client import WebSocketTransport
from frontends.telegram import texts
from frontends.telegram.bot import TelegramAdapter
from frontends.telegram.config import TelegramConfig
from frontends.telegram.plugin import TelegramFrontend
from tests.fake_telegram import FakeTelegram

TOKEN = "123456:TEST-token-abcdefghijklmnopqrstuvwxyz"


@pytest.fixture
def fake():
    with FakeTelegram(TOKEN) as running:
        yield running


def tg_config(fake: FakeTelegram, tmp_path, **overrides) -> TelegramConfig:
    values = dict(token=TOKEN, base_url=fake.base_url, state=str(tmp_path / "telegram.db"),
                  typing_interval=0.3, poll_timeout=1, retry_base=0.05, draft_interval=0.05)
    return TelegramConfig(**{**values, **overrides})


async def on_loop(loop: asyncio.AbstractEventLoop, coro):
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))


class Bot:
    """One adapter, in-process (on the server's loop, through the hub) or out-of-process (WebSocket)."""

    def __init__(self, mode: str, server, config: TelegramConfig, api_key: str | None = None):
        self.mode, self.server, self.config, self.api_key = mode, server, config, api_key
        self.adapter: TelegramAdapter | None = None

    async def start(self) -> "Bot":
        if self.mode == "in-process":
            frontend = TelegramFrontend(self.config, self.server.hub)
            self.adapter = frontend.adapter
            await on_loop(self.server.server_loop, frontend.start())
        else:
            self.adapter = TelegramAdapter(self.config, lambda: WebSocketTransport(self.server.url, self.api_key))
            await self.adapter.start()
        return self

    async def stop(self) -> None:
        if self.mode == "in-process":
            await on_loop(self.server.server_loop, self.adapter.stop())
        else:
            await self.adapter.stop()

    def session(self, chat_id: int):
        return self.server.hub.sessions[self.adapter.clients[chat_id].session_id]


@pytest.fixture(params=["in-process", "out-of-process"])
def mode(request) -> str:
    return request.param


@pytest.fixture
async def bot(mode, server, fake, tmp_path):
    running = await Bot(mode, server, tg_config(fake, tmp_path)).start()
    yield running
    await running.stop()


def user_texts(session) -> list[str]:
    return [h["text"] for h in session.history if h["role"] == "user"]


def joey_texts(session) -> list[str]:
    """Joey's answers in the session, as the bot sends them."""
    return [h["text"].strip() or texts.EMPTY_REPLY for h in session.history if h["role"] == "joey"]


def all_handled(fake: FakeTelegram, config: TelegramConfig) -> bool:
    """Every update queued so far was taken by the adapter (confirmed to the fake by a later
    offset, which happens only once it is in the inbox) and handled (gone from the inbox)."""
    with fake.lock:
        if fake.updates:
            return False
    db = sqlite3.connect(config.state)
    try:
        return not db.execute("SELECT 1 FROM inbox LIMIT 1").fetchall()
    finally:
        db.close()
