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
from tests.conftest import connect
from tests.web_fixtures import CHROMIUM, T, WEB_ROOT, Page, history
from tests.web_fixtures import browser, make_paced_server, page  # noqa: F401  (fixtures: pytest finds them by name here)

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
    pytest.mark.asyncio(loop_scope="module"),
]


async def test_reply_streams_and_final_text_equals_server_text(server, page):
    await page.open(server)
    assert await page.page.get_attribute("#messages", "role") == "log"
    assert await page.page.get_attribute("#messages", "aria-live") == "polite"
    # Record whether Joey's typing bubble ever shows: the tiny model may answer before a poll sees it.
    await page.page.evaluate("""() => {
        window.__typingSeen = false;
        new MutationObserver(() => {
            if (document.querySelector('.msg--joey[data-state=streaming]')) window.__typingSeen = true;
        }).observe(document.getElementById('messages'), { subtree: true, childList: true, attributes: true });
    }""")
    message_id, end = await page.exchange("How you doin'?")
    await page.page.wait_for_selector(f'.msg--joey[data-message-id="{message_id}"][data-state=done]', timeout=T)

    chunks = [f for f in page.received if f["type"] == "chunk" and f["message_id"] == message_id]
    assert len(chunks) > 1 and "".join(c["text"] for c in chunks) == end["text"]  # it really streamed
    assert await page.joey_texts() == [end["text"]]
    assert await page.page.evaluate("window.__typingSeen") is True
    assert await page.page.get_attribute("#messages", "aria-busy") == "false"
    assert history(server, await page.session_id())[-1] == {"role": "joey", "text": end["text"],
                                                           "message_id": message_id}
    # Shift+Enter is a new line, not a send.
    await page.page.fill("#input", "line one")
    await page.page.press("#input", "Shift+Enter")
    await page.page.type("#input", "line two")
    assert await page.page.input_value("#input") == "line one\nline two"
    assert await page.page.locator("#messages .msg--user").count() == 1


@pytest.mark.parametrize("how", ["button", "escape"])
async def test_stop_cancels_the_reply(make_paced_server, page, how):
    server = make_paced_server(min_new_tokens=200, max_new_tokens=200)
    await page.open(server)
    message_id = await page.streaming("Tell me a long story")
    # One typing signal: Joey's bubble with its caret. No "typing…" line elsewhere on the page.
    assert await page.page.locator("#typing").count() == 0
    assert "typing" not in (await page.page.text_content("#status")).lower()
    assert await page.page.locator(".msg--joey[data-state=streaming]").count() == 1
    if how == "button":
        await page.page.click("#stop")
    else:
        await page.page.locator("#messages").focus()  # Escape works wherever the focus is
        await page.page.keyboard.press("Escape")
    end = await page.reply_end(message_id)
    assert end["finish_reason"] == "cancelled" and end["tokens"] < 200
    assert {"type": "cancel"} in page.sent
    await page.page.wait_for_selector(".msg--joey[data-finish=cancelled][data-state=done]", timeout=T)
    assert await page.joey_texts() == [end["text"]]
    assert await page.page.is_hidden("#stop")
    await page.page.fill("#input", "Next one")
    assert await page.page.is_enabled("#send")


async def test_focus_goes_to_the_input_when_stop_goes_away_under_it(make_paced_server, page):
    server = make_paced_server(min_new_tokens=100, max_new_tokens=100)
    await page.open(server)
    focused = "document.activeElement.id"
    for how in ("escape", "reply end"):
        await page.say(f"Tell me a story, {how}")
        message_id = await page.last_user_id()
        await page.page.wait_for_selector(".msg--joey[data-state=streaming] .msg__text:not(:empty)", timeout=T)
        await page.page.focus("#stop")  # a keyboard user on Stop
        if how == "escape":
            await page.page.keyboard.press("Escape")
        end = await page.reply_end(message_id)
        assert end["finish_reason"] == ("cancelled" if how == "escape" else "length")
        await expect(page.page.locator("#stop")).to_be_hidden(timeout=T)
        assert await page.page.evaluate(focused) == "input", how  # not <body>


ROWS = "rows => rows.map(r => [r.dataset.role, r.dataset.messageId])"


async def test_each_answer_sits_under_its_question_live_and_after_reload(make_paced_server, page):
    server = make_paced_server(min_new_tokens=60, max_new_tokens=60)
    await page.open(server)
    await page.say("First")
    await page.page.wait_for_selector(".msg--joey[data-state=streaming]", timeout=T)
    await page.say("Second")  # Joey is still answering: these wait their turn, not refused with busy
    await page.say("Third")
    ids = await page.page.eval_on_selector_all("#messages .msg--user", "rows => rows.map(r => r.dataset.messageId)")
    assert len(ids) == 3
    # Live, an answer (streaming or done) sits right under its question, above the ones still waiting.
    live = await page.page.eval_on_selector_all("#messages .msg", ROWS)
    assert live[:2] == [["user", ids[0]], ["joey", ids[0]]]
    for above, row in zip(live, live[1:]):
        assert row[0] == "user" or above == ["user", row[1]], live
    for message_id in ids:
        await page.reply_end(message_id)
    await page.page.locator("#messages .msg--joey[data-state=done]").nth(2).wait_for(timeout=T)
    assert not [f for f in page.received if f["type"] == "error"]
    assert [f["id"] for f in page.sent if f["type"] == "message"] == ids
    turns = history(server, await page.session_id())
    expected = [[h["role"], h["message_id"]] for h in turns]
    assert expected == [[role, i] for i in ids for role in ("user", "joey")]
    assert await page.page.eval_on_selector_all("#messages .msg", ROWS) == expected
    assert await page.joey_texts() == [h["text"] for h in turns if h["role"] == "joey"]

    await page.page.reload()
    await page.online()
    await expect(page.page.locator("#messages .msg")).to_have_count(6, timeout=T)
    assert await page.page.eval_on_selector_all("#messages .msg", ROWS) == expected


async def test_starter_prompt_sends_from_the_empty_state(server, page):
    await page.open(server)
    assert "small AI playing Joey" in await page.page.text_content("#empty")  # what this is, honestly
    starter = page.page.locator("#starters button").first
    text = (await starter.text_content()).strip()
    await starter.click()
    message_id = await page.last_user_id()
    end = await page.reply_end(message_id)
    assert [f["text"] for f in page.sent if f["type"] == "message"] == [text]
    await page.page.wait_for_selector(".msg--joey[data-state=done]", timeout=T)
    assert await page.joey_texts() == [end["text"]]
    assert await page.page.is_hidden("#empty")


async def test_markup_in_messages_renders_as_text(server, page):
    await page.open(server)
    xss = "<img src=x onerror=alert(1)><script>alert(2)</script>"
    message_id, end = await page.exchange(xss)
    await page.page.wait_for_selector(".msg--joey[data-state=done]", timeout=T)
    assert await page.page.text_content("#messages .msg--user .msg__text") == xss
    assert await page.page.locator("#messages img, #messages script").count() == 0
    assert await page.joey_texts() == [end["text"]]
    assert not page.dialogs


async def test_limits_and_errors_are_shown_in_the_page(make_server, page):
    server = make_server(rate_limit_messages=1, rate_limit_window_s=8, max_message_chars=20)
    await page.open(server)
    await expect(page.page.locator("#counter")).to_have_text("0 / 20", timeout=T)  # the server's limit
    await page.page.fill("#input", "x" * 21)
    assert await page.page.text_content("#counter") == "21 / 20"
    assert await page.page.text_content("#hint") == "Too long: 1 character over the limit"
    await page.page.fill("#input", "x" * 22)
    assert await page.page.text_content("#hint") == "Too long: 2 characters over the limit"
    assert "counter--over" in await page.page.get_attribute("#counter", "class")
    assert await page.page.is_disabled("#send")
    await page.page.press("#input", "Enter")
    assert not [f for f in page.sent if f["type"] == "message"]
    # The counter counts what a person sees: a family emoji (7 code points) is one character.
    await page.page.fill("#input", "hi \U0001F468\u200D\U0001F469\u200D\U0001F467\u200D\U0001F466")
    assert await page.page.text_content("#counter") == "4 / 20"

    await page.exchange("Hi Joey")
    await page.say("Again!")  # over the rate limit of one message per window
    again = await page.last_user_id()
    error = await page.frame(lambda f: f["type"] == "error")
    assert error["code"] == "rate_limited"
    notice = page.page.locator("#messages .notice--error")
    await notice.wait_for(timeout=T)
    assert "slow down" in (await notice.text_content()).lower()
    queued = page.page.locator(".msg--user[data-state=queued]")
    await queued.wait_for(timeout=T)
    assert "Waiting to send" in await queued.text_content()
    assert await page.page.is_enabled("#input")
    # The notice counts down, then leaves the log, and the message goes out by itself (same id).
    first = int(re.search(r"(\d+) s", await notice.text_content()).group(1))
    await expect(notice).to_have_text(re.compile(rf"\b(?!{first}\b)\d+ s"), timeout=T)
    await expect(notice).to_have_count(0, timeout=T)
    await page.reply_end(again)
    assert [f["id"] for f in page.sent if f["type"] == "message"].count(again) == 2


async def test_server_busy_is_explained_and_the_message_goes_out_later(make_paced_server, page):
    server = make_paced_server(max_batch=1, max_queued_replies=0, min_new_tokens=200, max_new_tokens=200)
    async with connect(server.url) as other:  # someone else holds the only engine slot
        await other.open()
        await other.send(type="message", id="long", text="Tell me a long story")
        await other.until("chunk")
        await page.open(server)
        await page.say("Anyone home?")
        message_id = await page.last_user_id()
        error = await page.frame(lambda f: f["type"] == "error")
        assert error["code"] == "server_busy" and error["message_id"] == message_id
        notice = page.page.locator("#messages .notice--warn")
        await expect(notice).to_contain_text("a lot of people", timeout=T)
        await expect(notice).to_have_text(re.compile(r"goes out in \d+ s"))
        row = page.page.locator(f'.msg--user[data-message-id="{message_id}"]')
        await expect(row).to_have_attribute("data-state", "queued")
        await expect(row).to_contain_text("Waiting to send")
        await other.send(type="cancel")  # the slot frees up
        await other.until("reply_end")
        await expect(notice).to_have_count(0, timeout=T)  # the countdown ends and leaves the log
        end = await page.reply_end(message_id)  # resent by itself, same id
        await expect(page.page.locator(".msg--joey[data-state=done] .msg__text")).to_have_text(end["text"].strip(),
                                                                                             timeout=T)


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
