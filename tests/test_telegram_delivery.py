"""The Telegram adapter when Telegram or the Joey server says "not now".

Real python-telegram-bot against the fake Bot API. A Telegram outage longer than one call's
retries, the server's rate limit and its ``server_busy``: nothing is dropped, nothing is
sent twice, and a chat's replies keep the order of its messages.
"""

from __future__ import annotations

import re

import pytest

from frontends.telegram import texts
from tests.fake_telegram import BAD_GATEWAY
from tests.telegram_fixtures import Bot, joey_texts, tg_config, user_texts
from tests.telegram_fixtures import fake, mode  # noqa: F401  (fixtures: pytest finds them by name here)

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


def notice_pattern(template: str) -> str:
    return re.escape(template).replace(re.escape("{wait}"), r"(a sec|\d+ seconds|a minute)")


async def test_an_outage_longer_than_the_retries_is_outlasted_in_order(mode, server, fake, tmp_path):
    # Two tries per call, so five refusals in a row outlast one call's retries twice over.
    running = await Bot(mode, server, tg_config(fake, tmp_path, retry_attempts=2, max_backoff_s=0.2)).start()
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


async def test_server_busy_is_shown_kindly(make_server, fake, tmp_path):
    # No room in the queue at all: every message is refused with server_busy and a retry_after.
    server = make_server(max_queued_replies=0)
    running = await Bot("out-of-process", server, tg_config(fake, tmp_path)).start()
    try:
        chat = 1003
        fake.user_message(chat, "Anybody home?", "Rachel")
        sent = await fake.wait_texts(chat, 1)
        assert re.fullmatch(notice_pattern(texts.SERVER_BUSY), sent[0])
        assert texts.TROUBLE not in sent
    finally:
        await running.stop()
