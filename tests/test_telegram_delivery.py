"""The Telegram adapter when Telegram or the Joey server says "not now".

Real python-telegram-bot against the fake Bot API. A Telegram outage longer than one call's
retries, the server's rate limit and its ``server_busy``: nothing is dropped, nothing is
sent twice, and a chat's replies keep the order of its messages.
"""

from __future__ import annotations

import asyncio
import re

import pytest

from frontends.telegram import texts
from tests.conftest import RunningServer, wait_until
from tests.fake_telegram import BAD_GATEWAY
from tests.telegram_fixtures import Bot, joey_texts, tg_config, user_texts
from tests.telegram_fixtures import fake, mode  # noqa: F401  (fixtures: pytest finds them by name here)
from tests.web_fixtures import make_paced_server  # noqa: F401  (a fixture: replies paced per chunk)

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


def notice_pattern(template: str) -> str:
    return re.escape(template).replace(re.escape("{wait}"), r"(a sec|\d+ seconds|a minute)")


async def test_an_outage_longer_than_the_retries_is_outlasted_in_order(mode, server, fake, tmp_path):
    # Two tries per call, so five refusals in a row outlast one call's retries twice over.
    running = await Bot(mode, server, tg_config(fake, tmp_path, retry_attempts=2, max_backoff=0.2)).start()
    try:
        chat = 1001
        fake.fail_next("sendMessage", BAD_GATEWAY, times=5)
        fake.user_message(chat, "First?", "Ross")
        fake.user_message(chat, "Second?", "Ross")
        sent = await fake.wait_texts(chat, 2)
        session = running.session(chat)
        assert user_texts(session) == ["First?", "Second?"]
        assert sent == joey_texts(session)  # the first answer first, though it waited out the outage
        fake.user_message(chat, "Third?", "Ross")  # after it, a duplicate of the first two would show
        assert await fake.wait_texts(chat, 3) == joey_texts(session)
        assert len(fake.sent(chat, failed=True)) == 5 + 3  # every refusal tried again, every reply sent once
    finally:
        await running.stop()


async def test_a_rate_limited_person_is_told_when_to_come_back(make_server, fake, tmp_path):
    # One message per 6 s: the second comes well inside the window (the tiny model answers in
    # a fraction of a second), so the server refuses it with retry_after.
    server = make_server(rate_limit_messages=1, rate_limit_window_s=6.0)
    running = await Bot("out-of-process", server, tg_config(fake, tmp_path)).start()
    try:
        chat = 1002
        fake.user_message(chat, "One", "Ross")
        fake.user_message(chat, "Two", "Ross")
        sent = await fake.wait_texts(chat, 3, timeout=60)
        session = running.session(chat)
        assert re.fullmatch(notice_pattern(texts.RATE_LIMITED), sent[1])  # said once, with the wait
        assert [sent[0], sent[2]] == joey_texts(session) and user_texts(session) == ["One", "Two"]
    finally:
        await running.stop()


async def test_server_busy_is_shown_kindly_and_the_message_answered_later(make_paced_server, fake, tmp_path):
    # One engine slot and no queue: while one chat's reply streams (paced to about 6 s), another
    # chat's message is refused with server_busy and a retry_after.
    server = make_paced_server(delay=0.03, max_batch=1, max_queued_replies=0, min_new_tokens=200, max_new_tokens=200)
    running = await Bot("out-of-process", server, tg_config(fake, tmp_path, drafts=True)).start()
    try:
        talker, waiter = 1003, 1004
        fake.user_message(talker, "Tell me everything", "Ross")
        assert await wait_until(lambda: fake.sent(talker, "sendMessageDraft"), 30)  # his reply is streaming
        fake.user_message(waiter, "Anybody home?", "Rachel")
        sent = await fake.wait_texts(waiter, 2, timeout=90)
        assert re.fullmatch(notice_pattern(texts.SERVER_BUSY), sent[0])  # told once, kindly, with the wait
        assert sent[1:] == joey_texts(running.session(waiter)) and user_texts(running.session(waiter)) == ["Anybody home?"]
        assert await fake.wait_texts(talker, 1) == joey_texts(running.session(talker))
    finally:
        await running.stop()


async def test_a_stop_while_a_reply_is_being_sent_lets_it_finish(mode, server, fake, tmp_path):
    # Telegram has the reply, but its answer is still on the way when the bot stops. Cancelling
    # the request then would leave the part unrecorded, and the restart would send it again.
    config = tg_config(fake, tmp_path)
    first = await Bot(mode, server, config).start()
    chat = 1005
    fake.hold_next("sendMessage", 1.0)
    fake.user_message(chat, "Quick, before you go", "Ross")
    await fake.wait_texts(chat, 1)
    await first.stop()  # while the held response is still on its way
    second = await Bot(mode, server, config).start()
    try:
        fake.user_message(chat, "Still here?", "Ross")  # a duplicate of the first would come before it
        sent = await fake.wait_texts(chat, 2)
        assert sent == joey_texts(second.session(chat))
        assert user_texts(second.session(chat)) == ["Quick, before you go", "Still here?"]
    finally:
        await second.stop()


BRIDGE_KEY = "bridge-key-5c1d9e0a7b"


async def test_a_trusted_bot_serves_500_chats_from_one_address_within_default_limits(make_server, fake, tmp_path):
    chats = 500
    server = make_server(trusted_keys=BRIDGE_KEY, max_new_tokens=8)
    assert server.config.max_sessions_per_client < chats  # the default bound that silenced chat 51
    running = await Bot("out-of-process", server, tg_config(fake, tmp_path), api_key=BRIDGE_KEY).start()
    try:
        for chat in range(1, chats + 1):
            fake.user_message(10_000 + chat, f"Hi Joey, I am guest {chat}", f"Guest{chat}")
        for chat in range(1, chats + 1):
            sent = await fake.wait_texts(10_000 + chat, 1, timeout=300)
            assert texts.TROUBLE not in sent
        # Every chat has its own session: 500 from one address, none refused.
        assert len(server.hub.sessions) >= chats and all(s.client is None for s in server.hub.sessions.values())
    finally:
        await running.stop()


async def test_a_refused_session_is_told_to_the_person_and_logged(make_server, fake, tmp_path, caplog):
    server = make_server(max_sessions_per_client=2)  # an untrusted bot: its third chat is refused
    running = await Bot("out-of-process", server, tg_config(fake, tmp_path)).start()
    try:
        for chat in (1, 2, 3):
            fake.user_message(20_000 + chat, "Hey Joey!", "Rachel")
        assert await fake.wait_texts(20_003, 1) == [texts.TROUBLE]
        for chat in (1, 2):
            assert (await fake.wait_texts(20_000 + chat, 1))[0] != texts.TROUBLE
        assert "refused a session for chat 20003: too_many_sessions" in caplog.text
    finally:
        await running.stop()


async def test_a_planned_restart_mid_reply_delivers_the_whole_reply_once(make_paced_server, fake, tmp_path):
    server = make_paced_server(delay=0.03, min_new_tokens=200, max_new_tokens=200, state_path=str(tmp_path / "s.db"))
    running = await Bot("out-of-process", server, tg_config(fake, tmp_path)).start()
    try:
        chat = 1_003
        fake.user_message(chat, "Tell me about your acting career", "Ross")
        assert await wait_until(lambda: any(s.answering for s in server.hub.sessions.values()), 30)
        await asyncio.sleep(0.3)  # mid-reply
        # What SIGTERM's handler does first (backend/shutdown.py), with a grace shorter than the reply.
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(server.hub.stop(0.3), server.server_loop))
        await asyncio.to_thread(server.__exit__, None, None, None)
        with RunningServer(server.config) as again:  # same port and sessions file, full speed
            sent = await fake.wait_texts(chat, 1, timeout=60)
            session = again.hub.sessions[running.adapter.clients[chat].session_id]
            assert sent == joey_texts(session) and user_texts(session) == ["Tell me about your acting career"]
            assert texts.TROUBLE not in sent and session.answered[next(iter(session.answered))]["tokens"] == 200
            await asyncio.sleep(1)
            assert len(fake.texts(chat)) == 1  # nothing twice
    finally:
        await running.stop()


async def test_a_bug_while_handling_a_message_is_still_answered(server, fake, tmp_path, caplog):
    running = await Bot("out-of-process", server, tg_config(fake, tmp_path)).start()
    try:
        async def broken(*args, **kwargs):
            raise RuntimeError("a bug in the handler")

        running.adapter.asker.answer = broken
        fake.user_message(30_001, "Hey Joey!", "Monica")
        assert await fake.wait_texts(30_001, 1) == [texts.TROUBLE]  # told, not dropped in silence
        assert "a bug in the handler" in caplog.text
    finally:
        await running.stop()
