"""Regenerate keeps earlier versions of Joey's reply, and the version chosen is what the history
(and so the next answer) holds: the hub, the protocol frame and a real server over WebSocket."""

from __future__ import annotations

import json

import pytest

from backend import protocol as p
from backend.protocol import ErrorCode, ProtocolError
from backend.store import SessionStore
from backend.hub import Hub
from tests.conftest import connect
from tests.test_hub import ScriptedGenerator, ScriptedReply, attached, drain_until
from tests.test_hub import make_hub  # noqa: F401  (a fixture: pytest finds it by name here)


class CountingGenerator(ScriptedGenerator):
    """Answers "take N" to every message, N counting up, so each version differs."""

    def stream(self, turns, params):
        self.calls.append(list(turns))
        reply = ScriptedReply([f"take {len(self.calls)}"], self.delay)
        self.replies.append(reply)
        return reply


async def answered(hub: Hub, session, out, message_id: str, text: str) -> dict:
    hub.send(session, message_id, text)
    return (await drain_until(out, "reply_end"))[-1]


async def regenerated(hub: Hub, session, out, message_id: str) -> dict:
    hub.regenerate(session, message_id)
    return (await drain_until(out, "reply_end"))[-1]


async def test_regenerate_keeps_every_version_and_the_latest_is_chosen(make_hub):
    hub, gen = make_hub(generator=CountingGenerator())
    session, out = attached(hub)
    await answered(hub, session, out, "q", "pizza?")
    assert "versions" not in session.history[-1]  # one answer: no versions to speak of
    await regenerated(hub, session, out, "q")
    end = await regenerated(hub, session, out, "q")
    turn = session.history[-1]
    assert end["text"] == turn["text"] == "take 3"
    assert turn["versions"] == [{"text": "take 1"}, {"text": "take 2"}, {"text": "take 3"}] and turn["version"] == 2
    assert [t.text for t in gen.calls[-1]] == ["pizza?"]  # the earlier versions are not in the prompt
    assert hub.snapshot(session, resumed=True)["history"][-1]["versions"] == turn["versions"]


async def test_the_chosen_version_is_what_the_next_message_is_answered_from(make_hub):
    hub, gen = make_hub(generator=CountingGenerator())
    session, out = attached(hub)
    await answered(hub, session, out, "q", "pizza?")
    await regenerated(hub, session, out, "q")
    session.history[-1]["rating"] = "up"  # rated the second version
    hub.choose_version(session, "q", 0)
    frame = out.get_nowait()
    assert frame == {"type": "version", "message_id": "q", "version": 0, "text": "take 1", "finish_reason": "stop"}
    assert session.history[-1]["text"] == "take 1" and session.history[-1]["version"] == 0
    assert "rating" not in session.history[-1]  # the rating was of the other text
    await answered(hub, session, out, "next", "and then?")
    assert [t.text for t in gen.calls[-1]] == ["pizza?", "take 1", "and then?"]


async def test_bad_choices_are_typed_errors_and_change_nothing(make_hub):
    hub, _ = make_hub(generator=CountingGenerator(delay=0.05))
    session, out = attached(hub)
    await answered(hub, session, out, "q", "pizza?")
    with pytest.raises(ProtocolError) as err:  # one version only
        hub.choose_version(session, "q", 0)
    assert err.value.code is ErrorCode.INVALID_FIELD and err.value.message_id == "q"
    await regenerated(hub, session, out, "q")
    before = [dict(t) for t in session.history]
    for message_id, version in (("nope", 0), ("q", 2), ("q", 99)):
        with pytest.raises(ProtocolError) as err:
            hub.choose_version(session, message_id, version)
        assert err.value.code is ErrorCode.INVALID_FIELD
    assert [dict(t) for t in session.history] == before and out.empty()
    hub.send(session, "r", "a b c")
    with pytest.raises(ProtocolError) as err:  # not while Joey answers
        hub.choose_version(session, "q", 0)
    assert err.value.code is ErrorCode.BUSY
    await session.reply.task


async def test_versions_are_capped_oldest_first(make_hub):
    hub, _ = make_hub(generator=CountingGenerator(), max_reply_versions=3)
    session, out = attached(hub)
    await answered(hub, session, out, "q", "pizza?")
    for _ in range(4):
        await regenerated(hub, session, out, "q")
    turn = session.history[-1]
    assert [v["text"] for v in turn["versions"]] == ["take 3", "take 4", "take 5"] and turn["version"] == 2
    assert hub.snapshot(session, resumed=False)["limits"]["max_reply_versions"] == 3


async def test_a_regenerate_stopped_before_a_word_keeps_the_answer_there_was(make_hub):
    hub, _ = make_hub(generator=CountingGenerator(delay=0.5))
    session, out = attached(hub)
    await answered(hub, session, out, "q", "pizza?")
    kept = dict(session.history[-1])
    hub.regenerate(session, "q")
    hub.cancel(session)
    end = (await drain_until(out, "reply_end"))[-1]
    assert end["finish_reason"] == "cancelled" and end["text"] == ""
    assert session.history[-1] == kept


async def test_versions_survive_a_restart(tmp_path):
    import dataclasses

    from backend.config import Config

    config = Config(state_path=str(tmp_path / "s.db"), shutdown_grace_s=1.0)
    hub = Hub(CountingGenerator(), config, SessionStore(config.state_path))
    hub.start()
    session, out = attached(hub)
    await answered(hub, session, out, "q", "pizza?")
    await regenerated(hub, session, out, "q")
    hub.choose_version(session, "q", 0)
    await hub.stop()
    again = Hub(CountingGenerator(), dataclasses.replace(config), SessionStore(config.state_path))
    again.start()
    turn = again.resume(session.id, session.token).history[-1]
    assert turn["text"] == "take 1" and turn["version"] == 0 and len(turn["versions"]) == 2
    await again.stop()


@pytest.mark.parametrize("frame, code", [
    ({"type": "version", "message_id": "q", "version": 1}, None),
    ({"type": "version", "message_id": "q", "version": -1}, "invalid_field"),
    ({"type": "version", "message_id": "q", "version": "1"}, "invalid_field"),
    ({"type": "version", "message_id": "q", "version": True}, "invalid_field"),
    ({"type": "version", "message_id": "q"}, "missing_field"),
    ({"type": "version", "version": 0}, "missing_field"),
])
def test_the_version_frame_is_parsed_strictly(frame, code):
    from tests.spec import load_spec

    try:
        parsed = p.parse_client_frame(json.dumps(frame), 1000, 32)
        assert parsed == p.ChooseVersion("q", 1)
        got = None
    except ProtocolError as exc:
        got = exc.code.value
    assert got == code
    assert bool(load_spec(strict=True).errors("client", frame)) == (code is not None)


async def test_versions_over_the_websocket(server):
    async with connect(server.url) as client:
        await client.open()
        end, _ = await client.ask("Pizza?", "m1")
        await client.send(type="regenerate", message_id="m1")
        start, _ = await client.until("reply_start")
        assert start.get("regenerate") is True
        again, _ = await client.until("reply_end")
        await client.send(type="version", message_id="m1", version=0)
        chosen, _ = await client.until("version")
        assert chosen == {"type": "version", "message_id": "m1", "version": 0, "text": end["text"],
                          "finish_reason": end["finish_reason"]}
        await client.send(type="version", message_id="m1", version=5)
        error, _ = await client.until("error")
        assert error["code"] == "invalid_field" and error["message_id"] == "m1"
    turn = list(server.hub.sessions.values())[-1].history[-1]
    assert turn["text"] == end["text"] and [v["text"] for v in turn["versions"]] == [end["text"], again["text"]]
