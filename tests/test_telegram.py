"""The Telegram adapter: a real python-telegram-bot Application against a fake Bot API server.

Conversation tests run twice: in-process (the plugin on the server's loop, LocalTransport to
its hub) and out-of-process (the adapter on the test's loop, WebSocket to the server), the two
ways ``joey serve --telegram`` and ``joey telegram`` run. The tiny test model talks gibberish,
so the assertions are about structure and history, not about what Joey says. Splitting and
sending a long reply are in test_telegram_sending.py, groups and what is not for Joey in
test_telegram_groups.py, outages and the server's waits in test_telegram_delivery.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sqlite3
import time

import pytest

from frontends.telegram import texts
from frontends.telegram.bot import TelegramAdapter
from frontends.telegram.config import TelegramConfigError
from frontends.telegram.plugin import TelegramFrontend
from frontends.telegram.split import tg_len
from model.prompt import Turn
from tests.conftest import free_port, wait_until
from tests.fake_telegram import BAD_GATEWAY
from tests.telegram_fixtures import TOKEN, Bot, all_handled, joey_texts, tg_config, user_texts
from tests.telegram_fixtures import bot, fake, mode  # noqa: F401  (fixtures: pytest finds them by name here)

# PTB's own RetryAfter warns that retry_after will become a timedelta; the adapter handles both.
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


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
    assert fake.texts(alice) == joey_texts(a)
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
    # Replies in a chat go out in order, so a late duplicate of the second would come before the third.
    fake.user_message(chat, "Still there?", "Ross")
    sent = await fake.wait_texts(chat, 3)
    assert sent == joey_texts(bot.session(chat))  # each answer once, in order
    assert len(fake.sent(chat, failed=True)) == 5  # two refused calls, three replies


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
    db = sqlite3.connect(config.state)
    with db:
        db.execute("INSERT INTO inbox VALUES (?, ?, 0)", (update["update_id"], json.dumps(update)))
        db.execute("DELETE FROM delivered WHERE message_id = ?", (update["message"]["message_id"],))
    db.close()
    third = await Bot(mode, server, config).start()
    sent = await fake.wait_texts(chat, 3)
    assert sent[2] == sent[0] and len(session.history) == 4
    # Replaying the same update again (delivered this time) sends nothing.
    await third.stop()
    db = sqlite3.connect(config.state)
    with db:
        db.execute("INSERT INTO inbox VALUES (?, ?, 0)", (update["update_id"], json.dumps(update)))
    db.close()
    before = fake.texts(chat)
    fourth = await Bot(mode, server, config).start()
    assert await wait_until(lambda: all_handled(fake, config), 30)
    fake.user_message(chat, "Bye!", "Monica")  # answered after the replay: a duplicate would come first
    sent = await fake.wait_texts(chat, 4)
    assert len(before) == 3 and sent[:3] == before
    assert sent[3] == joey_texts(fourth.session(chat))[-1]
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
    assert await wait_until(lambda: running.adapter.clients.get(606) and len(running.session(606).history) == 2, 60)
    reply = running.session(606).history[1]["text"]
    assert await wait_until(lambda: " ".join(fake.texts(606)) == reply.strip(), 10)
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
    task = asyncio.create_task(serve(tg_config(fake, tmp_path, server=server.url), stop=stop))
    fake.user_message(909, "Hi", "Janice")
    await fake.wait_texts(909, 1)
    stop.set()
    assert await asyncio.wait_for(task, 30) == 0


@pytest.mark.parametrize("way", ["joey serve --telegram", "joey telegram"])
def test_start_up_errors_are_one_clean_line(way, monkeypatch, capsys, fake, tiny_model, tmp_path):
    from backend.cli import main
    from frontends.telegram.cli import serve

    def joey() -> tuple[int, str]:
        """The exit code and what was said on stderr."""
        if way == "joey telegram":
            code = main(["telegram", "--server", "ws://127.0.0.1:9/ws"])
        else:  # stops before the server would start; it never does here
            code = main(["serve", "--telegram", "--base-model", str(tiny_model[0]), "--adapter", str(tiny_model[1]),
                         "--port", str(free_port())])
        err = capsys.readouterr().err.strip()
        assert "Traceback" not in err
        return code, err

    def one_quick_line() -> str:
        """What a setting that can never work gives: one line and exit 2, at once (not retried)."""
        started = time.monotonic()
        code, err = joey()
        assert code == 2 and "\n" not in err and time.monotonic() - started < 5
        return err

    monkeypatch.setenv("JOEY_TELEGRAM_STATE", str(tmp_path / "t.db"))
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    code, err = joey()
    assert code == 2 and "TELEGRAM_BOT_TOKEN" in err.splitlines()[-1]
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "999:wrong-token")
    monkeypatch.setenv("JOEY_TELEGRAM_BASE_URL", fake.base_url)
    code, err = joey()
    assert code == 2 and "refused the bot token" in err.splitlines()[-1] and "wrong-token" not in err
    # A state file that cannot be written, and a Bot API URL that can never work.
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("JOEY_TELEGRAM_STATE", str(tmp_path / "a-file" / "t.db"))
    err = one_quick_line()
    assert "cannot use the state file" in err and "JOEY_TELEGRAM_STATE" in err
    monkeypatch.setenv("JOEY_TELEGRAM_STATE", str(tmp_path / "t.db"))
    monkeypatch.setenv("JOEY_TELEGRAM_BASE_URL", fake.base_url.replace("http://", ""))
    assert "JOEY_TELEGRAM_BASE_URL (--base-url) is not an http(s) URL" in one_quick_line()
    if way == "joey telegram":  # its Joey server URL too (stop already set: a start that works ends at once)
        stop = asyncio.Event()
        stop.set()
        config = tg_config(fake, tmp_path, server="127.0.0.1:8000/ws")
        assert asyncio.run(serve(config, stop=stop)) == 2
        assert "JOEY_SERVER_URL (--server) is not a ws(s) URL" in capsys.readouterr().err
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "999:wrong-token")
    monkeypatch.setenv("JOEY_TELEGRAM_BASE_URL", f"http://127.0.0.1:{free_port()}/bot")  # nothing listens there
    monkeypatch.setenv("JOEY_TELEGRAM_RETRY_ATTEMPTS", "2")
    monkeypatch.setenv("JOEY_TELEGRAM_RETRY_BASE", "0.05")
    code, err = joey()
    assert code == 2 and "cannot reach the Telegram Bot API" in err.splitlines()[-1]
    # The check that caught these lets a good token through.
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("JOEY_TELEGRAM_BASE_URL", fake.base_url)
    assert TelegramFrontend.preflight(argparse.Namespace()) is None
