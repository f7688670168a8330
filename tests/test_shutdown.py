"""SIGTERM, for real: a `joey serve` process, live clients mid-reply, and a real signal.

A planned restart drains: replies that finish within ``shutdown_grace_s`` reach their clients
whole; later ones are interrupted, never kept as answers, and answered in full, once, when the
client resends after the restart (issue 28, item 1).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sqlite3
import sys
import time

from websockets.exceptions import ConnectionClosed

from bench.process import ChildServer, free_port
from client import JoeyClient, WebSocketTransport
from client.transport import ConnectionLost
from tests.conftest import connect
from tests.test_redis import redis_url  # noqa: F401  (a fixture)

TOKENS = 150


def serve_process(tiny_model, tmp_path, port: int, grace_s: float, max_batch: int, state: list[str] = ()) -> ChildServer:
    base, lora = tiny_model
    return ChildServer(
        [sys.executable, "-m", "backend.cli", "serve", "--base-model", str(base), "--adapter", str(lora),
         "--port", str(port), *(state or ["--state-path", str(tmp_path / "sessions.db")]), "--max-batch", str(max_batch),
         "--shutdown-grace-s", str(grace_s), "--max-replies-per-client", "100", "--max-queue-wait-s", "300", "--temperature", "0", "--min-new-tokens", str(TOKENS),
         "--max-new-tokens", str(TOKENS)], port, start_timeout=120, stop_signal=signal.SIGKILL)


def saved_sessions(tmp_path) -> list[dict]:
    with contextlib.closing(sqlite3.connect(tmp_path / "sessions.db")) as db:
        return [{"history": json.loads(h), "answered": json.loads(a)}
                for h, a in db.execute("SELECT history, answered FROM sessions")]


async def chat_until_closed(url: str, accepted: asyncio.Event, streaming: asyncio.Event) -> tuple[list[dict], int]:
    frames: list[dict] = []
    async with connect(url) as c:
        frames.append(await c.open(name="Ross"))
        await c.send(type="message", id="m", text="Tell me about the sandwich")
        with contextlib.suppress(ConnectionClosed):
            while True:
                frame = json.loads(await asyncio.wait_for(c.ws.recv(), 60))
                frames.append(frame)
                if frame["type"] == "reply_start":
                    accepted.set()
                if frame["type"] == "chunk":
                    streaming.set()
        return frames, c.ws.close_code


async def test_sigterm_lets_replies_finish_then_tells_every_client_and_exits(tiny_model, tmp_path):
    clients = 12
    with serve_process(tiny_model, tmp_path, free_port(), grace_s=20, max_batch=4) as server:
        process = server.proc
        accepted, streaming = [asyncio.Event() for _ in range(clients)], asyncio.Event()
        tasks = [asyncio.create_task(chat_until_closed(server.url, accepted[i], streaming)) for i in range(clients)]
        await asyncio.wait_for(asyncio.gather(streaming.wait(), *(a.wait() for a in accepted)), 60)
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        results = await asyncio.wait_for(asyncio.gather(*tasks), 60)
        exit_code = await asyncio.to_thread(process.wait, 30)
        exit_s = time.monotonic() - signalled
        log = server.output()
    for frames, close_code in results:
        kinds = [f["type"] for f in frames]
        assert close_code == 1012, (close_code, kinds[-3:])
        assert frames[-1]["type"] == "error" and frames[-1]["code"] == "server_restarting", frames[-3:]
        ends = [f for f in frames if f["type"] == "reply_end"]
        assert len(ends) == 1 and ends[0]["finish_reason"] == "length" and ends[0]["tokens"] == TOKENS, ends
    assert exit_code in (0, -signal.SIGTERM), log
    assert exit_s < 2 * 20 + 10, exit_s  # the watchdog's bound; a drain of whole replies is far quicker
    saved = saved_sessions(tmp_path)
    assert len(saved) == clients and all(s["answered"]["m"]["finish_reason"] == "length" for s in saved)
    assert "Traceback" not in log, log


async def test_a_reply_the_grace_cuts_off_is_redone_whole_once_after_the_restart(tiny_model, tmp_path):
    clients, port = 6, free_port()
    first = serve_process(tiny_model, tmp_path, port, grace_s=0.5, max_batch=1).__enter__()
    chunks: list[list[str]] = [[] for _ in range(clients)]

    async def ask(i: int) -> dict:
        async with JoeyClient(WebSocketTransport(first.url), name=f"Guest{i}", max_backoff_s=1.0) as client:
            return await client.ask(f"Tell me a long story, number {i}", f"m{i}", chunks[i].append)

    try:
        asks = [asyncio.create_task(ask(i)) for i in range(clients)]
        for _ in range(600):  # until a reply streams: with one batch slot, the others wait in line
            if any(chunks):
                break
            await asyncio.sleep(0.05)
        first.proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(first.proc.wait, 60) in (0, -signal.SIGTERM)
        log = first.output()
    finally:
        first.__exit__()
    assert "interrupted by the restart" in log and "Traceback" not in log, log
    assert not [s for s in saved_sessions(tmp_path) if any(a["finish_reason"] == "cancelled"
                                                           for a in s["answered"].values())]
    with serve_process(tiny_model, tmp_path, port, grace_s=20, max_batch=4) as second:
        ends = await asyncio.wait_for(asyncio.gather(*asks), 120)  # the clients reconnect and resend
        assert "Traceback" not in second.output()
    for i, end in enumerate(ends):
        assert end["finish_reason"] == "length" and end["tokens"] == TOKENS, end
        assert "".join(chunks[i]) == end["text"]  # what the client showed is the answer, nothing twice
    saved = saved_sessions(tmp_path)
    assert len(saved) == clients
    for session in saved:  # each message once, each answered once, in full
        assert [t["role"] for t in session["history"]] == ["user", "joey"], session["history"]
        assert [a["finish_reason"] for a in session["answered"].values()] == ["length"]


class Balanced(WebSocketTransport):
    """What a load balancer gives a client: the first replica that takes the connection."""

    def __init__(self, urls: list[str]):
        super().__init__(urls[0])
        self.urls = urls

    async def connect(self) -> None:
        for url in self.urls:
            self.url = url
            with contextlib.suppress(ConnectionLost):
                return await super().connect()
        raise ConnectionLost("no replica takes the connection")


async def _streaming(chunks: list[list[str]], message: int) -> None:
    for _ in range(1200):  # until a reply streams: with one batch slot per replica, the others wait
        if any(len(c) > message and c[message] for c in chunks):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("no reply streamed")


async def test_a_rolling_restart_of_two_replicas_behind_redis_loses_and_doubles_no_reply(tiny_model, tmp_path, redis_url):
    clients, ports, state = 3, [free_port(), free_port()], ["--state-url", redis_url]
    start = lambda port: serve_process(tiny_model, tmp_path, port, 0.5, 1, state).__enter__()  # noqa: E731
    replicas = [start(port) for port in ports]
    urls = [r.url for r in replicas]
    chunks: list[list[str]] = [[] for _ in range(clients)]  # per client, per message: what it showed
    answered_first, second = [asyncio.Event() for _ in range(clients)], asyncio.Event()

    async def talk(i: int) -> tuple[list[dict], str, str]:
        async with JoeyClient(Balanced(urls), name=f"Guest{i}", max_backoff_s=0.5) as client:
            ends = []
            for m in range(2):
                if m:
                    await second.wait()
                chunks[i].append("")
                shown = lambda text, m=m: chunks[i].__setitem__(m, chunks[i][m] + text)  # noqa: E731
                ends.append(await client.ask(f"Tell me a long story, number {i}.{m}", f"m{i}-{m}", shown))
                answered_first[i].set()
            return ends, client.session_id, client.token

    talks = [asyncio.create_task(talk(i)) for i in range(clients)]
    try:
        for stage in range(2):  # replica 0 restarts while the first messages stream, then replica 1
            await _streaming(chunks, stage)
            replicas[stage].proc.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(replicas[stage].proc.wait, 60) in (0, -signal.SIGTERM)
            assert "Traceback" not in replicas[stage].output()
            replicas[stage].__exit__()
            replicas[stage] = start(ports[stage])  # back on its port, as a rolling deploy does
            if stage == 0:
                await asyncio.wait_for(asyncio.gather(*(e.wait() for e in answered_first)), 120)
                second.set()
        results = await asyncio.wait_for(asyncio.gather(*talks), 180)
        for i, (ends, session_id, token) in enumerate(results):
            for m, end in enumerate(ends):
                assert end["finish_reason"] == "length" and end["tokens"] == TOKENS, end
                assert chunks[i][m] == end["text"]  # what the client showed is the answer, nothing twice
            async with connect(replicas[0].url) as c:  # what Redis kept: each message once, answered once
                await c.send(type="resume", session_id=session_id, token=token)
                kept = await c.recv()
            assert [t["role"] for t in kept["history"]] == ["user", "joey"] * 2, kept["history"]
            assert [t["text"] for t in kept["history"][1::2]] == [e["text"] for e in ends]
    finally:
        for task in talks:
            task.cancel()
        for r in replicas:
            r.__exit__()

