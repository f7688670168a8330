"""The web chat page survives reloads, a second tab and a dropped connection, losing and repeating nothing.

Real headless Chromium against a real server and the tiny model, as in test_web.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from playwright.async_api import expect

from tests.conftest import RunningServer
from tests.web_fixtures import CHROMIUM, T, Page, history
from tests.web_fixtures import browser, make_paced_server, page  # noqa: F401  (fixtures: pytest finds them by name here)

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
    pytest.mark.asyncio(loop_scope="module"),
]


async def test_reload_restores_the_conversation(server, page):
    await page.open(server)
    first, _ = await page.exchange("Do you want pizza?")
    await page.exchange("And a sandwich?")
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


async def test_reload_mid_reply_replays_the_whole_reply(make_paced_server, page):
    server = make_paced_server(min_new_tokens=200, max_new_tokens=200)
    await page.open(server)
    message_id = await page.streaming("Tell me a story")
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
    assert await page.page.evaluate("window.joeyChat.phase") == "taken-over"
    await page.page.click("#banner-action")  # "Use it here"
    await page.online()
    assert await page.page.evaluate("window.joeyChat.phase") == "ready"
    await other.page.wait_for_selector("html[data-connection=stopped]", timeout=T)
    assert await other.page.evaluate("window.joeyChat.phase") == "taken-over"
    assert not other.console_errors()


async def test_an_illegal_connection_transition_throws_and_changes_nothing(server, page):
    await page.open(server)
    assert await page.page.evaluate("window.joeyChat.phase") == "ready"
    # The page's own module (same URL, same instance): "Use it here" is only for a taken-over tab.
    error = await page.page.evaluate("""async () => {
        const { connection } = await import("/js/phase.js");
        try { connection.takeBack(); } catch (err) { return err.message; }
        return null;
    }""")
    assert error == "connection: expected taken-over, got ready"
    assert await page.page.evaluate("window.joeyChat.phase") == "ready"
    await page.exchange("Still talking?")  # the page carries on


async def test_forced_disconnect_mid_reply_recovers_without_loss_or_duplication(make_paced_server, page):
    server = make_paced_server(min_new_tokens=200, max_new_tokens=200, orphan_grace_s=60)
    await page.open(server)
    message_id = await page.streaming("Tell me about your acting career")

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


async def long_reply_under_way(make_paced_server, page, tmp_path):
    """A paced server keeping its sessions on disk, and a 200-token reply streaming to the page."""
    server = make_paced_server(min_new_tokens=200, max_new_tokens=200, state_path=str(tmp_path / "sessions.db"))
    await page.open(server)
    message_id = await page.streaming("Tell me about your acting career")
    return server, message_id


async def test_server_restart_mid_reply_clears_typing_at_once_and_reconnects_quickly(make_paced_server, page, tmp_path):
    server, message_id = await long_reply_under_way(make_paced_server, page, tmp_path)
    assert await page.page.get_attribute("#messages", "aria-busy") == "true"
    assert await page.page.is_visible("#stop")

    await asyncio.to_thread(server.__exit__, None, None, None)  # the server goes down mid-reply
    await page.page.wait_for_selector("html:not([data-connection=online])", timeout=T)
    # The moment the page knows, nothing says Joey is still typing: no Stop, no busy log, no caret.
    assert await page.page.is_hidden("#stop")
    assert await page.page.get_attribute("#messages", "aria-busy") == "false"
    caret = await page.page.eval_on_selector(
        ".msg--joey .msg__text", "node => getComputedStyle(node, '::after').content")
    assert caret in ("none", "normal")

    # Retries stay quick while the server is away: no long backoff to sit through.
    await expect(page.page.locator("#banner")).to_be_visible(timeout=T)
    for _ in range(200):
        if await page.page.evaluate("window.joeyChat.failedTries") >= 4:
            break
        await asyncio.sleep(0.05)
    assert await page.page.evaluate("window.joeyChat.failedTries") >= 4
    assert await page.page.evaluate("window.joeyChat.retryInMs") <= 1000

    with RunningServer(server.config) as again:  # same port, same sessions file
        await page.online()  # by itself: nobody clicked "Retry now"
        await page.page.wait_for_selector("#banner", state="hidden", timeout=T)
        # The reply the restart cut off was not kept; the page asks again, under the same id.
        await page.page.wait_for_selector(f'.msg--joey[data-message-id="{message_id}"][data-state=done]', timeout=T)
        assert await page.page.is_hidden("#stop")
        session_id = await page.session_id()
        turns = history(again, session_id)
        assert [(t["role"], t["message_id"]) for t in turns] == [("user", message_id), ("joey", message_id)]
        rows = await page.page.eval_on_selector_all("#messages .msg", "rows => rows.map(r => r.dataset.role)")
        assert rows == [t["role"] for t in turns]


async def test_a_planned_restart_cuts_no_reply_the_page_gets_it_whole_once(make_paced_server, page, tmp_path):
    server, message_id = await long_reply_under_way(make_paced_server, page, tmp_path)
    # What SIGTERM's handler does first (backend/shutdown.py), with a grace shorter than the reply.
    await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(server.hub.stop(0.5), server.server_loop))
    await asyncio.to_thread(server.__exit__, None, None, None)
    assert [f["code"] for f in page.received if f["type"] == "error"] == ["server_restarting"]
    with RunningServer(server.config) as again:  # same port, same sessions file
        await page.online()
        await page.page.wait_for_selector(f'.msg--joey[data-message-id="{message_id}"][data-state=done]', timeout=T)
        turns = history(again, await page.session_id())
        assert [(t["role"], t["message_id"]) for t in turns] == [("user", message_id), ("joey", message_id)]
        ends = [f for f in page.received if f["type"] == "reply_end" and f["message_id"] == message_id]
        assert len(ends) == 1 and ends[0]["finish_reason"] == "length"  # redone whole, once, never cut
        assert await page.joey_texts() == [turns[1]["text"]]
        assert "Stopped" not in await page.page.inner_text("#messages")


async def test_the_restart_notice_leaves_the_conversation_once_the_server_is_back(make_server, page, tmp_path):
    server = make_server(state_path=str(tmp_path / "sessions.db"))
    await page.open(server)
    await page.exchange("Hi Joey")
    await page.page.locator(".msg--joey[data-state=done]").wait_for(timeout=T)
    await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(server.hub.stop(0.5), server.server_loop))
    restarting = page.page.locator("#messages .notice", has_text="restarting")
    await expect(restarting).to_have_count(1, timeout=T)  # one, however often a draining server refuses a retry
    await asyncio.to_thread(server.__exit__, None, None, None)
    with RunningServer(server.config):  # same port, same sessions file: the same two turns
        await page.online()
        await expect(restarting).to_have_count(0, timeout=T)  # true no longer
        await expect(page.page.locator("#messages .msg")).to_have_count(2)
