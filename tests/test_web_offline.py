"""The web page when the network or the page goes away: a queued follow-up survives a reload, the
page shell opens offline, a reply that ended offline keeps its time, and the banner's countdown
tells the real wait.

Real headless Chromium against a real server and the tiny model, as in test_web.py.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from pathlib import Path

import pytest
from playwright.async_api import expect

from tests.conftest import RunningServer
from tests.web_fixtures import CHROMIUM, T, WEB_ROOT, history
from tests.web_fixtures import browser, make_paced_server, page  # noqa: F401  (fixtures: pytest finds them by name here)

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
    pytest.mark.asyncio(loop_scope="module"),
]

OUTBOX = "localStorage.getItem('joey-chat.outbox.v1')"


def sent_ids(page) -> list[str]:
    return [f["id"] for f in page.sent if f["type"] == "message"]


async def test_a_follow_up_typed_while_joey_answers_survives_a_reload_and_goes_out_once(make_paced_server, page):
    server = make_paced_server(min_new_tokens=200, max_new_tokens=200)
    await page.open(server)
    first = await page.streaming("Tell me a long story")
    await page.say("And then what happened?")
    follow = await page.last_user_id()
    await expect(page.page.locator(f'.msg--user[data-message-id="{follow}"]')).to_contain_text("Waiting for Joey")
    assert sent_ids(page) == [first]

    await page.page.reload()  # mid-reply, the follow-up not yet sent
    await expect(page.page.locator(f'.msg--user[data-message-id="{follow}"]')).to_be_visible(timeout=T)
    await page.online()
    await page.reply_end(follow)
    await expect(page.page.locator("#messages .msg--joey[data-state=done]")).to_have_count(2, timeout=T)
    turns = history(server, await page.session_id())
    assert [(t["role"], t["message_id"]) for t in turns] == [
        ("user", first), ("joey", first), ("user", follow), ("joey", follow)]
    assert sent_ids(page) == [first, follow]  # exactly once each
    assert await page.page.evaluate(OUTBOX) is None  # answered: nothing left to keep

    await page.page.reload()  # nothing is sent again
    await page.online()
    await expect(page.page.locator("#messages .msg")).to_have_count(4, timeout=T)
    assert sent_ids(page) == [first, follow]
    assert await page.joey_texts() == [t["text"] for t in turns if t["role"] == "joey"]


async def test_a_reload_offline_opens_the_page_from_its_cache_with_the_queued_message(make_server, page, tmp_path):
    server = make_server(state_path=str(tmp_path / "sessions.db"))
    await page.open(server)
    for _ in range(300):  # the service worker runs the page (wait_for_function would need the CSP's unsafe-eval)
        if await page.page.evaluate("navigator.serviceWorker.controller !== null"):
            break
        await asyncio.sleep(0.1)
    assert await page.page.evaluate("navigator.serviceWorker.controller !== null")
    assert await page.page.evaluate("fetch('/healthz').then(r => r.status)") == 200  # an API answer: not to be kept

    context = page.page.context
    await context.set_offline(True)
    await page.say("Anyone there?")
    queued = await page.last_user_id()
    await asyncio.to_thread(server.__exit__, None, None, None)  # and the server is gone too
    await page.page.reload()
    await expect(page.page.locator("h1")).to_have_text("Joey Tribbiani")
    await expect(page.page.locator("#banner")).to_contain_text("offline", timeout=T)  # the page's code runs
    row = page.page.locator(f'.msg--user[data-message-id="{queued}"]')
    await expect(row).to_have_attribute("data-state", "queued")
    await expect(row).to_contain_text("Waiting for the connection")
    # Only the shell is kept, never an API answer.
    cached = await page.page.evaluate(
        "caches.keys().then(ks => Promise.all(ks.map(k => caches.open(k).then(c => c.keys()))))"
        ".then(all => all.flat().map(r => new URL(r.url).pathname))")
    shell = {"/", "/index.html", "/styles.css", "/favicon.svg"} | {f"/js/{p.name}" for p in WEB_ROOT.glob("js/*.js")}
    assert sorted(cached) == sorted(shell)

    with RunningServer(server.config):  # same port, same sessions file
        await context.set_offline(False)
        await page.online()
        await page.reply_end(queued)
        await expect(row).to_have_attribute("data-state", "done", timeout=T)
        assert sent_ids(page) == [queued]


async def test_a_reply_that_ended_while_offline_shows_when_it_came(make_paced_server, page):
    server = make_paced_server(min_new_tokens=150, max_new_tokens=150, orphan_grace_s=60)
    await page.open(server)
    message_id = await page.streaming("Tell me about pizza")
    session_id = await page.session_id()
    await page.page.context.set_offline(True)
    for _ in range(300):  # the reply ends on the server while the page is away
        if any(t["role"] == "joey" for t in history(server, session_id)):
            break
        await asyncio.sleep(0.1)
    await page.page.context.set_offline(False)
    await page.online()
    assert not [f for f in page.received if f["type"] == "reply_end"]  # the page never saw it end

    time_node = page.page.locator(f'.msg--joey[data-message-id="{message_id}"][data-state=done] time.msg__time')
    await expect(time_node).to_have_attribute("datetime", re.compile(r"^\d{4}-"), timeout=T)
    assert await time_node.get_attribute("hidden") is None
    said = await time_node.get_attribute("datetime")
    await page.page.reload()  # remembered, like any other time
    await page.online()
    await expect(time_node).to_have_attribute("datetime", said, timeout=T)


async def test_the_banner_counts_down_the_real_wait_to_the_next_try(make_server, page):
    server = make_server()
    await page.open(server)
    await asyncio.to_thread(server.__exit__, None, None, None)
    counted = {}  # try number: the seconds the banner showed while waiting for it
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not any(len(set(shown)) >= 3 for shown in counted.values()):
        hidden, text, tries, left_ms = await page.page.evaluate(
            "[document.getElementById('banner').hidden, document.getElementById('banner-text').textContent,"
            " joeyChat.failedTries, joeyChat.retryInMs]")
        await asyncio.sleep(0.2)
        shown = re.search(r"in (\d+) s", text)
        if hidden or not shown:
            assert hidden or text.endswith("Reconnecting…"), text
            continue
        seconds = int(shown.group(1))
        assert seconds >= 2, text  # never a "1 s" that quick tries keep showing
        assert math.ceil(left_ms / 1000) <= seconds <= math.ceil(left_ms / 1000) + 1, (text, left_ms)
        counted.setdefault(tries, []).append(seconds)
    # Past the quick tries the wait grows, and the banner counts it down second by second.
    longest = max(counted.values(), key=lambda shown: len(set(shown)), default=[])
    assert len(set(longest)) >= 3 and longest == sorted(longest, reverse=True), counted
