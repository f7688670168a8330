"""A request's reply stream: text queued while the caller was busy goes out as one chunk."""

from __future__ import annotations

import asyncio

import pytest

from model.reply import EngineError, FinishReason, Reply, ReplyEnd, TextChunk


def read_all(reply: Reply) -> list[str]:
    async def read() -> list[str]:
        return [chunk async for chunk in reply]

    return asyncio.run(read())


def test_text_queued_behind_a_chunk_is_joined_and_the_end_still_ends_the_reply():
    reply = Reply(abort=lambda _: None, request_id=1)
    for text in ("How", " you", " doin'?"):
        reply.queue.put_nowait(TextChunk(text))
    reply.queue.put_nowait(ReplyEnd(FinishReason.STOP, tokens=3))
    assert read_all(reply) == ["How you doin'?"]
    assert (reply.finish_reason, reply.tokens) == (FinishReason.STOP, 3)


def test_a_caller_that_keeps_up_gets_a_chunk_per_token():
    async def stream() -> list[str]:
        reply = Reply(abort=lambda _: None, request_id=1)
        chunks = []

        async def engine():
            for text in ("Hey", "!"):
                reply.queue.put_nowait(TextChunk(text))
                await asyncio.sleep(0.01)  # the reader takes each token before the next one
            reply.queue.put_nowait(ReplyEnd(FinishReason.STOP, tokens=2))

        feeding = asyncio.create_task(engine())
        chunks = [chunk async for chunk in reply]
        await feeding
        return chunks

    assert asyncio.run(stream()) == ["Hey", "!"]


def test_an_error_queued_behind_text_is_raised_after_that_text():
    reply = Reply(abort=lambda _: None, request_id=1)
    reply.queue.put_nowait(TextChunk("Hey"))
    reply.queue.put_nowait(ReplyEnd(FinishReason.ERROR, tokens=1, error="engine stopped"))

    async def read() -> list[str]:
        got = []
        with pytest.raises(EngineError, match="engine stopped"):
            async for chunk in reply:
                got.append(chunk)
        return got

    assert asyncio.run(read()) == ["Hey"]
