"""The web page's layout: scrolling as the message area shrinks, contrast, reading direction,
touch targets, and a phone with its keyboard open or a page zoomed to 200%.

Real headless Chromium against a real server and the tiny model, as in test_web.py. Colours are
read from the rendered page (getComputedStyle) and compared with WCAG's 4.5:1 for text.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from playwright.async_api import expect

from tests.web_fixtures import CHROMIUM, T, Page, contrast
from tests.web_fixtures import browser  # noqa: F401  (fixture: pytest finds it by name here)

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
    pytest.mark.asyncio(loop_scope="module"),
]

PHONE = {"viewport": {"width": 360, "height": 740}, "is_mobile": True, "has_touch": True}
GAP_BELOW = "() => { const log = document.getElementById('messages'); return log.scrollHeight - log.scrollTop - log.clientHeight; }"


class opened:
    """A fresh browser context and page on the server, closed (and checked for errors) afterwards."""

    def __init__(self, browser, server, **context):
        self.browser, self.server, self.options = browser, server, context

    async def __aenter__(self) -> Page:
        self.context = await self.browser.new_context(reduced_motion="reduce", **self.options)
        self.page = Page(await self.context.new_page())
        await self.page.open(self.server)
        return self.page

    async def __aexit__(self, *exc) -> None:
        errors = self.page.console_errors()
        await self.context.close()
        assert not errors, errors


async def converse(page: Page, count: int, text: str = "Tell me everything about {}") -> None:
    for i in range(count):
        await page.exchange(text.format(i) + " " + "and more " * 12)
    await page.page.locator("#messages .msg--joey[data-state=done]").nth(count - 1).wait_for(timeout=T)


async def settles(page: Page, expression: str, predicate, timeout: float = T / 1000):
    """Poll a page expression until ``predicate(value)`` holds; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = await page.page.evaluate(expression)
        if predicate(value) or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.05)


async def tab_stops(page: Page) -> list[str]:
    """The ids (or classes) of what Tab reaches from the Chats button on to the message input."""
    await page.page.focus("#chats-button")
    stops = []
    for _ in range(40):
        await page.page.keyboard.press("Tab")
        here = await page.page.evaluate("document.activeElement.id || document.activeElement.className")
        if here == "input":
            return stops
        stops.append(here)
    raise AssertionError(f"Tab never reached the input: {stops}")


async def test_the_conversation_is_a_tab_stop_only_when_there_is_something_in_it(server, browser):
    async with opened(browser, server) as page:
        assert "messages" not in await tab_stops(page)  # empty: nothing to scroll or read
        await page.exchange("Hi Joey")
        await page.page.locator(".msg--joey[data-state=done]").wait_for(timeout=T)
        assert "messages" in await tab_stops(page)  # the keyboard can scroll the conversation


async def test_newest_message_stays_in_view_when_the_keyboard_opens_or_a_banner_shows(server, browser):
    async with opened(browser, server, **PHONE) as page:
        await converse(page, 4)
        assert await settles(page, GAP_BELOW, lambda gap: gap < 2) < 2
        await page.page.set_viewport_size({"width": 360, "height": 420})  # the on-screen keyboard opens
        assert await settles(page, GAP_BELOW, lambda gap: gap < 2) < 2
        await page.page.context.set_offline(True)  # the connection banner takes room from the log
        await page.page.wait_for_selector("#banner", state="visible", timeout=T)
        assert await settles(page, GAP_BELOW, lambda gap: gap < 2) < 2
        await page.page.context.set_offline(False)
        await page.online()


async def test_sending_while_scrolled_up_brings_the_message_into_view(server, browser):
    async with opened(browser, server, **PHONE) as page:
        await converse(page, 4)
        await page.page.eval_on_selector("#messages", "log => log.scrollTo({ top: 0 })")
        assert await settles(page, GAP_BELOW, lambda gap: gap > 150) > 150  # well above the bottom
        await page.say("Here I am")
        message_id = await page.last_user_id()
        assert await settles(page, GAP_BELOW, lambda gap: gap < 2) < 2
        box = await page.page.locator(f'.msg--user[data-message-id="{message_id}"]').bounding_box()
        log = await page.page.locator("#messages").bounding_box()
        assert log["y"] <= box["y"] and box["y"] + box["height"] <= log["y"] + log["height"]


COLOURS = """row => {
    const bubble = row.querySelector('.msg__bubble'), note = row.querySelector('.msg__note');
    const background = (node) => {
        for (; node; node = node.parentElement) {
            const c = getComputedStyle(node).backgroundColor;
            if (c !== 'rgba(0, 0, 0, 0)' && c !== 'transparent') return c;
        }
        return 'rgb(255, 255, 255)';
    };
    const opacity = (node) => node ? Number(getComputedStyle(node).opacity) * opacity(node.parentElement) : 1;
    return { text: getComputedStyle(bubble).color, bubble: background(bubble),
             image: getComputedStyle(bubble).backgroundImage, note: getComputedStyle(note).color,
             under: background(note), opacity: Math.min(opacity(bubble), opacity(note)) };
}"""


@pytest.mark.parametrize("theme", ["light", "dark"])
async def test_waiting_messages_keep_a_readable_contrast(server, browser, theme):
    async with opened(browser, server, color_scheme=theme) as page:
        await page.page.context.set_offline(True)
        await page.say("Are you there?")  # waits in the queue until the connection is back
        row = page.page.locator(".msg--user[data-state=queued]")
        await expect(row.locator(".msg__note")).to_have_text("Waiting for the connection", timeout=T)
        colours = await row.evaluate(COLOURS)
        assert colours["opacity"] == 1 and colours["image"] == "none"  # solid colours: measurable, not faded
        assert contrast(colours["text"], colours["bubble"]) >= 4.5, colours
        assert contrast(colours["note"], colours["under"]) >= 4.5, colours
        await page.page.context.set_offline(False)
        await page.reply_end(await page.last_user_id())


async def test_right_to_left_text_reads_in_its_own_direction(server, browser):
    async with opened(browser, server) as page:
        assert await page.page.get_attribute("#input", "dir") == "auto"
        await page.say("مرحبا جوي، كيف حالك؟")
        message_id = await page.last_user_id()
        text = page.page.locator(f'.msg--user[data-message-id="{message_id}"] .msg__text')
        assert await text.evaluate("node => node.matches(':dir(rtl)')")
        await page.reply_end(message_id)
        reply = page.page.locator(".msg--joey[data-state=done] .msg__text")
        assert await reply.get_attribute("dir") == "auto"


async def visible_buttons(page: Page) -> list[dict]:
    return await page.page.eval_on_selector_all("button", """buttons => buttons
        .filter((b) => b.checkVisibility({ visibilityProperty: true }))
        .map((b) => { const r = b.getBoundingClientRect();
                      return { label: b.getAttribute('aria-label') || b.textContent.trim(), width: r.width, height: r.height }; })""")


async def test_every_button_is_a_44px_touch_target_on_a_phone(server, browser):
    async with opened(browser, server, **PHONE) as page:
        empty = await visible_buttons(page)  # header, starters, composer
        await converse(page, 1)
        await page.page.context.set_offline(True)
        await page.say("Queued")  # adds the banner's "Retry now" once the socket is down
        await page.page.wait_for_selector("#banner-action", state="visible", timeout=T)
        talking = await visible_buttons(page)
        await page.page.context.set_offline(False)
        await page.online()
        await page.reply_end(await page.last_user_id())
        await page.page.click("#chats-button")
        await page.page.locator("#chat-list .chat-item").first.wait_for(timeout=T)
        listing = await visible_buttons(page)
        buttons = empty + talking + listing
        labels = {b["label"] for b in buttons}
        for expected in ("Your chats", "Start a new chat", "Send message", "Copy Joey's reply", "Retry now", "Close"):
            assert expected in labels, labels
        small = [b for b in buttons if b["width"] < 44 or b["height"] < 44]
        assert not small, small


@pytest.mark.parametrize("size", [{"width": 360, "height": 420}, {"width": 640, "height": 360}],
                         ids=["phone-keyboard-open", "zoom-200"])
async def test_page_stays_usable_when_short(server, browser, size):
    # 640 x 360 CSS pixels at a device scale of 2 is a 1280 x 720 window zoomed to 200%.
    async with opened(browser, server, viewport=size, device_scale_factor=2, has_touch=size["width"] < 400) as page:
        starters = page.page.locator("#starters button")
        await starters.last.scroll_into_view_if_needed()
        await expect(starters.last).to_be_in_viewport()
        await converse(page, 3)
        assert await page.page.evaluate("document.documentElement.scrollWidth") <= size["width"]
        log = await page.page.locator("#messages").bounding_box()
        assert log["height"] >= size["height"] * 0.4  # the conversation keeps most of the room
        for selector in ("#input", "#send", "#chats-button", "#new-chat"):
            box = await page.page.locator(selector).bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= size["width"], selector
            assert box["y"] >= 0 and box["y"] + box["height"] <= size["height"], selector
        await page.page.click("#chats-button")
        dialog = await page.page.locator("#chats").bounding_box()
        assert dialog["width"] <= size["width"] and dialog["height"] <= size["height"]
