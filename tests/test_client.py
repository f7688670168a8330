"""The Python client against a real server, and in-process through LocalTransport."""

from __future__ import annotations

import asyncio

import pytest

from backend.local_transport import LocalTransport
from client import ClientError, JoeyClient, WebSocketTransport


async def test_ask_streams_and_returns_end(server):
    chunks: list[str] = []
    async with JoeyClient(WebSocketTransport(server.url), name="Ross") as joey:
        end = await joey.ask("Hi Joey", on_chunk=chunks.append)
        assert end["type"] == "reply_end" and end["text"] == "".join(chunks) and chunks
        assert [h["role"] for h in server.hub.sessions[joey.session_id].history] == ["user", "joey"]


async def test_reconnect_mid_reply_loses_and_repeats_nothing(make_server):
    server = make_server(min_new_tokens=150, max_new_tokens=150)
    chunks: list[str] = []
    joey = JoeyClient(WebSocketTransport(server.url))
    await joey.start()
    first_chunk = asyncio.Event()

    def on_chunk(text: str) -> None:
        chunks.append(text)
        first_chunk.set()

    task = asyncio.create_task(joey.ask("Tell me everything", message_id="m", on_chunk=on_chunk))
    await first_chunk.wait()
    await joey.transport._ws.close()  # the network drops mid-reply
    end = await task
    assert "".join(chunks) == end["text"] and end["finish_reason"] == "length"
    assert len(server.hub.sessions[joey.session_id].history) == 2
    await joey.close()


async def test_local_transport_speaks_the_same_protocol(server):
    hub = server.hub
    # The hub lives on the server's loop; drive it there, as an in-process frontend would.
    async def talk():
        async with JoeyClient(LocalTransport(hub), name="Phoebe") as joey:
            end = await joey.ask("Smelly cat?")
            await joey.reset()
            return joey.session_id, end
    loop = server.server_loop
    session_id, end = await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(talk(), loop))
    assert end["text"] and list(hub.sessions[session_id].history) == []


async def test_typed_errors_raise(server):
    async with JoeyClient(WebSocketTransport(server.url)) as joey:
        with pytest.raises(ClientError) as err:
            await joey.ask("x" * 5000)
        assert err.value.code == "message_too_long"
        assert (await joey.ask("still fine"))["type"] == "reply_end"


async def test_ask_names_the_turns_speaker_and_the_session_gives_the_limits(server):
    async with JoeyClient(WebSocketTransport(server.url), name="Ross") as joey:
        assert joey.limits["max_message_chars"] == server.config.max_message_chars
        await joey.ask("Joey, pizza?", name="Monica")  # a group's turn: its own speaker
        await joey.ask("And for me?")  # no name: the session's own
        users = [h for h in server.hub.sessions[joey.session_id].history if h["role"] == "user"]
        assert [h.get("name") for h in users] == ["Monica", None]
