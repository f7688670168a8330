"""Regenerate keeps earlier versions, ‹ 1/3 › flips between them, and Continue follows a Stop.

Real headless Chromium against a real server and the tiny model, as in test_web.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import expect

from tests.web_fixtures import CHROMIUM, T, history
from tests.web_fixtures import browser, make_paced_server, page  # noqa: F401  (fixtures: pytest finds them by name here)

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
    pytest.mark.asyncio(loop_scope="module"),
]


async def regenerate(page, message_id: str) -> dict:
    start = len(page.received)
    reply = page.page.locator(f'.msg--joey[data-message-id="{message_id}"][data-state=done]')
    await reply.hover()
    await reply.get_by_role("button", name="Regenerate Joey's reply").click()
    return await page.frame(lambda f: f["type"] == "reply_end" and f["message_id"] == message_id
                            and page.received.index(f) >= start)


async def test_regenerate_keeps_versions_and_the_server_follows_the_one_shown(make_server, page):
    server = make_server(temperature=1.0)  # sampled: each version its own text
    await page.open(server)
    message_id, first = await page.exchange("Tell me about pizza")
    await regenerate(page, message_id)
    third = await regenerate(page, message_id)
    reply = page.page.locator(f'.msg--joey[data-message-id="{message_id}"]')
    await expect(reply).to_have_count(1)  # one bubble, three versions
    pager = reply.get_by_role("group", name="Versions of Joey's reply")
    await expect(pager).to_contain_text("3/3", timeout=T)
    await expect(reply.locator(".msg__text")).to_have_text(third["text"])
    session_id = await page.session_id()
    turn = history(server, session_id)[-1]
    assert [v["text"] for v in turn["versions"]][::2] == [first["text"], third["text"]] and turn["version"] == 2

    await reply.hover()
    await pager.get_by_role("button", name="Previous version").click()
    await expect(pager).to_contain_text("2/3", timeout=T)
    await pager.get_by_role("button", name="Previous version").click()
    await expect(pager).to_contain_text("1/3", timeout=T)
    await expect(reply.locator(".msg__text")).to_have_text(first["text"], timeout=T)
    assert {"type": "version", "message_id": message_id, "version": 0} in page.sent
    await pager.get_by_role("button", name="Previous version").click(force=True)  # the first: nothing before it
    assert await pager.get_by_role("button", name="Previous version").get_attribute("aria-disabled") == "true"
    assert history(server, session_id)[-1]["text"] == first["text"]  # the next answer starts from it
    assert [t.text for t in server.hub.sessions[session_id].turns()][-1] == first["text"]

    await page.exchange("And then?")  # the conversation goes on from the version chosen
    assert history(server, session_id)[1]["text"] == first["text"]
    await page.page.reload()  # the server says which version shows, and how many there are
    await page.online()
    reply = page.page.locator(f'.msg--joey[data-message-id="{message_id}"]')
    await expect(reply.locator(".msg__text")).to_have_text(first["text"], timeout=T)
    await expect(reply.get_by_role("group", name="Versions of Joey's reply")).to_contain_text("1/3")
    await reply.hover()
    await reply.get_by_role("button", name="Next version").click()
    await expect(reply.locator(".msg__text")).to_have_text(history(server, session_id)[1]["text"], timeout=T)
    assert history(server, session_id)[1]["version"] == 1


async def test_continue_follows_a_stop_and_extends_the_same_reply(make_paced_server, page):
    server = make_paced_server(delay=0.05, min_new_tokens=40, max_new_tokens=40)
    await page.open(server)
    message_id = await page.streaming("Tell me a long story")
    await page.page.click("#stop")
    stopped = await page.reply_end(message_id)
    assert stopped["finish_reason"] == "cancelled" and stopped["text"]
    reply = page.page.locator(f'.msg--joey[data-message-id="{message_id}"][data-state=done]')
    go_on = reply.get_by_role("button", name="Continue Joey's reply")
    await expect(go_on).to_be_visible(timeout=T)
    await expect(reply.locator(".msg__meta")).to_contain_text("Stopped")

    start = len(page.received)
    await go_on.click()
    assert await page.page.evaluate("document.activeElement.id") == "input"  # not <body>
    end = await page.frame(lambda f: f["type"] == "reply_end" and page.received.index(f) >= start)
    begun = [f for f in page.received[start:] if f["type"] == "reply_start"]
    assert {"type": "continue", "message_id": message_id} in page.sent
    assert begun and begun[0].get("continue") is True and begun[0]["message_id"] == message_id
    chunks = "".join(f["text"] for f in page.received[start:] if f["type"] == "chunk")
    assert end["message_id"] == message_id and end["text"] == stopped["text"] + chunks
    assert end["finish_reason"] == "length" and end["tokens"] == 40  # max_new_tokens holds for the rest
    await expect(page.page.locator(".msg--joey")).to_have_count(1)  # the same bubble, longer
    await expect(reply.locator(".msg__text")).to_have_text(end["text"], timeout=T)
    turns = history(server, await page.session_id())
    assert [(t["role"], t["message_id"]) for t in turns] == [("user", message_id), ("joey", message_id)]
    assert turns[1]["text"] == end["text"] and turns[1]["finish_reason"] == "length"

    # Cut by the length limit: Continue is offered again, after a reload too, and only on the latest reply.
    await page.page.reload()
    await page.online()
    await expect(reply.get_by_role("button", name="Continue Joey's reply")).to_be_visible(timeout=T)
    await page.say("Something else")
    await page.page.wait_for_selector(".msg--joey[data-state=streaming] .msg__text:not(:empty)", timeout=T)
    await page.page.click("#stop")
    await expect(page.page.locator(".msg--joey[data-state=done]")).to_have_count(2, timeout=T)
    await expect(reply.get_by_role("button", name="Continue Joey's reply")).to_be_hidden()
    await expect(page.page.locator(".msg--joey").last.get_by_role("button", name="Continue Joey's reply")
                 ).to_be_visible(timeout=T)
