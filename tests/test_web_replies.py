"""What the web page offers on each message: copy, regenerate, thumbs up / down, edit and the time it was said.

Real headless Chromium against a real server and the tiny model, as in test_web.py.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from playwright.async_api import expect

from tests.conftest import wait_until
from tests.web_fixtures import CHROMIUM, T, Page, history
from tests.web_fixtures import browser, page  # noqa: F401  (fixtures: pytest finds them by name here)

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
    pytest.mark.asyncio(loop_scope="module"),
]


async def test_copy_puts_the_reply_on_the_clipboard(server, page):
    await page.page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.http)
    await page.open(server)
    _, end = await page.exchange("What's your favourite food?")
    reply = page.page.locator(".msg--joey[data-state=done]")
    await reply.hover()
    copy = reply.get_by_role("button", name="Copy Joey's reply")
    await copy.click()
    await expect(copy).to_have_text("Copied", timeout=T)
    assert await page.page.evaluate("navigator.clipboard.readText()") == end["text"].strip()


async def test_regenerate_replaces_the_latest_reply(server, page):
    await page.open(server)
    first, _ = await page.exchange("Hey Joey")
    second, old = await page.exchange("Tell me a joke")
    await page.page.locator(".msg--joey[data-state=done]").nth(1).wait_for(timeout=T)
    # Only the latest reply can be regenerated: the server answers the last message again.
    earlier, latest = page.page.locator(".msg--joey").nth(0), page.page.locator(".msg--joey").nth(1)
    await earlier.hover()
    assert await earlier.locator(".tool--regenerate").count() == 1
    assert await earlier.locator(".tool--regenerate").is_hidden()
    await latest.hover()
    await latest.get_by_role("button", name="Regenerate Joey's reply").click()

    new = await page.frame(lambda f: f["type"] == "reply_end" and f["message_id"] == second and f["seq"] > old["seq"])
    assert {"type": "regenerate", "message_id": second} in page.sent
    assert any(f["type"] == "reply_start" and f.get("regenerate") for f in page.received)
    await expect(page.page.locator(".msg--joey[data-state=done]")).to_have_count(2, timeout=T)
    turns = history(server, await page.session_id())
    assert [(t["role"], t["message_id"]) for t in turns] == [("user", first), ("joey", first),
                                                             ("user", second), ("joey", second)]
    assert turns[-1]["text"] == new["text"]
    await expect(page.page.locator(".msg--joey .msg__text").nth(1)).to_have_text(new["text"].strip(), timeout=T)
    assert await page.joey_texts() == [t["text"] for t in turns if t["role"] == "joey"]

    await page.page.reload()  # the page and the server agree: one answer per question
    await page.online()
    await expect(page.page.locator("#messages .msg")).to_have_count(4, timeout=T)
    assert await page.joey_texts() == [t["text"] for t in turns if t["role"] == "joey"]


async def test_messages_show_their_time_on_hover_even_after_reload(server, page):
    await page.open(server)
    before = datetime.now(timezone.utc) - timedelta(seconds=1)
    message_id, _ = await page.exchange("What time is it?")
    await page.page.locator(".msg--joey[data-state=done]").wait_for(timeout=T)
    await page.say("Again")  # now the first reply is not the latest: its tools show on hover only
    await page.reply_end(await page.last_user_id())

    for _ in range(2):
        question = page.page.locator(f'.msg--user[data-message-id="{message_id}"]')
        time = question.locator("time.msg__time")
        await page.page.mouse.move(0, 0)
        await expect(question.locator(".msg__tools")).to_have_css("opacity", "0", timeout=T)
        await question.hover()
        await expect(question.locator(".msg__tools")).to_have_css("opacity", "1", timeout=T)
        assert re.search(r"\d{1,2}:\d{2}", await time.text_content())
        said = datetime.fromisoformat((await time.get_attribute("datetime")).replace("Z", "+00:00"))
        assert before <= said <= datetime.now(timezone.utc)
        assert await time.get_attribute("title")  # the full date, as a tooltip
        await page.page.reload()  # the browser remembers when each message was said
        await page.online()
        await expect(page.page.locator("#messages .msg")).to_have_count(4, timeout=T)


async def test_phone_shows_the_tools_of_the_latest_reply(server, browser):
    context = await browser.new_context(viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True)
    try:
        page = Page(await context.new_page())
        await page.open(server)
        await page.exchange("Hi")
        latest = page.page.locator(".msg--joey[data-state=done]")
        await expect(latest.get_by_role("button", name="Copy Joey's reply")).to_be_visible(timeout=T)
        await expect(latest.get_by_role("button", name="Regenerate Joey's reply")).to_be_visible(timeout=T)
        assert not page.console_errors()
    finally:
        await context.close()


async def test_thumbs_up_and_down_are_kept_on_the_server_and_shown_after_reload(make_server, page, tmp_path):
    feedback = tmp_path / "feedback.jsonl"
    server = make_server(feedback_path=str(feedback))
    await page.open(server)
    message_id, end = await page.exchange("Rate this one")
    reply = page.page.locator(f'.msg--joey[data-message-id="{message_id}"][data-state=done]')
    up, down = reply.get_by_role("button", name="Good reply"), reply.get_by_role("button", name="Bad reply")
    await expect(up).to_have_attribute("aria-pressed", "false", timeout=T)
    await up.focus()  # the keyboard reaches it: the tools show on focus
    await page.page.keyboard.press("Enter")
    await expect(up).to_have_attribute("aria-pressed", "true", timeout=T)
    assert {"type": "feedback", "message_id": message_id, "rating": "up"} in page.sent
    session_id = await page.session_id()
    assert history(server, session_id)[-1]["rating"] == "up"

    await page.page.reload()  # the rating comes back from the server's history
    await page.online()
    up, down = reply.get_by_role("button", name="Good reply"), reply.get_by_role("button", name="Bad reply")
    await expect(up).to_have_attribute("aria-pressed", "true", timeout=T)
    await expect(down).to_have_attribute("aria-pressed", "false")
    await reply.hover()
    await down.click()  # the other one replaces it
    await expect(down).to_have_attribute("aria-pressed", "true", timeout=T)
    await expect(up).to_have_attribute("aria-pressed", "false")
    await down.click()  # pressing the active one clears it
    await expect(down).to_have_attribute("aria-pressed", "false", timeout=T)
    assert await wait_until(lambda: "rating" not in history(server, session_id)[-1], timeout=T / 1000)
    lines = [json.loads(line) for line in feedback.read_text().splitlines()]
    assert [line["rating"] for line in lines] == ["up", "down", None]
    assert {line["reply"] for line in lines} == {end["text"]} and lines[0]["message_id"] == message_id


async def test_edit_a_sent_message_branches_the_conversation(server, page):
    await page.open(server)
    first, _ = await page.exchange("Where do you live?")
    second, _ = await page.exchange("Who is your roommate?")
    await page.page.locator(".msg--joey[data-state=done]").nth(1).wait_for(timeout=T)
    question = page.page.locator(f'.msg--user[data-message-id="{first}"]')
    await question.hover()
    await question.get_by_role("button", name="Edit your message").click()
    box = question.get_by_role("textbox", name="Edit your message")
    await expect(box).to_be_focused(timeout=T)
    await expect(box).to_have_value("Where do you live?")
    await page.page.keyboard.press("Escape")  # Cancel changes nothing
    await expect(box).to_have_count(0)
    await expect(page.page.locator("#messages .msg")).to_have_count(4)

    await question.get_by_role("button", name="Edit your message").click()
    await box.fill("What do you eat?")
    start = len(page.received)
    await question.get_by_role("button", name="Save and ask again").click()
    end = await page.frame(lambda f: f["type"] == "reply_end" and f["message_id"] == first
                           and page.received.index(f) >= start)
    assert {"type": "edit", "message_id": first, "text": "What do you eat?"} in page.sent
    rows = page.page.locator("#messages .msg")
    await expect(rows).to_have_count(2, timeout=T)  # the later exchange left the page with the branch
    await expect(rows.nth(0).locator(".msg__text")).to_have_text("What do you eat?")
    await expect(rows.nth(1).locator(".msg__text")).to_have_text(end["text"].strip(), timeout=T)
    turns = history(server, await page.session_id())
    assert [(t["role"], t["message_id"], t["text"]) for t in turns] == [("user", first, "What do you eat?"),
                                                                      ("joey", first, end["text"])]

    await page.page.reload()  # the server holds only the branch too
    await page.online()
    await expect(rows).to_have_count(2, timeout=T)
    await expect(rows.nth(0).locator(".msg__text")).to_have_text("What do you eat?")
    assert await page.joey_texts() == [end["text"]]
