"""docs/asyncapi.yaml is valid AsyncAPI 3.0.0 and says what backend/protocol.py and the server do."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
import re

import pytest
from websockets.exceptions import ConnectionClosed

from backend import protocol as p
from backend import websocket as ws_route
from backend.config import Config
from backend.local_transport import LocalTransport
from client import ClientError, JoeyClient, WebSocketTransport
from tests.spec import ASYNCAPI_SCHEMA_PATH, ProtocolSpec, ValidatingTransport, asyncapi_validator, load_document, load_spec
from tests.conftest import ROOT, connect

PROTOCOL_MD = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def spec() -> ProtocolSpec:
    return load_spec(strict=True)


# --- the document itself ----------------------------------------------------------------------
def test_asyncapi_document_is_valid_asyncapi_3():
    doc = load_document()
    assert doc["asyncapi"] == "3.0.0"
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in asyncapi_validator().iter_errors(doc)]
    assert errors == []


def test_the_official_schema_really_checks():
    schema = json.loads(ASYNCAPI_SCHEMA_PATH.read_text())
    assert schema["$id"] == "http://asyncapi.com/definitions/3.0.0/asyncapi.json"
    assert (ASYNCAPI_SCHEMA_PATH.parent / "README.md").read_text().count("Apache-2.0")
    broken = copy.deepcopy(load_document())
    broken["channels"]["chat"]["bindings"]["ws"]["method"] = "PUT"  # the ws binding allows GET or POST
    del broken["info"]["version"]
    assert len(list(asyncapi_validator().iter_errors(broken))) >= 2


def test_channel_is_ws_with_websockets_binding():
    doc = load_document()
    chat = doc["channels"]["chat"]
    assert chat["address"] == "/ws" and chat["bindings"]["ws"]["method"] == "GET"
    assert doc["servers"]["local"]["protocol"] == "ws"
    description = chat["description"]
    for code in (ws_route.CLOSE_NORMAL, ws_route.CLOSE_POLICY, 1009, ws_route.CLOSE_SERVICE_RESTART,
                 ws_route.CLOSE_TRY_AGAIN_LATER):
        assert f"| {code} |" in description
    for word in ("Origin", "api_key", "Bearer", "last_seq", "duplicate", "busy"):
        assert word in description


def test_every_message_example_matches_its_payload(spec):
    for name, message in spec.doc["components"]["messages"].items():
        direction = "client" if message["payload"]["$ref"][1:] in spec.client_messages.values() else "server"
        assert message["examples"], name
        for example in message["examples"]:
            spec.validate(direction, example["payload"])


# --- the spec and backend/protocol.py agree ---------------------------------------------------
def test_frame_types_and_constants_match_protocol_py(spec):
    assert set(spec.client_messages) == {"open", "resume", "message", "edit", "regenerate", "continue", "version",
                                         "cancel", "reset", "ping", "feedback"}
    assert set(spec.server_messages) == {"session", "reply_start", "chunk", "reply_end", "reset", "pong", "error",
                                         "feedback", "version"}
    for kind in spec.client_messages:  # each is a frame the parser knows
        try:
            p.parse_client_frame(json.dumps({"type": kind}), 1000, 32)
        except p.ProtocolError as exc:
            assert exc.code is p.ErrorCode.MISSING_FIELD, kind
    assert spec.resolve(spec.doc["components"]["schemas"]["ErrorCode"])["enum"] == [c.value for c in p.ErrorCode]
    assert spec.payload_schema("server", "session")["properties"]["protocol"]["const"] == p.PROTOCOL_VERSION
    assert spec.doc["components"]["schemas"]["MessageId"]["maxLength"] == p.MAX_ID_CHARS
    from model.engine import FinishReason

    finish = spec.payload_schema("server", "reply_end")["properties"]["finish_reason"]["enum"]
    assert finish == [r.value for r in FinishReason]


def test_server_frame_builders_match_the_spec(spec):
    history = [{"role": "user", "text": "Hi", "message_id": "a"}, {"role": "joey", "text": "Hey", "message_id": "a"}]
    limits = {"max_message_chars": 1000, "max_new_tokens": 60, "rate_limit_messages": 20, "rate_limit_window_s": 60.0}
    frames = [
        p.session_frame("sid", "tok", False, [], 0, None, limits),
        p.session_frame("sid", "tok", True, history, 9, {"message_id": "b", "seq": 6}, limits),
        p.reply_start(1, "a"), p.chunk(2, "a", " Hey"), p.reply_end(3, "a", "Hey", "stop", 2),
        {**p.reply_end(3, "a", "Hey", "length", 2), "duplicate": True}, p.reply_end(4, "b", "", "cancelled", 0),
        p.reset_done(5), p.pong(None), p.pong("n"), p.pong(7), p.feedback_done("a", "up"), p.feedback_done("a", None),
    ]
    for code in p.ErrorCode:
        frames.append(p.error(p.ProtocolError(code, "why")))
        frames.append(p.error(p.ProtocolError(code, "why", "m1", retry_after=1.23456)))
    for frame in frames:
        spec.validate_server(frame)


def test_hub_session_frame_matches_the_spec(spec):
    from backend.hub import Hub

    hub = Hub(generator=None, config=Config(state_path=""))
    session = hub.open("Rachel")
    spec.validate_server(hub.snapshot(session, resumed=False))


# Each frame: what the parser answers (None = accepted). The spec must refuse exactly the
# frames refused for their shape; a too-long text depends on configuration, so the spec
# describes it but cannot refuse it.
FRAMES = [
    ({"type": "open"}, None), ({"type": "open", "name": "Joey"}, None), ({"type": "open", "name": None}, None),
    ({"type": "open", "name": "   "}, "invalid_field"), ({"type": "open", "name": 5}, "invalid_field"),
    ({"type": "resume", "session_id": "s", "token": "t"}, None),
    ({"type": "resume", "session_id": "s", "token": "t", "last_seq": 3}, None),
    ({"type": "resume", "session_id": "s", "token": "t", "last_seq": None}, None),
    ({"type": "resume", "session_id": "s", "token": "t", "last_seq": -1}, "invalid_field"),
    ({"type": "resume", "session_id": "s", "token": "t", "last_seq": True}, "invalid_field"),
    ({"type": "resume", "session_id": "s"}, "missing_field"),
    ({"type": "message", "id": "m", "text": "hi"}, None), ({"type": "message", "id": "x" * 128, "text": "hi"}, None),
    ({"type": "message", "id": "x" * 129, "text": "hi"}, "invalid_field"),
    ({"type": "message", "id": "", "text": "hi"}, "invalid_field"),
    ({"type": "message", "id": 5, "text": "hi"}, "invalid_field"),
    ({"type": "message", "id": "m", "text": " \n "}, "invalid_field"),
    ({"type": "message", "id": "m"}, "missing_field"), ({"type": "message", "text": "hi"}, "missing_field"),
    ({"type": "message", "id": None, "text": "hi"}, "missing_field"),
    ({"type": "cancel"}, None), ({"type": "reset"}, None),
    ({"type": "ping"}, None), ({"type": "ping", "nonce": "x"}, None), ({"type": "ping", "nonce": 3}, None),
    ({"type": "ping", "nonce": 1.5}, "invalid_field"), ({"type": "ping", "nonce": [1]}, "invalid_field"),
    ({"type": "dance"}, "unknown_type"), ({"type": 3}, "bad_frame"), ([1, 2], "bad_frame"),
]


@pytest.mark.parametrize("frame, code", FRAMES, ids=[json.dumps(f)[:60] for f, _ in FRAMES])
def test_spec_refuses_what_the_parser_refuses(frame, code):
    try:
        p.parse_client_frame(json.dumps(frame), max_message_chars=1000, max_name_chars=32)
        parsed = None
    except p.ProtocolError as exc:
        parsed = exc.code.value
    assert parsed == code
    for strict in (False, True):
        assert bool(load_spec(strict=strict).errors("client", frame)) == (code is not None), (frame, strict)


def test_unknown_fields_are_allowed_by_the_spec():
    lenient = load_spec(strict=False)
    assert lenient.errors("client", {"type": "ping", "future": 1}) == []
    assert lenient.errors("server", {**p.pong(1), "future": 1}) == []
    assert load_spec(strict=True).errors("server", {**p.pong(1), "future": 1})  # the tests are stricter


# --- the human guide covers the same ground ---------------------------------------------------
def test_protocol_md_covers_error_codes_limits_and_close_codes(spec):
    for code in p.ErrorCode:
        assert re.search(rf"^\| `{code.value}` \|", PROTOCOL_MD, re.M), f"error code {code.value} undocumented"
    rows = re.findall(r"^\| `(\w+)` \| `?([^|`]*)`? \| `(JOEY_\w+)` \|", PROTOCOL_MD, re.M)
    assert len(rows) >= 12
    fields = {f.name: f for f in dataclasses.fields(Config)}
    for name, default, env in rows:
        assert name in fields, name
        assert env == f"JOEY_{name.upper()}"
        assert default.strip('"') == str(fields[name].default), (name, default)
    for key in spec.doc["components"]["schemas"]["Limits"]["required"]:
        assert f"`{key}`" in PROTOCOL_MD
    for code in (1000, 1008, 1009, 1012, 1013):
        assert re.search(rf"^\| {code} \|", PROTOCOL_MD, re.M)
    for kind in {*spec.client_messages, *spec.server_messages}:
        assert f"| `{kind}` |" in PROTOCOL_MD
    assert "protocol" in PROTOCOL_MD and "Unknown fields are ignored" in PROTOCOL_MD


def test_protocol_md_examples_are_valid_frames(spec):
    """Every complete JSON frame in the guide's examples matches the spec."""
    checked = 0
    for direction, text in re.findall(r"^([<>]) (\{.*\})$", PROTOCOL_MD, re.M):
        try:
            frame = json.loads(text)
        except ValueError:
            continue  # abbreviated with "...", or the deliberately bad frame
        errors = spec.errors("client" if direction == ">" else "server", frame)
        deliberately_bad = direction == ">" and (frame["type"] == "dance" or frame.keys() == {"type", "id"})
        assert bool(errors) == deliberately_bad, (text, errors)
        checked += 1
    assert checked >= 20


# --- every frame the Python client sends and receives matches the spec -----------------------
async def test_python_client_frames_match_the_spec(make_server):
    server = make_server(min_new_tokens=80, max_new_tokens=80)
    transport = ValidatingTransport(WebSocketTransport(server.url))
    chunks: list[str] = []
    first_chunk = asyncio.Event()

    def on_chunk(text: str) -> None:
        chunks.append(text)
        first_chunk.set()

    joey = JoeyClient(transport, name="Ross")
    await joey.start()
    task = asyncio.create_task(joey.ask("Tell me everything", message_id="m", on_chunk=on_chunk))
    await first_chunk.wait()
    await transport._ws.close()  # the network drops mid-reply: resume, replay, resend
    end = await task
    assert "".join(chunks) == end["text"]
    again = await joey.ask("Tell me everything", message_id="m")  # answered already: the stored end
    assert again.get("duplicate") and again["text"] == end["text"]
    with pytest.raises(ClientError):
        await joey.ask("x" * 5000)
    await joey.reset()
    await joey.close()
    kinds = {f["type"] for f in transport.received}
    assert {"session", "reply_start", "chunk", "reply_end", "reset", "error"} <= kinds
    assert {f["type"] for f in transport.sent} >= {"open", "resume", "message", "reset"}


async def test_local_transport_frames_match_the_spec(server):
    async def talk():
        transport = ValidatingTransport(LocalTransport(server.hub))
        async with JoeyClient(transport, name="Phoebe") as joey:
            await joey.ask("Smelly cat?")
            await joey.reset()
        return transport

    transport = await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(talk(), server.server_loop))
    assert [f["type"] for f in transport.received][:2] == ["session", "reply_start"]


# --- the close codes the documents promise ----------------------------------------------------
async def test_close_codes(make_server):
    server = make_server(max_connections=2, max_frame_bytes=4096)
    async with connect(server.url) as a:
        info = await a.open()
        async with connect(server.url) as b:  # the second connection resumes the session: a is taken over
            async with connect(server.url) as c:  # the third is one too many
                with pytest.raises(ConnectionClosed) as closed:
                    await c.recv()
                assert closed.value.rcvd.code == 1013
            await b.send(type="resume", session_id=info["session_id"], token=info["token"])
            assert (await b.recv())["resumed"]
            assert (await a.recv())["code"] == "session_taken_over"
            with pytest.raises(ConnectionClosed) as closed:
                await a.recv()
            assert closed.value.rcvd.code == 1000
            await b.ws.send(json.dumps({"type": "message", "id": "big", "text": "x" * 5000}))
            with pytest.raises(ConnectionClosed) as closed:
                await b.recv()
            assert closed.value.rcvd.code == 1009
    async with connect(server.url) as d:
        await d.open()
        server.__exit__(None, None, None)
        frames = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                frames.append(await d.recv())
        assert closed.value.rcvd.code == 1012
