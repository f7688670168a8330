"""Past chats in the web page: New chat keeps the old one, the list reopens (resumes) or deletes chats.

Real headless Chromium against a real server and the tiny model, as in test_web.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import expect

from tests.conftest import wait_until
from tests.web_fixtures import CHROMIUM, T, history
from tests.web_fixtures import browser, page  # noqa: F401  (fixtures: pytest finds them by name here)

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
    pytest.mark.asyncio(loop_scope="module"),
]


async def chat_with(page, text: str) -> str:
    message_id, _ = await page.exchange(text)
    await page.page.locator(f'.msg--joey[data-message-id="{message_id}"][data-state=done]').wait_for(timeout=T)
    return message_id


async def switch(page, click) -> str:
    """Click something that moves the page to another session; returns the session it then holds."""
    start = len(page.received)
    await click()
    await page.frame(lambda f: f["type"] == "session" and page.received.index(f) >= start)
    await page.online()
    return [f for f in page.received[start:] if f["type"] == "session"][-1]["session_id"]


async def test_new_chat_keeps_the_old_one_and_the_list_reopens_it(server, page):
    await page.open(server)
    await chat_with(page, "Remember the duck")
    first = await page.session_id()
    kept = history(server, first)

    second = await switch(page, lambda: page.page.click("#new-chat"))
    assert second != first and await page.session_id() == second
    assert await page.page.is_visible("#empty")
    assert not [f for f in page.sent if f["type"] == "reset"]  # nothing was wiped
    assert history(server, first) == kept
    await chat_with(page, "Now about the chick")

    await page.page.click("#chats-button")
    items = page.page.locator("#chat-list .chat-item")
    await expect(items).to_have_count(2, timeout=T)
    assert await items.nth(0).get_attribute("aria-current") == "true"  # the open one, most recent first
    await expect(items.nth(1)).to_contain_text("Remember the duck")
    assert await switch(page, items.nth(1).locator(".chat-item__open").click) == first  # resumed, not a copy
    assert [f for f in page.sent if f["type"] == "resume"][-1]["session_id"] == first
    rows = page.page.locator("#messages .msg")
    await expect(rows).to_have_count(2, timeout=T)
    assert await page.joey_texts() == [h["text"] for h in kept if h["role"] == "joey"]
    await expect(rows.first).to_contain_text("Remember the duck")
    assert history(server, second)  # the other chat is still there too


async def test_delete_asks_twice_and_erases_the_chat_on_the_server(server, page):
    await page.open(server)
    await chat_with(page, "Delete me later")
    first = await page.session_id()
    second = await switch(page, lambda: page.page.click("#new-chat"))
    await chat_with(page, "And me too")

    await page.page.click("#chats-button")
    items = page.page.locator("#chat-list .chat-item")
    await expect(items).to_have_count(2, timeout=T)
    other = page.page.locator(f'#chat-list .chat-item[data-session-id="{first}"] .chat-item__delete')
    await other.click()
    await expect(items).to_have_count(2)  # one click only asks
    await expect(other).to_have_text("Delete?")
    await other.click()
    await expect(items).to_have_count(1, timeout=T)
    assert await wait_until(lambda: history(server, first) == [], timeout=T / 1000)
    assert history(server, second)  # the open chat is untouched

    await page.page.locator(f'#chat-list .chat-item[data-session-id="{second}"] .chat-item__delete').click()
    await page.page.locator(f'#chat-list .chat-item[data-session-id="{second}"] .chat-item__delete').click()
    await expect(items).to_have_count(0, timeout=T)
    await page.page.keyboard.press("Escape")  # closes the list
    await expect(page.page.locator("#chats")).to_be_hidden(timeout=T)
    await expect(page.page.locator("#messages .msg")).to_have_count(0, timeout=T)
    assert await wait_until(lambda: history(server, second) == [], timeout=T / 1000)
