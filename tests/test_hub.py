"""Hub unit tests. The one place a test double stands in for the model: a scripted generator."""

from __future__ import annotations

import asyncio
import time
import dataclasses

import pytest

from backend.config import Config
from backend.hub import Hub
from backend.session import IllegalTransition, Reply, ReplyState
from backend.protocol import ErrorCode, ProtocolError
from backend.store import SessionStore
from model.engine import FinishReason


class ScriptedReply:
    """``words`` one by one, then ``finish`` (LENGTH: as if max_new_tokens cut it)."""

    def __init__(self, words: list[str], delay: float, finish: FinishReason = FinishReason.STOP):
        self.words, self.delay, self.finish = words, delay, finish
        self.finish_reason, self.tokens, self.closed = None, 0, False

    def __aiter__(self):
        return self._gen()

    async def _gen(self):
        for word in self.words:
            await asyncio.sleep(self.delay)
            self.tokens += 1
            yield word
        self.finish_reason = self.finish

    async def aclose(self):
        self.closed = True


class ScriptedGenerator:
    """Echoes the last user turn word by word, and records every conversation it was given."""

    ready = True
    bot_name = "Joey"

    def __init__(self, delay: float = 0.0):
        self.delay, self.calls, self.replies = delay, [], []

    def stream(self, turns, params):
        self.calls.append(list(turns))
        reply = ScriptedReply([f"{w} " for w in turns[-1].text.split()], self.delay)
        self.replies.append(reply)
        return reply


class BrokenGenerator(ScriptedGenerator):
    """Raises what a tokenizer raises on text it cannot encode."""

    def stream(self, turns, params):
        raise TypeError("TextEncodeInput must be Union[TextInputSequence, ...]")


@pytest.fixture
async def make_hub():
    """Hubs on a scripted generator; each is stopped after the test."""
    hubs = []

    def make(delay: float = 0.0, generator=None, **overrides) -> tuple[Hub, ScriptedGenerator]:
        gen = generator or ScriptedGenerator(delay)
        hub = Hub(gen, dataclasses.replace(Config(state_path="", shutdown_grace_s=1.0), **overrides))
        hub.start()
        hubs.append(hub)
        return hub, gen

    yield make
    for hub in hubs:
        await hub.stop()


async def drain_until(queue: asyncio.Queue, kind: str) -> list[dict]:
    frames = []
    while True:
        frame = await asyncio.wait_for(queue.get(), 5)
        frames.append(frame)
        if frame["type"] == kind:
            return frames


def attached(hub: Hub, name: str | None = None):
    session = hub.open(name)
    out = asyncio.Queue()
    hub.attach(session, out)
    assert out.get_nowait()["type"] == "session"
    return session, out


async def test_answer_flow_and_history(make_hub):
    hub, gen = make_hub()
    session, out = attached(hub, "Ross")
    hub.send(session, "1", "hello there")
    frames = await drain_until(out, "reply_end")
    assert [f["type"] for f in frames] == ["reply_start", "chunk", "chunk", "reply_end"]
    assert frames[-1]["text"] == "hello there "
    assert [t.speaker for t in session.turns()] == ["Ross", "Joey"]
    assert not session.answering


async def test_busy_and_illegal_transition_message(make_hub):
    hub, _ = make_hub(delay=0.05)
    session = hub.open()
    hub.send(session, "1", "a b c")
    with pytest.raises(ProtocolError) as err:
        hub.send(session, "2", "again")
    assert err.value.code is ErrorCode.BUSY
    reply = session.reply
    await reply.task
    assert reply.state is ReplyState.DONE
    with pytest.raises(IllegalTransition, match="expected PENDING or STREAMING, got DONE"):
        reply.move(frozenset({ReplyState.PENDING, ReplyState.STREAMING}), ReplyState.CANCELLED)


async def test_cancel_before_the_reply_task_runs_still_ends_the_reply(make_hub):
    hub, _ = make_hub()
    session, out = attached(hub)
    hub.send(session, "a", "hello")
    hub.cancel(session)  # the task has not had a single step yet
    frames = await drain_until(out, "reply_end")
    assert [f["type"] for f in frames] == ["reply_start", "reply_end"]
    assert frames[-1]["finish_reason"] == "cancelled" and not session.answering
    hub.send(session, "b", "again")
    assert (await drain_until(out, "reply_end"))[-1]["finish_reason"] == "stop"


async def test_a_generator_that_raises_fails_the_reply_not_the_session(make_hub):
    hub, _ = make_hub(generator=BrokenGenerator())
    session, out = attached(hub)
    hub.send(session, "a", "hi")
    frames = await drain_until(out, "reply_end")
    assert [f.get("code") for f in frames if f["type"] == "error"] == ["model_error"]
    assert frames[-1]["finish_reason"] == "error" and not session.answering
    hub.generator = ScriptedGenerator()
    hub.send(session, "b", "hi again")
    assert (await drain_until(out, "reply_end"))[-1]["finish_reason"] == "stop"


async def test_cancel_closes_the_generator_stream(make_hub):
    hub, gen = make_hub(delay=0.05)
    session, out = attached(hub)
    hub.send(session, "1", "one two three four five six")
    await drain_until(out, "chunk")
    hub.cancel(session)
    end = (await drain_until(out, "reply_end"))[-1]
    assert end["finish_reason"] == "cancelled" and gen.replies[-1].closed


async def test_regenerate_replaces_joeys_last_answer(make_hub):
    hub, gen = make_hub()
    session, out = attached(hub)
    with pytest.raises(ProtocolError) as err:
        hub.regenerate(session)
    assert err.value.code is ErrorCode.NOTHING_TO_REGENERATE
    hub.send(session, "q", "pizza please")
    await drain_until(out, "reply_end")
    hub.regenerate(session, "q")
    frames = await drain_until(out, "reply_end")
    assert frames[0] == {**frames[0], "type": "reply_start", "message_id": "q", "regenerate": True}
    assert [h["role"] for h in session.history] == ["user", "joey"]
    assert [t.text for t in gen.calls[-1]] == ["pizza please"]  # Joey's old answer was not in the prompt
    with pytest.raises(ProtocolError) as err:
        hub.regenerate(session, "not-the-last")
    assert err.value.code is ErrorCode.NOTHING_TO_REGENERATE


async def test_speaker_name_per_turn(make_hub):
    hub, gen = make_hub()
    session, out = attached(hub, "Ross")
    hub.send(session, "1", "hi", name="Rachel")
    await drain_until(out, "reply_end")
    hub.send(session, "2", "hey")
    await drain_until(out, "reply_end")
    assert [t.speaker for t in gen.calls[-1]] == ["Rachel", "Joey", "Ross"]


async def test_rate_limit_is_typed(make_hub):
    hub, _ = make_hub(rate_limit_messages=2, rate_limit_window_s=3600)
    session = hub.open()
    for i in range(2):
        hub.send(session, str(i), "hi")
        await session.reply.task
    with pytest.raises(ProtocolError) as err:
        hub.send(session, "x", "hi")
    assert err.value.code is ErrorCode.RATE_LIMITED and err.value.retry_after > 0
    session.sent_times.clear()  # the window has passed
    hub.send(session, "y", "hi")
    await session.reply.task


async def test_server_busy_when_the_queue_is_long(make_hub):
    hub, _ = make_hub(delay=0.05, max_batch=1, max_queued_replies=1)
    first, second, third = hub.open(), hub.open(), hub.open()
    hub.send(first, "a", "long " * 20)
    hub.send(second, "a", "long " * 20)  # waits for the one slot
    with pytest.raises(ProtocolError) as err:
        hub.send(third, "a", "hi")
    assert err.value.code is ErrorCode.SERVER_BUSY and err.value.retry_after >= 1
    assert not third.history and not third.sent_times  # refused without side effects


async def test_server_busy_when_a_reply_would_wait_too_long_and_retry_after_says_when_it_would_not(make_hub):
    hub, _ = make_hub(delay=0.05, max_batch=2, max_queue_wait_s=10)
    sessions = [hub.open() for _ in range(9)]
    hub.admission.reply_s, hub.admission.ended = 4.0, 2  # measured: replies hold a slot 4 s, one frees every 2 s
    for s in sessions[:7]:  # 2 decode, 5 wait (the fifth waits 10 s)
        hub.send(s, "a", "long " * 20)
    refused = []
    for s in sessions[7:]:
        with pytest.raises(ProtocolError) as err:
            hub.send(s, "a", "hi")
        refused.append(err.value)
    assert all(e.code is ErrorCode.SERVER_BUSY for e in refused)
    # One slot's turn for the first refused, the next slot's for the second: not both at once.
    assert [round(e.retry_after) for e in refused] == [2, 4]
    hub.admission.reply_s = 2.0  # replies got quicker: a slot frees every second, 10 may wait
    hub.send(sessions[7], "a", "hi")
    # But waiting replies got their slots 5 s apart lately (a full batch steps slower than the
    # holds say): the queue's own pace counts, and only 2 may wait.
    now = time.monotonic()
    hub.admission.turns.extend([now - 10, now - 5])
    with pytest.raises(ProtocolError) as err:
        hub.send(sessions[8], "a", "hi")
    assert err.value.code is ErrorCode.SERVER_BUSY


async def test_until_a_batch_of_replies_is_measured_half_the_wait_bound_admits(make_hub):
    hub, _ = make_hub(delay=0.05, max_batch=2, max_queue_wait_s=10)
    sessions = [hub.open() for _ in range(6)]
    # The guess (5 s a reply, a slot every 2.5 s) admits 2 waiting within 5 s, not 4 within 10 s.
    for s in sessions[:4]:
        hub.send(s, "a", "long " * 20)
    with pytest.raises(ProtocolError) as err:
        hub.send(sessions[4], "a", "hi")
    assert err.value.code is ErrorCode.SERVER_BUSY
    hub.admission.ended = 2  # a batch's worth of replies measured: the whole bound holds
    hub.send(sessions[4], "a", "hi")


async def test_history_is_bounded(make_hub):
    hub, gen = make_hub(max_history_turns=4)
    session = hub.open()
    for i in range(5):
        hub.send(session, str(i), f"message {i}")
        await session.reply.task
    assert len(session.history) == 4 and session.history[0]["text"] == "message 3"


async def test_unused_sessions_expire_fast_and_used_ones_slowly(make_hub):
    hub, _ = make_hub(fresh_session_idle_s=60, session_idle_s=3600)
    fresh, used = hub.open(), hub.open()
    hub.send(used, "1", "hi")
    await used.reply.task
    for session in (fresh, used):
        session.last_active -= 120  # two minutes pass
    assert hub.reap() == 1
    assert fresh.id not in hub.sessions and fresh.closed and used.id in hub.sessions
    with pytest.raises(ProtocolError) as err:
        hub.resume(fresh.id, fresh.token)
    assert err.value.code is ErrorCode.RESUME_REFUSED


async def test_orphaned_reply_is_aborted_after_grace(make_hub):
    hub, gen = make_hub(delay=0.05, orphan_grace_s=0.05)
    session, out = attached(hub)
    hub.send(session, "1", " ".join(["word"] * 100))
    hub.detach(session, out)
    await asyncio.wait_for(session.reply.task, 5)
    assert session.answered["1"]["finish_reason"] == "cancelled" and gen.replies[-1].closed


async def test_server_full_and_per_client_bound_are_typed(make_hub):
    hub, _ = make_hub(max_sessions=3, max_sessions_per_client=2)
    hub.open(client="10.0.0.1")
    hub.open(client="10.0.0.1")
    with pytest.raises(ProtocolError) as err:
        hub.open(client="10.0.0.1")
    assert err.value.code is ErrorCode.TOO_MANY_SESSIONS and err.value.retry_after > 0
    hub.open(client="10.0.0.2")
    with pytest.raises(ProtocolError) as err:
        hub.open()
    assert err.value.code is ErrorCode.SERVER_FULL


async def test_stop_lets_a_reply_finish_within_the_grace_and_refuses_newcomers(make_hub):
    hub, _ = make_hub(delay=0.01)
    session, out = attached(hub)
    hub.send(session, "1", "word " * 30)
    await drain_until(out, "chunk")
    await hub.stop(grace_s=10)
    frames = await drain_until(out, "error")
    assert frames[-2]["type"] == "reply_end" and frames[-2]["finish_reason"] == "stop"
    assert frames[-2]["text"] == "word " * 30  # whole: the restart cut nothing
    assert frames[-1]["code"] == "server_restarting"
    with pytest.raises(ProtocolError) as err:
        hub.open()
    assert err.value.code is ErrorCode.SERVER_RESTARTING


async def test_a_reply_still_running_when_the_grace_ends_is_interrupted_not_kept(make_hub, tmp_path):
    config = Config(state_path=str(tmp_path / "s.db"), shutdown_grace_s=0.3)
    gen = ScriptedGenerator(delay=0.05)
    hub = Hub(gen, config, SessionStore(config.state_path))
    hub.start()
    session, out = attached(hub)
    hub.send(session, "1", "first")
    await drain_until(out, "reply_end")
    hub.send(session, "2", "word " * 100)
    await drain_until(out, "chunk")
    await hub.stop()
    frames = await drain_until(out, "error")
    assert frames[-1]["code"] == "server_restarting"
    assert not [f for f in frames if f["type"] == "reply_end"]  # no partial text passed off as the answer
    assert gen.replies[-1].closed and not hub.replies  # its engine slot was given back
    assert "2" not in session.answered and [t["message_id"] for t in session.history] == ["1", "1"]
    assert hub.metrics.replies.labels("interrupted")._value.get() == 1
    # After the restart the message is unknown, so the client's resend is answered in full, once.
    again = Hub(ScriptedGenerator(), config, SessionStore(config.state_path))
    again.start()
    try:
        restored, out = again.resume(session.id, session.token), asyncio.Queue()
        again.attach(restored, out, last_seq=0)
        again.send(restored, "2", "word " * 100)
        end = (await drain_until(out, "reply_end"))[-1]
        assert end["text"] == "word " * 100 and end["finish_reason"] == "stop" and not end.get("duplicate")
        assert [t["message_id"] for t in restored.history] == ["1", "1", "2", "2"]
    finally:
        await again.stop()
        again.store.close()
        hub.store.close()


async def test_sessions_survive_a_restart(tmp_path):
    config = Config(state_path=str(tmp_path / "s.db"))
    hub = Hub(ScriptedGenerator(), config, SessionStore(config.state_path))
    hub.start()
    session = hub.open("Monica")
    unused = hub.open("Phoebe")
    hub.send(session, "m", "clean the apartment")
    await session.reply.task
    await hub.stop()
    reborn = Hub(ScriptedGenerator(), config, SessionStore(config.state_path))
    reborn.start()
    again = reborn.resume(session.id, session.token)
    assert [h["text"] for h in again.history] == ["clean the apartment", "clean the apartment "]
    assert again.user_name == "Monica" and again.seq == session.seq and "m" in again.answered
    assert unused.id not in reborn.sessions  # an abandoned open is not persisted
    await reborn.stop()


class BrokenStore:
    """A store whose every write fails, as SQLite does on a full disk."""

    def load(self, max_idle_s):
        return []

    def save(self, session):
        raise OSError("database or disk is full")

    def delete(self, session_id):
        raise OSError("database or disk is full")


async def test_a_failing_store_costs_durability_not_the_conversation(make_hub):
    hub, _ = make_hub()
    hub.store = BrokenStore()
    session, out = attached(hub)
    hub.send(session, "1", "hello")
    assert (await drain_until(out, "reply_end"))[-1]["finish_reason"] == "stop"
    await hub.reset(session)
    assert (await drain_until(out, "reset"))[-1]["type"] == "reset" and not session.answering


async def test_a_server_bug_on_one_frame_is_a_typed_error_and_the_endpoint_carries_on(make_hub):
    from backend.endpoint import Endpoint

    hub, _ = make_hub()
    endpoint = Endpoint(hub)
    await endpoint.receive('{"type":"open"}')
    assert endpoint.outbox.get_nowait()["type"] == "session"

    def broken_send(*args):
        raise KeyError("a bug")

    hub.send = broken_send
    await endpoint.receive('{"type":"message","id":"1","text":"hi"}')
    assert endpoint.outbox.get_nowait()["code"] == "internal_error"
    await endpoint.receive('{"type":"ping","nonce":3}')
    assert endpoint.outbox.get_nowait() == {"type": "pong", "nonce": 3}
    endpoint.close()


def test_the_local_relay_has_the_redis_relays_interface():
    """One replica or many, the hub makes the same calls: a server alone has the no-op LocalRelay."""
    import inspect

    from backend.relay import LocalRelay, Relay

    def face(cls) -> dict:
        return {name: (str(inspect.signature(member)) if callable(member) else type(member),
                       inspect.iscoroutinefunction(member))
                for name, member in inspect.getmembers(cls) if not name.startswith("_")}

    assert face(LocalRelay) == face(Relay)
    assert (LocalRelay.shared, Relay.shared) == (False, True)


async def test_a_server_alone_relays_nothing_and_keeps_rate_windows_in_its_sessions(make_hub):
    hub, _ = make_hub(rate_limit_messages=1, rate_limit_window_s=3600)
    assert not hub.relay.shared
    session, out = attached(hub)
    hub.send(session, "1", "hi")
    await drain_until(out, "reply_end")
    again = hub.resume(session.id, session.token)  # no other replica: nothing to follow
    assert again is session and not session.answering and len(session.sent_times) == 1


async def test_one_address_gets_its_share_of_the_engine_and_no_more(make_hub):
    hub, _ = make_hub(delay=0.05, max_replies_per_client=2)
    flood = [hub.open(client="10.0.0.1") for _ in range(3)]
    hub.send(flood[0], "1", "word " * 20)
    hub.send(flood[1], "1", "word " * 20)
    with pytest.raises(ProtocolError) as busy:
        hub.send(flood[2], "1", "word " * 20)
    assert busy.value.code is ErrorCode.SERVER_BUSY and busy.value.retry_after >= 1
    assert [t["role"] for t in flood[2].history] == []  # refused without a trace: resend the same id later
    other, out = attached(hub)
    other.client = "10.0.0.2"
    hub.send(other, "1", "hi")  # another address is served at once
    assert (await drain_until(out, "reply_end"))[-1]["finish_reason"] == "stop"
    hub.open(client=None)  # in-process frontends speak for many: never capped per address


async def test_too_many_sessions_says_truly_when_one_frees_up(make_hub):
    hub, _ = make_hub(max_sessions_per_client=2, fresh_session_idle_s=300, session_idle_s=3600)
    fresh, used = hub.open(client="10.0.0.1"), hub.open(client="10.0.0.1")
    hub.send(used, "1", "hi")
    await asyncio.sleep(0.05)
    with pytest.raises(ProtocolError) as full:
        hub.open(client="10.0.0.1")
    assert 299 <= full.value.retry_after <= 300  # the unused one goes first, 5 minutes after it was opened
    hub.close(fresh)
    hub.open(client="10.0.0.2")
    hub.config = hub.admission.config = dataclasses.replace(hub.config, max_sessions_per_client=1)
    with pytest.raises(ProtocolError) as full:
        hub.open(client="10.0.0.1")
    assert 3598 <= full.value.retry_after <= 3600  # a used one counts for its whole idle time: said so


async def test_edit_branches_the_conversation_at_that_message_and_answers_the_new_text(make_hub):
    hub, gen = make_hub()
    session = hub.open()
    for i, text in enumerate(["I'm Sam", "I like pizza", "What's my name?"]):
        hub.send(session, f"m{i}", text)
        await session.reply.task
    hub.edit(session, "m1", "I like sushi")
    await session.reply.task
    assert [(t["role"], t["text"][:12]) for t in session.history][:3] == [
        ("user", "I'm Sam"), ("joey", session.history[1]["text"][:12]), ("user", "I like sushi")]
    assert len(session.history) == 4 and "m2" not in session.answered  # m2 left with the branch
    assert session.answered["m1"]["text"] == session.history[3]["text"]
    assert [t.text for t in gen.calls[-1]] == ["I'm Sam", session.history[1]["text"], "I like sushi"]
    hub.send(session, "m2", "What's my name?")  # the same id is a new message now, not a duplicate
    await session.reply.task
    assert len(session.history) == 6
    with pytest.raises(ProtocolError) as err:
        hub.edit(session, "nope", "hi")
    assert err.value.code is ErrorCode.INVALID_FIELD
