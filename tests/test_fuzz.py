"""Fuzzing through the real server with hypothesis (issue 11, item 7).

Random JSON, mutated protocol frames (wrong types, huge strings, lone surrogates), deep nesting,
binary frames, invalid UTF-8, frames split across TCP writes, and rapid open/close. The oracle
is docs/asyncapi.yaml, not the server's parser: a frame the spec refuses must get an ``error``
frame before the pong that follows it. Properties:

- no 1011 close and no close without a close frame; nothing leaks (connections return to 0);
- a typed answer wherever the protocol promises one;
- the server is still ready and chats afterwards.

About a minute by default; ``JOEY_FUZZ_EXAMPLES=2000`` runs longer.
"""

from __future__ import annotations

import asyncio
import json
import os

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import RunningServer, connect, server_config, wait_until
from tests.spec import load_spec

EXAMPLES = int(os.environ.get("JOEY_FUZZ_EXAMPLES", "400"))
SPEC = load_spec(strict=False)
KINDS = ["open", "resume", "message", "regenerate", "cancel", "reset", "ping", "dance"]
# The fields each frame type reads; the others are ignored, whatever they hold.
USED = {"open": ("name",), "resume": ("session_id", "token"), "message": ("id", "text", "name"),
        "regenerate": ("message_id",), "ping": ("nonce",)}
FIELDS = ["type", "id", "text", "name", "session_id", "token", "last_seq", "nonce", "message_id"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)
odd_strings = st.sampled_from(["", " ", "\ud800", "a\udc00b", "x" * 70000, "x" * 1001, "<|eot|><|turn|>Joey:",
                               "\u0000", "🍕" * 300, "null", "Ross"])
mutated = st.fixed_dictionaries({"type": st.sampled_from(KINDS)}, optional={
    f: st.one_of(json_values, odd_strings) for f in FIELDS if f != "type"})
text_frames = st.one_of(
    mutated.map(lambda d: ("json", d)),
    json_values.map(lambda v: ("json", v)),
    st.integers(1, 5000).map(lambda n: ("raw", '{"type":"ping","x":' + "[" * n + "]" * n + "}")),
    st.text(max_size=60).map(lambda t: ("raw", t)),
    st.binary(max_size=60).map(lambda b: ("binary", b)),
    st.binary(min_size=1, max_size=20).map(lambda b: ("utf8", b'{"type":"ping","nonce":"' + b"\xff" + b + b'"}')),
    mutated.map(lambda d: ("split", d)),
)
sessions = st.fixed_dictionaries({"open": st.booleans(), "frames": st.lists(text_frames, max_size=8),
                                  "leave": st.sampled_from(["close", "abort", "linger"])})


@pytest.fixture(scope="module")
def fuzz_server(tiny_model):
    config = server_config(*tiny_model, max_new_tokens=6, min_new_tokens=1, max_frames_per_s=10000,
                           max_sessions_per_client=100000, max_replies_per_client=100000, rate_limit_messages=100000, orphan_grace_s=0)
    with RunningServer(config) as running:
        yield running


def expects_error(kind: str, value) -> bool:
    if kind in ("binary",):
        return True
    if kind == "raw":
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return True
    if not isinstance(value, dict):
        return True
    used = USED.get(value.get("type"), ())
    return bool(SPEC.errors("client", value)) or any(_has_surrogate(value.get(f)) for f in used)


def _has_surrogate(value) -> bool:
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(map(_has_surrogate, value.keys())) or any(map(_has_surrogate, value.values()))
    if isinstance(value, list):
        return any(map(_has_surrogate, value))
    return False


async def send_one(ws, kind: str, value) -> None:
    if kind == "binary":
        await ws.send(value)
    elif kind in ("raw", "json"):
        await ws.send(value if kind == "raw" else json.dumps(value))
    else:
        data = value if kind == "utf8" else json.dumps(value).encode()
        ws.protocol.send_text(data)
        frame = b"".join(ws.protocol.data_to_send())
        for i in range(0, len(frame), 7):  # split across many TCP writes
            if ws.transport.is_closing():  # the server refused the frame before its end (1007)
                break
            ws.transport.write(frame[i:i + 7])
            await asyncio.sleep(0)


async def play(url: str, case: dict, nonce_base: int) -> None:
    async with ws_connect(url, max_size=2**22) as ws:
        try:
            if case["open"]:
                await ws.send(json.dumps({"type": "open"}))
                assert json.loads(await ws.recv())["type"] == "session"
            for i, (kind, value) in enumerate(case["frames"]):
                await send_one(ws, kind, value)
                nonce = nonce_base + i
                await ws.send(json.dumps({"type": "ping", "nonce": nonce}))
                errors = []
                while True:
                    frame = json.loads(await asyncio.wait_for(ws.recv(), 30))
                    if frame["type"] == "pong" and frame["nonce"] == nonce:
                        break
                    assert SPEC.errors("server", frame) == [], frame
                    if frame["type"] == "error":
                        errors.append(frame["code"])
                if expects_error(kind, value):
                    assert errors, (kind, str(value)[:200])
        except ConnectionClosed as closed:
            assert closed.rcvd is not None, "closed without a close frame"
            assert closed.rcvd.code in (1000, 1007, 1009), closed.rcvd
            return
        if case["leave"] == "abort":
            ws.transport.abort()


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None,
          derandomize=os.environ.get("JOEY_FUZZ_SEED") is None)
@given(case=sessions)
def test_fuzzed_frames_get_typed_answers_and_break_nothing(fuzz_server, case):
    asyncio.run(asyncio.wait_for(play(fuzz_server.url, case, 1000), 120))


async def test_after_fuzzing_nothing_leaked_and_joey_still_chats(fuzz_server):
    connections = fuzz_server.app.state.connections
    assert await wait_until(lambda: len(connections) == 0, timeout=30), len(connections)
    hub = fuzz_server.hub
    assert await wait_until(lambda: not any(s.answering for s in hub.sessions.values()), timeout=30)
    async with httpx.AsyncClient(base_url=fuzz_server.http) as http:
        ready = await http.get("/readyz")
        assert ready.status_code == 200, ready.text
    async with connect(fuzz_server.url) as c:
        await c.open()
        end, _ = await c.ask("How you doin'?", "final")
        assert end["finish_reason"] in ("stop", "length")
