"""The Telegram adapter recovering from what Telegram and the Joey server do to it over time.

Real python-telegram-bot against the fake Bot API, which provokes each fault: update ids that
restart lower, another bot behind the same state file, a send acknowledged late, a flood
under the server's rate limit, and a Joey server that is down for a while.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time

import pytest

from client import WebSocketTransport
from frontends.telegram import texts
from frontends.telegram.bot import TelegramAdapter
from tests.conftest import free_port
from tests.fake_telegram import FakeTelegram
from tests.telegram_fixtures import Bot, joey_texts, tg_config, user_texts
from tests.telegram_fixtures import fake  # noqa: F401  (a fixture: pytest finds it by name here)

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

OTHER_TOKEN = "654321:OTHER-token-zyxwvutsrqponmlkjihgfedcba"


def saved_offset(config) -> int | None:
    db = sqlite3.connect(config.state)
    try:
        row = db.execute("SELECT value FROM meta WHERE key = 'offset'").fetchone()
        return int(row[0]) if row else None
    finally:
        db.close()


async def test_update_ids_that_restart_lower_are_answered_and_logged(server, fake, tmp_path, caplog):
    config = tg_config(fake, tmp_path)
    running = await Bot("out-of-process", server, config).start()
    try:
        chat = 40_001
        fake.user_message(chat, "Before", "Ross")  # update 1000: the saved offset becomes 1001
        await fake.wait_texts(chat, 1)
        fake.restart_update_ids(7)  # Telegram's ids start afresh, far below the saved offset
        fake.user_message(chat, "After", "Ross")
        fake.user_message(chat, "And again", "Ross")
        sent = await fake.wait_texts(chat, 3, timeout=30)
        session = running.session(chat)
        assert user_texts(session) == ["Before", "After", "And again"] and sent == joey_texts(session)
        assert "update ids restarted (got 7, expected 1001 or later)" in caplog.text
        assert saved_offset(config) == 9
    finally:
        await running.stop()


async def test_a_state_file_reused_by_another_bot_forgets_the_old_offset(server, fake, tmp_path, caplog):
    chat = 40_002
    first = await Bot("out-of-process", server, tg_config(fake, tmp_path)).start()
    fake.user_message(chat, "Hi first bot", "Ross")
    await fake.wait_texts(chat, 1)
    first_session = first.session(chat)
    await first.stop()
    with FakeTelegram(OTHER_TOKEN, bot_id=4343) as other:
        # Just below the old offset (1001): a Bot API takes such an offset as confirming them.
        # Its message ids start again too, so the old bot's delivery records would skip them.
        other.restart_update_ids(995)
        config = tg_config(other, tmp_path, token=OTHER_TOKEN)  # the same state file
        second = await Bot("out-of-process", server, config).start()
        try:
            other.user_message(chat, "Hi second bot", "Ross")
            sent = await other.wait_texts(chat, 1, timeout=30)
            session = second.session(chat)  # the other bot's conversation is not this one
            assert session is not first_session and user_texts(session) == ["Hi second bot"]
            assert sent == joey_texts(session)
            assert "state file was used by bot 4242, now by bot 4343" in caplog.text
            assert saved_offset(config) == 996
        finally:
            await second.stop()


async def test_a_send_acknowledged_late_is_not_sent_again(server, fake, tmp_path):
    running = await Bot("out-of-process", server, tg_config(fake, tmp_path)).start()
    try:
        chat = 40_003
        fake.hold_next("sendMessage", 6.0)  # delivered at once, acknowledged past PTB's own 5 s read timeout
        fake.user_message(chat, "Slow line today?", "Ross")
        fake.user_message(chat, "Still there?", "Ross")  # answered after the first: a duplicate would come first
        sent = await fake.wait_texts(chat, 2, timeout=30)
        assert sent == joey_texts(running.session(chat))
        assert len(fake.sent(chat, failed=True)) == 2
    finally:
        await running.stop()


async def test_an_acknowledgement_later_than_send_timeout_is_the_window_left(server, fake, tmp_path):
    running = await Bot("out-of-process", server, tg_config(fake, tmp_path, send_timeout=0.5)).start()
    try:
        chat = 40_004
        fake.hold_next("sendMessage", 1.0)
        fake.user_message(chat, "Hello?", "Ross")
        sent = await fake.wait_texts(chat, 2, timeout=30)
        assert sent[0] == sent[1] == joey_texts(running.session(chat))[0]  # the documented duplicate
    finally:
        await running.stop()


async def test_a_flood_under_the_rate_limit_is_told_to_wait_once(make_server, fake, tmp_path):
    server = make_server(rate_limit_messages=2, rate_limit_window_s=1.0)
    running = await Bot("out-of-process", server, tg_config(fake, tmp_path)).start()
    try:
        chat, flood = 40_005, [f"Joey! Joey! {i}" for i in range(8)]
        for text in flood:
            fake.user_message(chat, text, "Ross")
        sent = await fake.wait_texts(chat, len(flood) + 1, timeout=60)
        notice = re.escape(texts.RATE_LIMITED).replace(re.escape("{wait}"), r"(a sec|\d+ seconds)")
        notices = [t for t in sent if re.fullmatch(notice, t)]
        session = running.session(chat)
        assert len(notices) == 1 and user_texts(session) == flood
        assert [t for t in sent if t not in notices] == joey_texts(session)
    finally:
        await running.stop()


async def test_typing_while_the_server_is_down_and_a_reply_soon_after_it_is_back(make_server, fake, tmp_path):
    port, tries = free_port(), []

    async def not_yet(reader, writer) -> None:  # something listens, but no Joey server answers yet
        tries.append(time.monotonic())
        writer.close()

    down = await asyncio.start_server(not_yet, "127.0.0.1", port)
    cap = 0.3
    adapter = TelegramAdapter(tg_config(fake, tmp_path, server_max_backoff=cap),
                              lambda: WebSocketTransport(f"ws://127.0.0.1:{port}/ws"))
    await adapter.start()
    try:
        chat = 40_006
        fake.user_message(chat, "Anybody home?", "Ross")
        await asyncio.sleep(3)
        assert fake.sent(chat, "sendChatAction") and not fake.texts(chat)
        gaps = [b - a for a, b in zip(tries, tries[1:] + [time.monotonic()])]
        assert len(tries) >= 4 and max(gaps) < 1.0, gaps  # every try within the cap (and the machine's lag)
        down.close()
        await down.wait_closed()
        server = await asyncio.to_thread(make_server, port=port)
        back = time.monotonic()
        sent = await fake.wait_texts(chat, 1, timeout=30)
        assert time.monotonic() - back < cap + 5  # the next try, then one tiny model's reply
        session = server.hub.sessions[adapter.clients[chat].session_id]
        assert sent == joey_texts(session) and adapter.clients[chat].max_backoff_s == cap
    finally:
        down.close()
        await adapter.stop()
