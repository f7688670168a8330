"""The web chat page (frontends/web) in real headless Chromium against a real server and the tiny model.

The tiny model says gibberish, so every check compares the page with what the server said
(captured WebSocket frames, the hub's history), never with expected wording. Reloads, other
tabs and dropped connections are in test_web_resilience.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from playwright.async_api import expect

from backend.app import CSP
from tests.web_fixtures import CHROMIUM, T, WEB_ROOT, Page, history, paced
from tests.web_fixtures import browser, page  # noqa: F401  (fixtures: pytest finds them by name here)

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
    pytest.mark.asyncio(loop_scope="module"),
]


async def test_reply_streams_and_final_text_equals_server_text(server, page):
    await page.open(server)
    assert await page.page.get_attribute("#messages", "role") == "log"
    assert await page.page.get_attribute("#messages", "aria-live") == "polite"
    # Record whether "Joey is typing" ever shows: the tiny model may answer before a poll sees it.
    await page.page.evaluate("""() => {
        const typing = document.getElementById('typing');
        window.__typingSeen = false;
        new MutationObserver(() => { if (!typing.hidden) window.__typingSeen = true; })
            .observe(typing, { attributes: true });
    }""")
    await page.say("How you doin'?")
    message_id = await page.last_user_id()
    end = await page.reply_end(message_id)
    await page.page.wait_for_selector(f'.msg--joey[data-message-id="{message_id}"][data-state=done]', timeout=T)

    chunks = [f for f in page.received if f["type"] == "chunk" and f["message_id"] == message_id]
    assert len(chunks) > 1 and "".join(c["text"] for c in chunks) == end["text"]  # it really streamed
    assert await page.joey_texts() == [end["text"]]
    assert await page.page.evaluate("window.__typingSeen") is True
    assert await page.page.is_hidden("#typing")
    assert history(server, await page.session_id())[-1] == {"role": "joey", "text": end["text"],
                                                           "message_id": message_id}
    # Shift+Enter is a new line, not a send.
    await page.page.fill("#input", "line one")
    await page.page.press("#input", "Shift+Enter")
    await page.page.type("#input", "line two")
    assert await page.page.input_value("#input") == "line one\nline two"
    assert await page.page.locator("#messages .msg--user").count() == 1


async def test_stop_cancels_the_reply(make_server, page):
    server = paced(make_server(min_new_tokens=200, max_new_tokens=200))
    await page.open(server)
    await page.say("Tell me a long story")
    message_id = await page.last_user_id()
    await page.page.wait_for_selector("#typing", state="visible", timeout=T)
    await page.page.wait_for_selector(".msg--joey .msg__text:not(:empty)", timeout=T)
    await page.page.click("#stop")
    end = await page.reply_end(message_id)
    assert end["finish_reason"] == "cancelled" and end["tokens"] < 200
    assert {"type": "cancel"} in page.sent
    await page.page.wait_for_selector(".msg--joey[data-finish=cancelled][data-state=done]", timeout=T)
    assert await page.joey_texts() == [end["text"]]
    assert await page.page.is_hidden("#typing") and await page.page.is_hidden("#stop")
    await page.page.fill("#input", "Next one")
    assert await page.page.is_enabled("#send")


async def test_messages_typed_while_joey_answers_wait_their_turn(make_server, page):
    server = paced(make_server(min_new_tokens=40, max_new_tokens=40))
    await page.open(server)
    await page.say("First")
    await page.page.wait_for_selector("#typing", state="visible", timeout=T)
    await page.say("Second")  # Joey is still answering: it is queued, not refused with busy
    ids = await page.page.eval_on_selector_all("#messages .msg--user", "rows => rows.map(r => r.dataset.messageId)")
    assert len(ids) == 2
    for message_id in ids:
        await page.reply_end(message_id)
    await page.page.locator("#messages .msg--joey[data-state=done]").nth(1).wait_for(timeout=T)
    assert not [f for f in page.received if f["type"] == "error"]
    sent = [f["id"] for f in page.sent if f["type"] == "message"]
    assert sent == ids
    joey = [h["text"] for h in history(server, await page.session_id()) if h["role"] == "joey"]
    assert await page.joey_texts() == joey and len(joey) == 2


async def test_new_chat_clears_view_and_server_history(server, page):
    await page.open(server)
    await page.say("Remember the duck")
    await page.reply_end(await page.last_user_id())
    session_id = await page.session_id()
    assert history(server, session_id)
    await page.page.click("#new-chat")
    await page.frame(lambda f: f["type"] == "reset")
    await expect(page.page.locator("#messages > *")).to_have_count(0, timeout=T)
    assert await page.page.is_visible("#empty")
    assert history(server, session_id) == []
    assert {"type": "reset"} in page.sent


async def test_markup_in_messages_renders_as_text(server, page):
    await page.open(server)
    xss = "<img src=x onerror=alert(1)><script>alert(2)</script>"
    await page.say(xss)
    message_id = await page.last_user_id()
    end = await page.reply_end(message_id)
    await page.page.wait_for_selector(".msg--joey[data-state=done]", timeout=T)
    assert await page.page.text_content("#messages .msg--user .msg__text") == xss
    assert await page.page.locator("#messages img, #messages script").count() == 0
    assert await page.joey_texts() == [end["text"]]
    assert not page.dialogs


async def test_limits_and_errors_are_shown_in_the_page(make_server, page):
    server = make_server(rate_limit_messages=1, max_message_chars=20)
    await page.open(server)
    await expect(page.page.locator("#counter")).to_have_text("0 / 20", timeout=T)  # the server's limit
    await page.page.fill("#input", "x" * 21)
    assert await page.page.text_content("#counter") == "21 / 20"
    assert "counter--over" in await page.page.get_attribute("#counter", "class")
    assert await page.page.is_disabled("#send")
    await page.page.press("#input", "Enter")
    assert not [f for f in page.sent if f["type"] == "message"]

    await page.say("Hi Joey")
    await page.reply_end(await page.last_user_id())
    await page.say("Again!")  # over the rate limit of one message per window
    error = await page.frame(lambda f: f["type"] == "error")
    assert error["code"] == "rate_limited"
    notice = page.page.locator("#messages .notice--error")
    await notice.wait_for(timeout=T)
    assert "slow down" in (await notice.text_content()).lower()
    queued = page.page.locator(".msg--user[data-state=queued]")  # resent by itself after retry_after
    await queued.wait_for(timeout=T)
    assert "Waiting to send" in await queued.text_content()
    assert await page.page.is_enabled("#input")


async def test_phone_width_has_no_horizontal_scroll(server, browser):
    context = await browser.new_context(viewport={"width": 360, "height": 640}, is_mobile=True, has_touch=True)
    try:
        page = Page(await context.new_page())
        await page.open(server)
        await page.say("a" * 300)  # one long unbroken word must wrap, not widen the page
        await page.reply_end(await page.last_user_id())
        width = await page.page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360
        for selector in ("#new-chat", "#input", "#send", "h1"):
            box = await page.page.locator(selector).bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= 360, selector
        assert not page.console_errors()
    finally:
        await context.close()


async def test_page_is_served_with_csp_and_no_inline_code(server):
    async with httpx.AsyncClient() as client:
        response = await client.get(server.http + "/")
    assert response.status_code == 200 and "Joey Tribbiani" in response.text
    assert response.headers["content-security-policy"] == CSP
    for path in WEB_ROOT.rglob("*.html"):
        html = path.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), f"inline script in {path.name}"
        assert not re.search(r"<style\b|\sstyle=|\son[a-z]+=", html, re.I), f"inline style or handler in {path.name}"
    for path in WEB_ROOT.rglob("*.js"):
        code = path.read_text()
        assert not re.search(r"\.(inner|outer)HTML\s*\+?=|insertAdjacentHTML|document\.write|\beval\(", code), path.name
