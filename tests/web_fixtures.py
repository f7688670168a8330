"""Shared pieces of the browser tests (tests/test_web*.py): headless Chromium, a recorded page, paced replies.

The fixtures here are imported by name into each test module: pytest finds fixtures in a test
module's namespace, and a root conftest would start Chromium for tests that never use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import re
import time
from pathlib import Path

import pytest
import pytest_asyncio

from backend.ws_protocol import uvicorn_options
from tests.conftest import RunningServer, server_config
from tests.server_thread import ServerThread

from tests.spec import load_spec

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WEB_ROOT = Path(__file__).resolve().parent.parent / "frontends" / "web"
T = 30_000  # ms: a generous wait on a busy 2-core machine


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

    async def exchange(self, text: str) -> tuple[str, dict]:
        """Say ``text`` and wait for Joey's answer: the message's id and its reply_end frame."""
        await self.say(text)
        message_id = await self.last_user_id()
        return message_id, await self.reply_end(message_id)

    async def streaming(self, text: str) -> str:
        """Say ``text`` and return its message id once Joey's reply shows its first text."""
        await self.say(text)
        message_id = await self.last_user_id()
        await self.page.wait_for_selector(".msg--joey .msg__text:not(:empty)", timeout=T)
        return message_id

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


def slow_model(generator, delay: float):
    """The real generator on a slowed model: each decode step waits ``delay`` seconds first.

    The tiny model writes 200 tokens in a fraction of a second; a person's Stop click or a
    network drop takes longer than that. Only the pace changes: the engine, the chunks and the
    frames are the real ones (a reader that keeps up gets a chunk per token).
    """
    lean = generator.engine.model
    step = lean.step

    def slowed(*args):
        time.sleep(delay)  # on the engine thread, as a slow CPU would be
        return step(*args)

    lean.step = slowed
    return generator


class PacedServer(RunningServer):
    """A real server on a slowed model from its creation: nothing is swapped while it runs."""

    def __init__(self, config, delay: float):
        from backend.app import create_app, load_generator

        # The model is slowed by patching it here, so its engine runs on a thread of this
        # process, not in an engine process of its own.
        self.config = config = dataclasses.replace(config, engine_process=False)
        self.app = create_app(config, slow_model(load_generator(config), delay))
        ServerThread.__init__(self, self.app, config.port, uvicorn_options(config))


@pytest.fixture
def make_paced_server(tiny_model):
    """Like make_server, with replies paced at ``delay`` seconds per token; all are stopped after the test."""
    with contextlib.ExitStack() as stack:
        def make(delay: float = 0.03, **overrides):
            return stack.enter_context(PacedServer(server_config(*tiny_model, **overrides), delay))
        yield make


def history(server, session_id: str) -> list[dict]:
    return list(server.hub.sessions[session_id].history)


def contrast(foreground: str, background: str) -> float:
    """WCAG 2 contrast ratio of two CSS rgb()/rgba() colours (alpha ignored: callers check opacity)."""
    def luminance(color: str) -> float:
        r, g, b = (float(v) for v in re.findall(r"[\d.]+", color)[:3])
        lin = [c / 255 / 12.92 if c / 255 <= 0.03928 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in (r, g, b)]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    high, low = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (high + 0.05) / (low + 0.05)
