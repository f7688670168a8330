"""Protocol v1 end to end: a real uvicorn server, the real tiny model, the `websockets` client."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from model.prompt import Turn
from tests.conftest import connect, wait_until


def prompt_text(server, session_id: str) -> str:
    gen = server.app.state.generator
    session = server.hub.sessions[session_id]
    return gen.tokenizer.decode(gen.prompt_ids(session.turns(), server.hub.params))


async def test_reply_streams_in_order_and_end_equals_chunks(server):
    async with connect(server.url) as c:
        info = await c.open()
        assert info["type"] == "session" and info["protocol"] == 1 and not info["resumed"]
        assert len(info["session_id"]) >= 22 and info["token"] != info["session_id"]
        end, before = await c.ask("How you doin'?", "m1")
        start, chunks = before[0], before[1:]
        assert start["type"] == "reply_start" and start["message_id"] == "m1"
        assert all(f["type"] == "chunk" for f in chunks) and chunks
        seqs = [start["seq"], *(f["seq"] for f in chunks), end["seq"]]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        assert end["text"] == "".join(f["text"] for f in chunks)
        assert end["finish_reason"] in ("stop", "length") and end["tokens"] >= 1


async def test_second_prompt_contains_first_exchange(server):
    async with connect(server.url) as c:
        info = await c.open(name="Chandler")
        first, _ = await c.ask("Do you want pizza?", "a")
        await c.ask("And a sandwich?", "b")
        prompt = prompt_text(server, info["session_id"])
        assert "Chandler: Do you want pizza?" in prompt
        assert f"Joey: {first['text']}" in prompt
        assert prompt.rstrip().endswith("Joey:")


async def test_two_sessions_are_isolated(server):
    async with connect(server.url) as a, connect(server.url) as b:
        ia, ib = await a.open(), await b.open()
        await asyncio.gather(a.ask("I love meatball subs", "x"), b.ask("Where is Chandler?", "x"))
        pa, pb = prompt_text(server, ia["session_id"]), prompt_text(server, ib["session_id"])
        assert "meatball" in pa and "meatball" not in pb
        assert "Chandler?" in pb and "Chandler?" not in pa


@pytest.fixture
def talkative(make_server):
    """A server whose replies run 200 tokens: long enough to act on one while it streams."""
    return make_server(min_new_tokens=200, max_new_tokens=200)


async def test_cancel_stops_chunks_and_session_takes_next_message(talkative):
    server = talkative
    async with connect(server.url) as c:
        await c.open()
        end, _ = await c.while_streaming("Tell me a long story", "long", type="cancel")
        assert end["finish_reason"] == "cancelled" and end["tokens"] < 200
        assert await wait_until(lambda: server.app.state.generator.engine.active == 0)
        end2, _ = await c.ask("Hi again", "next")
        assert end2["message_id"] == "next" and end2["finish_reason"] == "length"


async def test_reset_empties_history(server):
    async with connect(server.url) as c:
        info = await c.open()
        await c.ask("Remember the duck", "1")
        await c.send(type="reset")
        reset, _ = await c.until("reset")
        assert reset["seq"] > 0
        assert list(server.hub.sessions[info["session_id"]].history) == []
        await c.ask("Hello", "2")
        assert "duck" not in prompt_text(server, info["session_id"])


@pytest.mark.parametrize("raw, code", [
    ("{not json", "bad_json"),
    ("[1, 2]", "bad_frame"),
    (json.dumps({"type": "dance"}), "unknown_type"),
    (json.dumps({"type": "message", "text": "no id"}), "missing_field"),
    (json.dumps({"type": "message", "id": 5, "text": "x"}), "invalid_field"),
    (json.dumps({"type": "message", "id": "big", "text": "x" * 1001}), "message_too_long"),
])
async def test_bad_input_gets_typed_error_and_connection_stays_open(server, raw, code):
    async with connect(server.url) as c:
        await c.open()
        await c.ws.send(raw)
        err = await c.recv()
        assert err["type"] == "error" and err["code"] == code and err["message"]
        await c.send(type="ping", nonce=7)
        assert await c.recv() == {"type": "pong", "nonce": 7}
        end, _ = await c.ask("still there?", "after-error")
        assert end["type"] == "reply_end"


async def test_message_before_open_is_refused(server):
    async with connect(server.url) as c:
        await c.send(type="message", id="1", text="hi")
        assert (await c.recv())["code"] == "no_session"


async def test_busy_while_answering(talkative):
    server = talkative
    async with connect(server.url) as c:
        await c.open()
        await c.send(type="message", id="one", text="first")
        await c.send(type="message", id="two", text="second")
        end, seen = await c.until("reply_end")
        busy = [f for f in seen if f["type"] == "error"]
        assert busy and busy[0]["code"] == "busy" and busy[0]["message_id"] == "two"
        assert end["message_id"] == "one"


async def test_resent_message_id_is_not_answered_twice(server):
    async with connect(server.url) as c:
        info = await c.open()
        end, _ = await c.ask("Once only", "same")
        await c.send(type="message", id="same", text="Once only")
        again = await c.recv()
        assert again["type"] == "reply_end" and again["duplicate"] and again["text"] == end["text"]
        assert len(server.hub.sessions[info["session_id"]].history) == 2


async def test_resume_with_wrong_token_is_refused_and_right_token_restores(server):
    async with connect(server.url) as c:
        info = await c.open()
        end, _ = await c.ask("Keep this", "k")
    async with connect(server.url) as c:
        await c.send(type="resume", session_id=info["session_id"], token="wrong")
        assert (await c.recv())["code"] == "resume_refused"
        await c.send(type="resume", session_id=info["session_id"], token=info["token"], last_seq=end["seq"])
        back = await c.recv()
        assert back["resumed"] and [h["text"] for h in back["history"]] == ["Keep this", end["text"]]


async def test_resume_mid_reply_replays_missing_chunks_exactly(make_server):
    server = make_server(min_new_tokens=120, max_new_tokens=120, orphan_grace_s=30)
    async with connect(server.url) as c:
        info = await c.open()
        await c.send(type="message", id="r", text="Go on")
        first, got = await c.until("chunk")
        got += [first, await c.recv()]
    received = "".join(f["text"] for f in got if f["type"] == "chunk")
    async with connect(server.url) as c:
        await c.send(type="resume", session_id=info["session_id"], token=info["token"], last_seq=got[-1]["seq"])
        assert (await c.recv())["type"] == "session"
        end, rest = await c.until("reply_end")
    received += "".join(f["text"] for f in rest if f["type"] == "chunk")
    assert received == end["text"]


async def test_client_gone_aborts_request_and_frees_slot(make_server):
    server = make_server(min_new_tokens=200, max_new_tokens=200, orphan_grace_s=0)
    engine = server.app.state.generator.engine
    async with connect(server.url) as c:
        info = await c.open()
        await c.streaming("Talk forever", "bye")
    session = server.hub.sessions[info["session_id"]]
    assert await wait_until(lambda: engine.active == 0 and not session.answering)
    assert server.hub.sessions[info["session_id"]].answered["bye"]["finish_reason"] == "cancelled"


async def test_foreign_origin_is_refused(server):
    with pytest.raises(InvalidStatus) as refused:
        async with connect(server.url, origin="http://evil.example"):
            pass
    assert refused.value.response.status_code == 403
    async with connect(server.url, origin=server.http) as c:
        assert (await c.open())["type"] == "session"


async def test_health_and_readiness(server):
    async with httpx.AsyncClient(base_url=server.http) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        ready = await http.get("/readyz")
        assert ready.status_code == 200 and ready.json()["ready"] and ready.json()["engine"]["ready"]
        assert "/" not in ready.json()["base"] + (ready.json()["adapter"] or "")  # no paths of this machine


def test_prompt_turns_use_display_name(server):
    gen = server.app.state.generator
    text = gen.tokenizer.decode(gen.prompt_ids([Turn("Rachel", "Hi Joey")], server.hub.params))
    assert "Rachel: Hi Joey" in text


async def test_a_frame_flood_is_paced_not_dropped(make_server):
    server = make_server(max_frames_per_s=20)
    async with connect(server.url) as c:
        await c.open()
        started = asyncio.get_running_loop().time()
        for i in range(60):
            await c.ws.send("{bad")
        codes = [(await c.recv())["code"] for _ in range(60)]
        elapsed = asyncio.get_running_loop().time() - started
        assert codes == ["bad_json"] * 60
        assert elapsed >= 1.5  # 20 burst + 40 paced at 20/s: at least about 2 s
        end, _ = await c.ask("still answered", "after-flood")
        assert end["type"] == "reply_end"



@pytest.mark.parametrize("compression", [False, True])
async def test_compression_is_offered_only_when_configured_and_chat_works_either_way(make_server, compression):
    server = make_server(ws_compression=compression)
    async with connect(server.url) as c:  # the websockets client offers permessage-deflate
        assert [e.name for e in c.ws.protocol.extensions] == (["permessage-deflate"] if compression else [])
        await c.open()
        end, text = await c.ask("Pizza?", "compressed" if compression else "plain")
        assert end["type"] == "reply_end" and text

# --- protocol additions: regenerate, a speaker name per message, server_busy ------------------
async def test_regenerate_replaces_joeys_answer_to_the_last_message(server):
    async with connect(server.url) as c:
        info = await c.open()
        await c.send(type="regenerate")
        assert (await c.recv())["code"] == "nothing_to_regenerate"
        first, _ = await c.ask("Do you want pizza?", "p")
        await c.send(type="regenerate", message_id="p")
        end, before = await c.until("reply_end")
        assert before[0]["type"] == "reply_start" and before[0]["regenerate"] is True
        assert end["message_id"] == "p" and end["seq"] > first["seq"]
        history = server.hub.sessions[info["session_id"]].history
        assert [(h["role"], h["message_id"]) for h in history] == [("user", "p"), ("joey", "p")]
        assert history[1]["text"] == end["text"]
        await c.send(type="message", id="p", text="Do you want pizza?")  # a resend gets the new answer
        again = await c.recv()
        assert again["duplicate"] and again["seq"] == end["seq"]
        await c.send(type="regenerate", message_id="other")
        assert (await c.recv())["code"] == "nothing_to_regenerate"


async def test_regenerate_while_answering_is_busy(talkative):
    server = talkative
    async with connect(server.url) as c:
        await c.open()
        end, seen = await c.while_streaming("first", "one", type="regenerate")
        assert [f["code"] for f in seen if f["type"] == "error"] == ["busy"]
        assert end["message_id"] == "one"


async def test_message_name_is_the_speaker_of_that_turn(server):
    async with connect(server.url) as c:
        info = await c.open(name="Ross")
        await c.send(type="message", id="r", text="Where is my lipstick?", name="Rachel")
        await c.until("reply_end")
        await c.ask("Joey, sit down", "m")
        history = server.hub.sessions[info["session_id"]].history
        assert history[0]["name"] == "Rachel" and "name" not in history[2]
        prompt = prompt_text(server, info["session_id"])
        assert "Rachel: Where is my lipstick?" in prompt and "Ross: Joey, sit down" in prompt
        await c.ws.send(json.dumps({"type": "message", "id": "x", "text": "hi", "name": "N" * 33}))
        assert (await c.recv())["code"] == "invalid_field"


async def test_server_busy_when_the_engine_queue_is_long(make_server):
    server = make_server(min_new_tokens=200, max_new_tokens=200, max_batch=1, max_queued_replies=0)
    async with connect(server.url) as a, connect(server.url) as b:
        await a.open()
        await b.open()
        await a.streaming("Tell me everything", "long")
        await b.send(type="message", id="wait", text="Hi Joey")
        busy = await b.recv()
        assert busy["code"] == "server_busy" and busy["message_id"] == "wait" and busy["retry_after"] >= 1
        await a.send(type="cancel")
        await a.until("reply_end")
        end, _ = await b.ask("Hi Joey", "wait")  # the same id, resent after the queue cleared
        assert end["message_id"] == "wait"


async def test_edit_over_the_wire_branches_the_conversation(make_server):
    server = make_server(max_new_tokens=8)
    async with connect(server.url) as c:
        opened = await c.open(name="Ross")
        for i, text in enumerate(["Hi, I'm Ross", "I like dinosaurs", "What do I like?"]):
            await c.ask(text, f"m{i}")
        await c.send(type="edit", message_id="m1", text="I like pizza")
        end, frames = await c.until("reply_end")
        assert frames[0]["type"] == "reply_start" and end["message_id"] == "m1" and end["text"]
        await c.send(type="edit", message_id="m9", text="Hi")
        assert (await c.recv())["code"] == "invalid_field"
    async with connect(server.url) as c:
        await c.send(type="resume", session_id=opened["session_id"], token=opened["token"])
        history = (await c.recv())["history"]
    assert [(t["role"], t["message_id"]) for t in history] == [("user", "m0"), ("joey", "m0"), ("user", "m1"), ("joey", "m1")]
    assert history[2]["text"] == "I like pizza" and history[3]["text"] == end["text"]
