"""Webhook mode: Telegram posts updates to a route of the bot's app instead of being polled.

The fake Bot API gets setWebhook (with the secret token), refuses getUpdates while a webhook is
set (409, as Telegram does), and the test posts updates over real HTTP, as Telegram would, to
the Joey server's app (``joey serve --telegram``) or the bot's own (``joey telegram --listen``),
which also serves the standalone bot's /healthz and /metrics.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

import httpx
import pytest

from tests.conftest import free_port, wait_until
from tests.telegram_fixtures import TOKEN, Bot, all_handled, tg_config
from tests.telegram_fixtures import fake  # noqa: F401  (fixture: pytest finds it by name here)

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

SECRET = "webhook-Secret_42"


async def test_in_process_webhook_checks_the_secret_and_answers_once(monkeypatch, make_server, fake, tmp_path,
                                                                       caplog):
    caplog.set_level(logging.DEBUG)
    for name, value in (("TELEGRAM_BOT_TOKEN", TOKEN), ("JOEY_TELEGRAM_BASE_URL", fake.base_url),
                        ("JOEY_TELEGRAM_STATE", str(tmp_path / "tg.db")),
                        ("JOEY_TELEGRAM_WEBHOOK_URL", "https://joey.example/tg/hook"),
                        ("JOEY_TELEGRAM_WEBHOOK_SECRET", SECRET)):
        monkeypatch.setenv(name, value)
    server = make_server(frontends="telegram")
    assert fake.webhook["url"] == "https://joey.example/tg/hook" and fake.webhook["secret_token"] == SECRET
    hook, chat = server.http + "/tg/hook", 1201
    first = fake.user_message(chat, "Hi Joey", "Ross")
    assert await fake.post_update(first, hook, secret="") == 403  # no header: not Telegram
    assert await fake.post_update(first, hook, secret="guess") == 403
    assert await fake.post_update({"no": "update"}, hook) == 400
    assert await fake.post_update(first, hook) == 200
    assert await fake.post_update(first, hook) == 200  # Telegram retrying: the same update again
    await fake.wait_texts(chat, 1)
    assert await fake.post_update(fake.user_message(chat, "Still there?", "Ross"), hook) == 200
    await fake.wait_texts(chat, 2)
    assert await wait_until(lambda: all_handled(fake, tg_config(fake, tmp_path, state=str(tmp_path / "tg.db"))), 10)
    assert len(fake.texts(chat)) == 2  # the repeat was answered once
    session = next(s for s in server.hub.sessions.values() if s.user_name == "Ross")
    assert [h["text"] for h in session.history if h["role"] == "user"] == ["Hi Joey", "Still there?"]
    assert not fake.sent(method="getUpdates", failed=True)  # never polled
    assert SECRET not in caplog.text and "refused a request" in caplog.text


async def test_joey_telegram_serves_its_webhook_and_polling_takes_over_again(server, fake, tmp_path):
    from frontends.telegram.cli import serve

    port = free_port()
    config = tg_config(fake, tmp_path, server=server.url, webhook_url="https://joey.example/hook",
                       listen=f"127.0.0.1:{port}")
    stop = asyncio.Event()
    task = asyncio.create_task(serve(config, stop=stop))
    assert await wait_until(lambda: fake.webhook is not None, 20)
    secret = fake.webhook["secret_token"]  # a random one: none was configured
    assert len(secret) >= 32
    hook = f"http://127.0.0.1:{port}/hook"
    assert await fake.post_update(fake.user_message(1301, "Hey", "Monica"), hook, secret="wrong") == 403
    assert await fake.post_update(fake.user_message(1301, "Hey", "Monica"), hook) == 200
    await fake.wait_texts(1301, 1)
    stop.set()
    assert await asyncio.wait_for(task, 30) == 0
    with pytest.raises(httpx.ConnectError):  # stopped: nothing listens any more
        await fake.post_update(fake.user_message(1301, "Hey", "Monica"), hook)
    # Polling again: the webhook is deleted and getUpdates serves the chat.
    running = await Bot("out-of-process", server, dataclasses.replace(config, webhook_url="", listen="")).start()
    try:
        assert fake.webhook is None
        fake.user_message(1301, "Polled now?", "Monica")
        await fake.wait_texts(1301, 2)
    finally:
        await running.stop()


async def test_joey_telegram_has_its_own_healthz_and_metrics(server, fake, tmp_path, capsys):
    from prometheus_client.parser import text_string_to_metric_families

    from frontends.telegram.cli import serve

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    config = tg_config(fake, tmp_path, server=server.url, listen=f"127.0.0.1:{port}", blocked_chats="1502")
    fake.hold_next("getMe", 3)  # the bot is still starting: listening, not yet taking updates
    stop = asyncio.Event()
    task = asyncio.create_task(serve(config, stop=stop))
    async with httpx.AsyncClient(timeout=10) as http:
        async def health() -> httpx.Response | None:
            try:
                return await http.get(base + "/healthz")
            except httpx.ConnectError:
                return None

        deadline = time.monotonic() + 20
        while (early := await health()) is None:
            assert time.monotonic() < deadline, "nothing listens on --listen"
            await asyncio.sleep(0.05)
        assert early.status_code == 503 and early.json()["status"] == "not taking updates"
        fake.user_message(1501, "Hi Joey", "Gunther")
        fake.user_message(1502, "Hi Joey", "Janice")  # blocked
        await fake.wait_texts(1501, 1)
        assert await wait_until(lambda: all_handled(fake, config), 30)
        ready = await http.get(base + "/healthz")
        assert ready.status_code == 200 and ready.json() == {"status": "ok", "mode": "polling",
                                                              "joey_server": "reachable"}
        scraped = await http.get(base + "/metrics")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(scraped.text) for s in family.samples}
    assert samples[("joey_telegram_updates_total", ())] == 2 and samples[("joey_telegram_replies_total", ())] == 1
    assert samples[("joey_telegram_turned_away_total", (("reason", "chat_not_allowed"),))] == 1
    assert samples[("joey_telegram_inbox", ())] == 0 and samples[("joey_telegram_open_chats", ())] == 1
    stop.set()
    assert await asyncio.wait_for(task, 30) == 0
    # A port already taken: one line, exit 2.
    taken = dataclasses.replace(config, listen=f"127.0.0.1:{server.config.port}")
    assert await serve(taken, stop=stop) == 2
    assert "cannot listen on" in capsys.readouterr().err
