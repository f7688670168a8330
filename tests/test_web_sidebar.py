"""Chats in a sidebar on wide screens (a dialog on phones), with search and rename.

Real headless Chromium against a real server and the tiny model, as in test_web.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import expect

from tests.web_fixtures import CHROMIUM, T, Page
from tests.web_fixtures import browser  # noqa: F401  (a fixture: pytest finds it by name here)

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
    pytest.mark.asyncio(loop_scope="module"),
]


async def new_chat_with(page: Page, text: str) -> None:
    start = len(page.received)
    await page.page.get_by_role("button", name="Start a new chat").click()
    await page.frame(lambda f: f["type"] == "session" and page.received.index(f) >= start)
    await page.online()
    message_id, _ = await page.exchange(text)
    await page.page.locator(f'.msg--joey[data-message-id="{message_id}"][data-state=done]').wait_for(timeout=T)


async def test_wide_screens_keep_the_chats_in_a_sidebar_with_search_and_rename(server, browser):
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = Page(await context.new_page())
        await page.open(server)
        sidebar = page.page.locator("#chats")
        await expect(sidebar).to_be_visible(timeout=T)  # open without asking, and not modal
        assert not await sidebar.evaluate("d => d.matches(':modal')")
        await expect(page.page.locator("#chats-button")).to_be_hidden()
        await expect(page.page.locator("#chats-close")).to_be_hidden()
        box, app = await sidebar.bounding_box(), await page.page.locator("#app").bounding_box()
        assert box["x"] == 0 and box["x"] + box["width"] <= app["x"]  # beside the conversation, not over it

        _, end = await page.exchange("Where is the meatball sub?")
        await page.page.locator(".msg--joey[data-state=done]").wait_for(timeout=T)
        await new_chat_with(page, "Tell me about Chandler")
        items = page.page.locator("#chat-list .chat-item")
        await expect(items).to_have_count(2, timeout=T)
        await page.page.get_by_role("searchbox", name="Search chats").fill("MEATBALL")  # by title, any case
        await expect(items).to_have_count(1)
        await expect(items.first).to_contain_text("Where is the meatball sub?")
        said = end["text"].split()[-1].strip(".,!?'\"")  # a word only Joey said: found by the chat's text
        await page.page.get_by_role("searchbox", name="Search chats").fill(said)
        assert await items.count() >= 1
        await page.page.get_by_role("searchbox", name="Search chats").fill("no such words anywhere")
        await expect(items).to_have_count(0)
        await expect(page.page.locator(".chats__unfound")).to_be_visible()
        await page.page.get_by_role("searchbox", name="Search chats").fill("")
        await expect(items).to_have_count(2)

        await page.page.get_by_role("button", name="Rename chat: Tell me about Chandler").click()
        name = page.page.get_by_role("textbox", name="New name for chat: Tell me about Chandler")
        await name.fill("Chandler stuff")
        await name.press("Enter")
        await expect(items.first).to_contain_text("Chandler stuff")
        await page.page.get_by_role("searchbox", name="Search chats").fill("chandler stuff")
        await expect(items).to_have_count(1)
        await page.page.get_by_role("searchbox", name="Search chats").fill("")

        # Opening another chat keeps the sidebar open; the name stays, in this browser, after a reload.
        await items.nth(1).locator(".chat-item__open").click()
        await page.online()
        await expect(page.page.locator("#messages .msg--user .msg__text").first).to_have_text("Where is the meatball sub?",
                                                                                   timeout=T)
        await expect(sidebar).to_be_visible()
        await page.page.reload()
        await page.online()
        await expect(page.page.locator("#chat-list .chat-item", has_text="Chandler stuff")).to_have_count(1, timeout=T)
        await page.page.get_by_role("button", name="Rename chat: Chandler stuff").click()
        name = page.page.get_by_role("textbox", name="New name for chat: Chandler stuff")
        await name.fill("")
        await name.press("Enter")  # no name: the first message is the title again
        await expect(page.page.locator("#chat-list")).to_contain_text("Tell me about Chandler")
        assert not page.console_errors()
    finally:
        await context.close()


async def test_phones_open_the_chats_as_a_dialog_and_rename_there(server, browser):
    context = await browser.new_context(viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True)
    try:
        page = Page(await context.new_page())
        await page.open(server)
        await page.exchange("Pizza or sandwich?")
        await expect(page.page.locator("#chats")).to_be_hidden()
        await page.page.get_by_role("button", name="Your chats").click()
        dialog = page.page.locator("#chats")
        await expect(dialog).to_be_visible(timeout=T)
        assert await dialog.evaluate("d => d.matches(':modal')")
        await page.page.get_by_role("button", name="Rename chat: Pizza or sandwich?").click()
        name = page.page.get_by_role("textbox", name="New name for chat: Pizza or sandwich?")
        await name.press("Escape")  # cancels the rename, and the dialog stays
        await expect(dialog).to_be_visible()
        await expect(page.page.locator("#chat-list")).to_contain_text("Pizza or sandwich?")
        await page.page.get_by_role("button", name="Rename chat: Pizza or sandwich?").click()
        await name.fill("Food")
        await name.press("Enter")
        await expect(page.page.locator("#chat-list")).to_contain_text("Food")
        await page.page.keyboard.press("Escape")
        await expect(dialog).to_be_hidden(timeout=T)
        width = await page.page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360
        assert not page.console_errors()
    finally:
        await context.close()
