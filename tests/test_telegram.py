"""The Telegram adapter: a real python-telegram-bot Application against a fake Bot API server.

Conversation tests run twice: in-process (the plugin on the server's loop, LocalTransport to
its hub) and out-of-process (the adapter on the test's loop, WebSocket to the server), the two
ways ``joey serve --telegram`` and ``joey telegram`` run. The tiny test model talks gibberish,
so the assertions are about structure and history, not about what Joey says.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sqlite3

import pytest

from backend.client import WebSocketTransport
from frontends.telegram import texts
from frontends.telegram.bot import TelegramAdapter
from frontends.telegram.chat_store import ChatStore
from frontends.telegram.config import TelegramConfig, TelegramConfigError
from frontends.telegram.plugin import TelegramFrontend
from frontends.telegram.sending import Sender
from frontends.telegram.split import TELEGRAM_LIMIT, split_message, tg_len
from model.prompt import Turn
from tests.conftest import wait_until
from tests.fake_telegram import BAD_GATEWAY, FakeTelegram

TOKEN = "123456:TEST-token-abcdefghijklmnopqrstuvwxyz"
# PTB's own RetryAfter warns that retry_after will become a timedelta; the adapter handles both.
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


@pytest.fixture
def fake():
    with FakeTelegram(TOKEN) as running:
        yield running


def tg_config(fake: FakeTelegram, tmp_path, **overrides) -> TelegramConfig:
    values = dict(token=TOKEN, base_url=fake.base_url, state_path=str(tmp_path / "telegram.db"),
                  typing_interval_s=0.3, poll_timeout_s=1, retry_base_s=0.05, draft_interval_s=0.05)
    return TelegramConfig(**{**values, **overrides})


async def on_loop(loop: asyncio.AbstractEventLoop, coro):
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))


class Bot:
    """One adapter, in-process (on the server's loop, through the hub) or out-of-process (WebSocket)."""

    def __init__(self, mode: str, server, config: TelegramConfig):
        self.mode, self.server, self.config = mode, server, config
        self.adapter: TelegramAdapter | None = None

    async def start(self) -> "Bot":
        if self.mode == "in-process":
            frontend = TelegramFrontend(self.config, self.server.hub)
            self.adapter = frontend.adapter
            await on_loop(self.server.server_loop, frontend.start())
        else:
            self.adapter = TelegramAdapter(self.config, lambda: WebSocketTransport(self.server.url))
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


# --- splitting ---------------------------------------------------------------------------------
def test_short_text_is_one_piece():
    assert split_message("How you doin'?") == ["How you doin'?"]
    assert split_message("   ") == []


def test_split_prefers_paragraphs_then_sentences_then_words():
    para = "A" * 30 + ".\n\n" + "B" * 30
    assert split_message(para, limit=50) == ["A" * 30 + ".", "B" * 30]
    sentences = "Joey doesn't share food! " * 10
    pieces = split_message(sentences, limit=100)
    assert all(p.endswith("food!") and tg_len(p) <= 100 for p in pieces)
    words = " ".join(["sandwich"] * 40)
    assert all(not p.startswith(" ") and tg_len(p) <= 50 and "sandwich" in p for p in split_message(words, 50))


def test_split_keeps_every_word_within_the_limit():
    text = " ".join(f"word{i}." if i % 7 == 0 else f"word{i}" for i in range(3000)) + "\n\n" + "x" * 5000
    pieces = split_message(text)
    assert all(0 < tg_len(p) <= TELEGRAM_LIMIT for p in pieces)
    assert "".join(pieces).replace(" ", "").replace("\n", "") == text.replace(" ", "").replace("\n", "")


def test_split_counts_utf16_units():
    pieces = split_message("🍕" * 3000)  # each pizza is two UTF-16 units
    assert [tg_len(p) for p in pieces] == [4096, 1904] and "".join(pieces) == "🍕" * 3000


async def test_sender_splits_a_long_reply_and_never_resends(fake, tmp_path):
    from telegram import Bot as PTBBot

    text = "Okay, here's the thing about sandwiches. " * 250  # about 10,000 characters
    store = ChatStore(tmp_path / "s.db")
    async with PTBBot(TOKEN, base_url=fake.base_url) as ptb:
        sender = Sender(ptb, store, base_s=0.01)
        fake.fail_next("sendMessage", times=1)  # a 429 on the first part
        assert await sender.reply(7, 1, text) == 3
        assert await sender.reply(7, 1, text) == 0  # a replayed update sends nothing again
    sent = fake.texts(7)
    assert len(sent) == 3 and all(tg_len(t) <= TELEGRAM_LIMIT for t in sent)
    assert " ".join(sent) == text.strip()
    assert len(fake.sent(7, failed=True)) == 4  # the refused call, then three that went through
    store.close()


# --- conversations, both modes -------------------------------------------------------------------
async def test_two_chats_at_once_keep_their_own_history(bot, fake, server):
    alice, bob = 101, 202
    fake.user_message(alice, "Hi Joey", "Alice")
    fake.user_message(bob, "Yo", "Bob")
    fake.user_message(alice, "Pizza?", "Alice")
    fake.user_message(bob, "Sup", "Bob")
    await fake.wait_texts(alice, 2)
    await fake.wait_texts(bob, 2)
    a, b = bot.session(alice), bot.session(bob)
    assert a.id != b.id and (a.user_name, b.user_name) == ("Alice", "Bob")
    assert user_texts(a) == ["Hi Joey", "Pizza?"] and user_texts(b) == ["Yo", "Sup"]
    assert [h["role"] for h in a.history] == ["user", "joey", "user", "joey"]
    # The replies sent are Joey's answers, in order, each to its own message.
    assert fake.texts(alice) == [h["text"].strip() or texts.EMPTY_REPLY for h in a.history if h["role"] == "joey"]
    assert all(h["message_id"].startswith(f"tg-{alice}-") for h in a.history)
    # What the model is asked for Alice holds Alice's conversation only.
    gen = server.app.state.generator
    prompt = gen.tokenizer.decode(gen.prompt_ids(a.turns() + [Turn("Alice", "Next?")], server.hub.params))
    assert "Alice: Pizza?" in prompt and "Bob" not in prompt and "Sup" not in prompt
    assert fake.sent(alice, "sendChatAction") and fake.sent(bob, "sendChatAction")


async def test_commands_reset_and_stickers(bot, fake):
    chat = 303
    fake.user_message(chat, "/start", "Rachel")
    fake.user_message(chat, "Hi", "Rachel")
    fake.user_message(chat, None, "Rachel", sticker={"file_id": "s1", "file_unique_id": "u1", "type": "regular",
                                                      "width": 512, "height": 512, "is_animated": False,
                                                      "is_video": False})
    sent = await fake.wait_texts(chat, 3)
    assert sent[0] == texts.GREETING and sent[2] == texts.NOT_TEXT
    session = bot.session(chat)
    assert user_texts(session) == ["Hi"]
    fake.user_message(chat, "/reset", "Rachel")
    fake.user_message(chat, "/help", "Rachel")
    fake.user_message(chat, "blah " * 300, "Rachel")  # over the server's 1,000 characters
    sent = await fake.wait_texts(chat, 6)
    assert sent[3:] == [texts.RESET_DONE, texts.HELP, texts.TOO_LONG.format(limit=1000)]
    assert bot.session(chat) is session and list(session.history) == []


async def test_flood_wait_and_bad_gateway_deliver_exactly_once(bot, fake):
    chat = 404
    fake.fail_next("sendMessage")  # 429, retry after 1 s
    fake.user_message(chat, "Hello?", "Ross")
    await fake.wait_texts(chat, 1)
    fake.fail_next("sendMessage", BAD_GATEWAY)  # a network-level failure: backoff and retry
    fake.user_message(chat, "Again?", "Ross")
    await fake.wait_texts(chat, 2)
    await asyncio.sleep(0.5)
    assert len(fake.texts(chat)) == 2 and len(fake.sent(chat, failed=True)) == 4  # two refused calls, two replies


async def test_restart_resumes_the_chat_and_never_answers_twice(mode, server, fake, tmp_path):
    chat, config = 505, tg_config(fake, tmp_path)
    first = await Bot(mode, server, config).start()
    update = fake.user_message(chat, "Remember me?", "Monica")
    await fake.wait_texts(chat, 1)
    session_id = first.adapter.clients[chat].session_id
    await first.stop()

    fake.user_message(chat, "Still there?", "Monica")  # arrives while the adapter is down
    second = await Bot(mode, server, config).start()
    await fake.wait_texts(chat, 2)
    session = second.session(chat)
    assert session.id == session_id and user_texts(session) == ["Remember me?", "Still there?"]
    await second.stop()

    # A crash after the first reply was generated but before it was sent: the update is still in
    # the inbox and no delivery is recorded. The hub repeats its stored answer; nothing new is made.
    db = sqlite3.connect(config.state_path)
    with db:
        db.execute("INSERT INTO inbox VALUES (?, ?, 0)", (update["update_id"], json.dumps(update)))
        db.execute("DELETE FROM delivered WHERE message_id = ?", (update["message"]["message_id"],))
    db.close()
    third = await Bot(mode, server, config).start()
    sent = await fake.wait_texts(chat, 3)
    assert sent[2] == sent[0] and len(session.history) == 4
    # Replaying the same update again (delivered this time) sends nothing.
    await third.stop()
    db = sqlite3.connect(config.state_path)
    with db:
        db.execute("INSERT INTO inbox VALUES (?, ?, 0)", (update["update_id"], json.dumps(update)))
    db.close()
    fourth = await Bot(mode, server, config).start()
    assert await wait_until(lambda: not sqlite3.connect(config.state_path).execute("SELECT * FROM inbox").fetchall())
    await asyncio.sleep(0.3)
    assert len(fake.texts(chat)) == 3
    await fourth.stop()


async def test_idle_chats_are_closed_and_resumed(mode, server, fake, tmp_path):
    running = await Bot(mode, server, tg_config(fake, tmp_path, max_open_chats=1)).start()
    try:
        fake.user_message(111, "One", "Janice")
        await fake.wait_texts(111, 1)
        first = running.adapter.clients[111].session_id
        fake.user_message(222, "Two", "Mike")
        await fake.wait_texts(222, 1)
        assert list(running.adapter.clients) == [222]  # Janice's connection was closed
        fake.user_message(111, "Oh. My. God.", "Janice")
        await fake.wait_texts(111, 2)
        assert running.adapter.clients[111].session_id == first
        assert user_texts(running.session(111)) == ["One", "Oh. My. God."]
    finally:
        await running.stop()


# --- one mode is enough ---------------------------------------------------------------------------
async def test_long_reply_with_live_drafts(make_server, fake, tmp_path):
    server = make_server(min_new_tokens=150, max_new_tokens=150)
    running = await Bot("out-of-process", server, tg_config(fake, tmp_path, drafts=True)).start()
    running.adapter.sender.limit = 120  # the tiny model's 150 tokens are far under 4,096 characters
    update = fake.user_message(606, "Tell me a long story", "Phoebe")
    await wait_until(lambda: running.adapter.clients.get(606) and len(running.session(606).history) == 2, 60)
    reply = running.session(606).history[1]["text"]
    await wait_until(lambda: " ".join(fake.texts(606)) == reply.strip(), 10)
    parts = fake.texts(606)
    assert len(parts) >= 2 and all(tg_len(p) <= 120 for p in parts) and " ".join(parts) == reply.strip()
    drafts = fake.sent(606, "sendMessageDraft")
    assert drafts and all(int(d["draft_id"]) == update["message"]["message_id"] for d in drafts)
    assert all(reply.strip().startswith(d["text"]) for d in drafts)
    await running.stop()


async def test_plugin_runs_inside_joey_serve(monkeypatch, make_server, fake, tmp_path):
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("JOEY_TELEGRAM_BASE_URL", fake.base_url)
    monkeypatch.setenv("JOEY_TELEGRAM_STATE", str(tmp_path / "tg.db"))
    monkeypatch.setenv("JOEY_TELEGRAM_POLL_TIMEOUT", "1")
    server = make_server(frontends="telegram")  # the entry point, loaded by the server's lifespan
    fake.user_message(707, "Hey", "Chandler")
    await fake.wait_texts(707, 1)
    assert any(s.user_name == "Chandler" for s in server.hub.sessions.values())


async def test_token_never_reaches_the_logs(caplog, server, fake, tmp_path):
    caplog.set_level(logging.DEBUG)
    running = await Bot("out-of-process", server, tg_config(fake, tmp_path)).start()
    logging.getLogger("httpx").setLevel(logging.DEBUG)  # even when someone turns httpx logging on
    try:
        fake.user_message(808, "Hi", "Gunther")
        await fake.wait_texts(808, 1)
        logging.getLogger("telegram.test").warning("url was %s", f"{fake.base_url}{TOKEN}/getMe")
    finally:
        logging.getLogger("httpx").setLevel(logging.WARNING)
        await running.stop()
    bad = TelegramAdapter(tg_config(fake, tmp_path, token="999:not-the-right-token"), lambda: None)
    with pytest.raises(TelegramConfigError) as err:
        await bad.start()
    await bad.stop()
    assert "refused the bot token" in str(err.value) and "not-the-right" not in str(err.value)
    assert caplog.records and "<token>" in caplog.text
    assert TOKEN not in caplog.text and "not-the-right-token" not in caplog.text


async def test_joey_telegram_serves_until_stopped(server, fake, tmp_path):
    from frontends.telegram.cli import serve

    stop = asyncio.Event()
    task = asyncio.create_task(serve(tg_config(fake, tmp_path), server.url, stop=stop))
    fake.user_message(909, "Hi", "Janice")
    await fake.wait_texts(909, 1)
    stop.set()
    assert await asyncio.wait_for(task, 30) == 0


def test_cli_missing_and_invalid_token(monkeypatch, capsys, fake, tmp_path):
    from backend.cli import main

    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    assert main(["telegram", "--server", "ws://127.0.0.1:9/ws"]) == 2
    assert "TELEGRAM_BOT_TOKEN is not set" in capsys.readouterr().err
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "999:wrong-token")
    assert main(["telegram", "--base-url", fake.base_url, "--state", str(tmp_path / "t.db")]) == 2
    err = capsys.readouterr().err
    assert "refused the bot token" in err and "wrong-token" not in err
    assert TelegramFrontend.preflight(argparse.Namespace()) is None
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN")
    assert "TELEGRAM_BOT_TOKEN" in TelegramFrontend.preflight(argparse.Namespace())
