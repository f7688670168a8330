"""The web chat page (frontends/web) in real headless Chromium against a real server and the tiny model.

The tiny model says gibberish, so every check compares the page with what the server said
(captured WebSocket frames, the hub's history), never with expected wording.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import expect

from backend.app import CSP
from backend.spec import load_spec

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WEB_ROOT = Path(__file__).resolve().parent.parent / "frontends" / "web"
T = 30_000  # ms: a generous wait on a busy 2-core machine

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
    pytest.mark.asyncio(loop_scope="module"),
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser():
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


class Page:
    """A page plus what it did: frames on its WebSockets, console errors, dialogs."""

    def __init__(self, page):
        self.page = page
        self.received: list[dict] = []
        self.sent: list[dict] = []
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        page.on("websocket", self._on_websocket)
        page.on("console", lambda msg: msg.type == "error" and self.errors.append(msg.text))
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        page.on("dialog", self._on_dialog)

    def _on_websocket(self, ws) -> None:
        ws.on("framereceived", lambda payload: self.received.append(json.loads(payload)))
        ws.on("framesent", lambda payload: self.sent.append(json.loads(payload)))

    async def _on_dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        await dialog.dismiss()

    async def open(self, server) -> None:
        await self.page.goto(server.http + "/")
        await self.online()

    async def online(self) -> None:
        await self.page.wait_for_selector("html[data-connection=online]", timeout=T)

    async def say(self, text: str) -> None:
        await self.page.fill("#input", text)
        await self.page.press("#input", "Enter")

    async def frame(self, predicate, timeout: float = T / 1000) -> dict:
        """The first received frame matching ``predicate``, waiting for it if need be."""
        deadline = time.monotonic() + timeout
        while True:
            for frame in self.received:
                if predicate(frame):
                    return frame
            if time.monotonic() > deadline:
                raise AssertionError(f"no matching frame among {[f['type'] for f in self.received]}")
            await asyncio.sleep(0.05)

    async def reply_end(self, message_id: str) -> dict:
        return await self.frame(lambda f: f["type"] == "reply_end" and f["message_id"] == message_id)

    async def last_user_id(self) -> str:
        user = self.page.locator("#messages .msg--user").last
        await user.wait_for(timeout=T)
        return await user.get_attribute("data-message-id")

    async def joey_texts(self) -> list[str]:
        return await self.page.eval_on_selector_all(
            "#messages .msg--joey .msg__text", "nodes => nodes.map(n => n.textContent)")

    async def session_id(self) -> str:
        stored = await self.page.evaluate("localStorage.getItem('joey-chat.session.v1')")
        return json.loads(stored)["session_id"]

    def console_errors(self) -> list[str]:
        # A refused connect while offline is logged by the browser itself, not by the page.
        return [e for e in self.errors if not e.startswith("WebSocket connection to")]


@pytest_asyncio.fixture(loop_scope="module")
async def page(browser):
    context = await browser.new_context(viewport={"width": 1000, "height": 760})
    p = Page(await context.new_page())
    yield p
    await context.close()
    assert not p.console_errors(), p.console_errors()
    assert not p.dialogs, p.dialogs
    spec = load_spec(strict=True)
    for frame in p.sent:  # the page speaks protocol v1 exactly as docs/asyncapi.yaml writes it
        spec.validate_client(frame)


class PacedReply:
    """A reply stream that waits between chunks, so a browser test can act mid-reply.

    The tiny model writes 200 tokens in a fraction of a second; a person's Stop click or a
    network drop takes longer than that. Only the pace changes: the frames are the real ones.
    """

    def __init__(self, inner, delay: float):
        self.inner, self.delay = inner, delay

    @property
    def finish_reason(self):
        return self.inner.finish_reason

    @property
    def tokens(self):
        return self.inner.tokens

    async def __aiter__(self):
        async for text in self.inner:
            await asyncio.sleep(self.delay)
            yield text

    async def aclose(self) -> None:
        await self.inner.aclose()


class PacedGenerator:
    def __init__(self, inner, delay: float):
        self.inner, self.delay = inner, delay

    def stream(self, turns, params):
        return PacedReply(self.inner.stream(turns, params), self.delay)


def paced(server, delay: float = 0.03):
    server.hub.generator = PacedGenerator(server.hub.generator, delay)
    return server


def history(server, session_id: str) -> list[dict]:
    return list(server.hub.sessions[session_id].history)


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


async def test_reload_restores_the_conversation(server, page):
    await page.open(server)
    await page.say("Do you want pizza?")
    first = await page.last_user_id()
    await page.reply_end(first)
    await page.say("And a sandwich?")
    await page.reply_end(await page.last_user_id())
    session_id = await page.session_id()
    expected = [(h["role"], h["text"]) for h in history(server, session_id)]
    assert len(expected) == 4

    await page.page.reload()
    await page.online()
    rows = await page.page.eval_on_selector_all(
        "#messages .msg", "rows => rows.map(r => [r.dataset.role, r.querySelector('.msg__text').textContent])")
    assert [tuple(r) for r in rows] == expected
    resume = [f for f in page.sent if f["type"] == "resume"]
    assert resume and resume[-1]["session_id"] == session_id and resume[-1]["last_seq"] == 0
    assert await page.session_id() == session_id


async def test_reload_mid_reply_replays_the_whole_reply(make_server, page):
    server = paced(make_server(min_new_tokens=200, max_new_tokens=200))
    await page.open(server)
    await page.say("Tell me a story")
    message_id = await page.last_user_id()
    await page.page.wait_for_selector(".msg--joey .msg__text:not(:empty)", timeout=T)
    await page.page.reload()
    await page.online()
    session = [f for f in page.received if f["type"] == "session"][-1]
    assert session["in_flight"]["message_id"] == message_id  # still answering: the reply is replayed
    await page.page.wait_for_selector(f'.msg--joey[data-message-id="{message_id}"][data-state=done]', timeout=T)
    joey = [h for h in history(server, await page.session_id()) if h["role"] == "joey"]
    assert await page.joey_texts() == [joey[0]["text"]]
    assert await page.page.locator("#messages .msg--user").count() == 1


async def test_second_tab_takes_the_session_over(server, page):
    await page.open(server)
    other = Page(await page.page.context.new_page())  # same browser profile, same stored session
    await other.open(server)
    assert await other.session_id() == await page.session_id()
    await page.page.wait_for_selector("html[data-connection=stopped]", timeout=T)
    assert "another tab" in await page.page.text_content("#banner")
    await page.page.click("#banner-action")  # "Use it here"
    await page.online()
    await other.page.wait_for_selector("html[data-connection=stopped]", timeout=T)
    assert not other.console_errors()


async def test_forced_disconnect_mid_reply_recovers_without_loss_or_duplication(make_server, page):
    server = paced(make_server(min_new_tokens=200, max_new_tokens=200, orphan_grace_s=60))
    await page.open(server)
    await page.say("Tell me about your acting career")
    message_id = await page.last_user_id()
    await page.page.wait_for_selector(".msg--joey .msg__text:not(:empty)", timeout=T)

    context = page.page.context
    await context.set_offline(True)
    await page.page.wait_for_selector("#banner", state="visible", timeout=T)
    assert await page.page.get_attribute("html", "data-connection") in ("offline", "connecting")
    await page.say("Are you still there?")  # typed while offline: queued, sent after the reply
    queued_id = await page.last_user_id()
    assert await page.page.get_attribute(f'.msg--user[data-message-id="{queued_id}"]', "data-state") == "queued"
    await context.set_offline(False)
    await page.online()
    await page.page.wait_for_selector(f'.msg--joey[data-message-id="{message_id}"][data-state=done]', timeout=T)
    await page.page.wait_for_selector("#banner", state="hidden", timeout=T)

    resumes = [f for f in page.sent if f["type"] == "resume"]
    assert len(resumes) == 1 and resumes[0]["last_seq"] > 0  # kept the partial bubble, asked for the rest
    sessions = [f for f in page.received if f["type"] == "session"]
    assert len(sessions) == 2 and sessions[1]["resumed"]
    assert sessions[1]["in_flight"]["message_id"] == message_id  # the replay path, not just history
    after = page.received[page.received.index(sessions[1]) + 1:]
    assert after[0]["type"] == "chunk" and after[0]["seq"] == resumes[0]["last_seq"] + 1
    await page.reply_end(queued_id)
    await page.page.wait_for_selector(f'.msg--joey[data-message-id="{queued_id}"][data-state=done]', timeout=T)
    joey = [h for h in history(server, await page.session_id()) if h["role"] == "joey"]
    assert [h["message_id"] for h in joey] == [message_id, queued_id]
    assert await page.joey_texts() == [h["text"] for h in joey]
    assert await page.page.locator("#messages .msg--user").count() == 2


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
