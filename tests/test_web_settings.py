"""The web page's settings and tools: your name (sent as the session's name) and exporting a chat.

Real headless Chromium against a real server and the tiny model, as in test_web.py.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from playwright.async_api import expect

from tests.web_fixtures import CHROMIUM, T
from tests.web_fixtures import browser, page  # noqa: F401  (fixtures: pytest finds them by name here)

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
    pytest.mark.asyncio(loop_scope="module"),
]


async def test_your_name_is_kept_and_sent_as_the_sessions_name(server, page):
    await page.open(server)
    await page.page.click("#chats-button")
    name = page.page.get_by_role("textbox", name="Your name")
    await name.fill("  Chandler ")
    await name.press("Enter")
    await expect(page.page.locator("#name-saved")).to_have_text("Joey will call you Chandler.", timeout=T)
    await page.page.keyboard.press("Escape")

    await page.page.reload()  # kept in this browser
    await page.online()
    await page.page.click("#chats-button")
    await expect(name).to_have_value("Chandler")
    start = len(page.received)
    await page.page.get_by_role("button", name="New chat", exact=True).click()
    session = await page.frame(lambda f: f["type"] == "session" and page.received.index(f) >= start)
    assert [f for f in page.sent if f["type"] == "open"][-1] == {"type": "open", "name": "Chandler"}
    assert server.hub.sessions[session["session_id"]].user_name == "Chandler"
    await page.online()
    message_id, _ = await page.exchange("Who am I?")
    sent = [f for f in page.sent if f["type"] == "message" and f["id"] == message_id]
    assert sent and sent[-1]["name"] == "Chandler"  # a name set mid-chat counts from the next message on


async def test_export_downloads_the_conversation_as_markdown_and_json(server, page):
    await page.open(server)
    await page.page.click("#chats-button")
    await expect(page.page.get_by_role("button", name="Export this chat as JSON")).to_be_disabled()  # nothing yet
    await page.page.keyboard.press("Escape")
    first, end = await page.exchange("Export me")
    await page.page.locator(f'.msg--joey[data-message-id="{first}"][data-state=done]').wait_for(timeout=T)

    await page.page.click("#chats-button")
    async with page.page.expect_download(timeout=T) as info:
        await page.page.get_by_role("button", name="Export this chat as JSON").click()
    download = await info.value
    assert download.suggested_filename.startswith("joey-chat-") and download.suggested_filename.endswith(".json")
    messages = json.loads(Path(await download.path()).read_text())["messages"]
    assert [(m["speaker"], m["text"]) for m in messages] == [("You", "Export me"), ("Joey", end["text"].strip())]
    assert all(datetime.fromisoformat(m["time"].replace("Z", "+00:00")) for m in messages)

    async with page.page.expect_download(timeout=T) as info:
        await page.page.get_by_role("button", name="Export this chat as Markdown").click()
    download = await info.value
    assert download.suggested_filename.endswith(".md")
    text = Path(await download.path()).read_text()
    assert text.startswith("# Chat with Joey")
    assert "**You** (" in text and "\n\nExport me\n" in text and f"\n\n{end['text'].strip()}\n" in text
