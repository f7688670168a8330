"""Hub unit tests. The one place a test double stands in for the model: a scripted generator."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from backend.config import Config
from backend.hub import Hub, IllegalTransition, SessionState
from backend.protocol import ErrorCode, ProtocolError
from backend.store import SessionStore
from model.engine import FinishReason


class ScriptedReply:
    def __init__(self, words: list[str], delay: float):
        self.words, self.delay = words, delay
        self.finish_reason, self.tokens, self.closed = None, 0, False

    def __aiter__(self):
        return self._gen()

    async def _gen(self):
        for word in self.words:
            await asyncio.sleep(self.delay)
            self.tokens += 1
            yield word
        self.finish_reason = FinishReason.STOP

    async def aclose(self):
        self.closed = True


class ScriptedGenerator:
    """Echoes the last user turn word by word, and records every conversation it was given."""

    ready = True

    def __init__(self, delay: float = 0.0):
        self.delay, self.calls, self.replies = delay, [], []

    def stream(self, turns, params):
        self.calls.append(list(turns))
        reply = ScriptedReply([f"{w} " for w in turns[-1].text.split()], self.delay)
        self.replies.append(reply)
        return reply


def make_hub(delay: float = 0.0, **overrides) -> tuple[Hub, ScriptedGenerator]:
    gen = ScriptedGenerator(delay)
    hub = Hub(gen, dataclasses.replace(Config(state_path=""), **overrides))
    hub.start()
    return hub, gen


async def drain_until(queue: asyncio.Queue, kind: str) -> list[dict]:
    frames = []
    while True:
        frame = await asyncio.wait_for(queue.get(), 5)
        frames.append(frame)
        if frame["type"] == kind:
            return frames


async def test_answer_flow_and_history():
    hub, gen = make_hub()
    session = hub.open("Ross")
    out = asyncio.Queue()
    hub.attach(session, out)
    assert (await out.get())["type"] == "session"
    hub.send(session, "1", "hello there")
    frames = await drain_until(out, "reply_end")
    assert [f["type"] for f in frames] == ["reply_start", "chunk", "chunk", "reply_end"]
    assert frames[-1]["text"] == "hello there "
    assert [t.speaker for t in session.turns()] == ["Ross", "Joey"]
    assert session.state is SessionState.IDLE


async def test_busy_and_illegal_transition_message():
    hub, _ = make_hub(delay=0.05)
    session = hub.open()
    hub.send(session, "1", "a b c")
    with pytest.raises(ProtocolError) as err:
        hub.send(session, "2", "again")
    assert err.value.code is ErrorCode.BUSY
    with pytest.raises(IllegalTransition, match="expected IDLE, got ANSWERING"):
        session.transition(SessionState.IDLE, SessionState.ANSWERING)
    await session.task


async def test_cancel_closes_the_generator_stream():
    hub, gen = make_hub(delay=0.05)
    session = hub.open()
    out = asyncio.Queue()
    hub.attach(session, out)
    hub.send(session, "1", "one two three four five six")
    await drain_until(out, "chunk")
    hub.cancel(session)
    end = (await drain_until(out, "reply_end"))[-1]
    assert end["finish_reason"] == "cancelled" and gen.replies[-1].closed


async def test_rate_limit_is_typed_and_recovers():
    hub, _ = make_hub(rate_limit_messages=2, rate_limit_window_s=0.3)
    session = hub.open()
    for i in range(2):
        hub.send(session, str(i), "hi")
        await session.task
    with pytest.raises(ProtocolError) as err:
        hub.send(session, "x", "hi")
    assert err.value.code is ErrorCode.RATE_LIMITED and err.value.retry_after > 0
    await asyncio.sleep(0.35)
    hub.send(session, "y", "hi")
    await session.task


async def test_history_is_bounded():
    hub, gen = make_hub(max_history_turns=4)
    session = hub.open()
    for i in range(5):
        hub.send(session, str(i), f"message {i}")
        await session.task
    assert len(session.history) == 4 and session.history[0]["text"] == "message 3"


async def test_idle_sessions_expire():
    hub, _ = make_hub(session_idle_s=0.1)
    session = hub.open()
    await asyncio.sleep(0.3)
    assert session.id not in hub.sessions and session.state is SessionState.CLOSED
    with pytest.raises(ProtocolError) as err:
        hub.resume(session.id, session.token)
    assert err.value.code is ErrorCode.RESUME_REFUSED


async def test_orphaned_reply_is_aborted_after_grace():
    hub, gen = make_hub(delay=0.05, orphan_grace_s=0.05)
    session = hub.open()
    out = asyncio.Queue()
    hub.attach(session, out)
    hub.send(session, "1", " ".join(["word"] * 100))
    hub.detach(session, out)
    await asyncio.wait_for(session.task, 5)
    assert session.answered["1"]["finish_reason"] == "cancelled" and gen.replies[-1].closed


async def test_server_full_is_typed():
    hub, _ = make_hub(max_sessions=1)
    hub.open()
    with pytest.raises(ProtocolError) as err:
        hub.open()
    assert err.value.code is ErrorCode.SERVER_FULL


async def test_sessions_survive_a_restart(tmp_path):
    config = Config(state_path=str(tmp_path / "s.db"))
    hub = Hub(ScriptedGenerator(), config, SessionStore(config.state_path))
    hub.start()
    session = hub.open("Monica")
    hub.send(session, "m", "clean the apartment")
    await session.task
    await hub.stop()
    reborn = Hub(ScriptedGenerator(), config, SessionStore(config.state_path))
    reborn.start()
    again = reborn.resume(session.id, session.token)
    assert [h["text"] for h in again.history] == ["clean the apartment", "clean the apartment "]
    assert again.user_name == "Monica" and again.seq == session.seq and "m" in again.answered
