"""Two replicas, one real redis-server (Debian's, installed by `scripts/setup.sh test`): a client
that drops from replica A resumes on replica B with its history, and a resent id is not answered twice."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time

import pytest

from tests.conftest import connect, free_port, wait_until
from tests.web_fixtures import make_paced_server  # noqa: F401  (a fixture)

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None,
                                reason="redis-server is not installed (scripts/setup.sh test installs it)")


@pytest.fixture
def redis_url(tmp_path):
    import redis

    port = free_port()
    process = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--dir", str(tmp_path)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(redis.ConnectionError):
                if redis.Redis.from_url(url).ping():
                    break
            assert process.poll() is None and time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(10)


async def test_a_session_moves_between_replicas_with_its_history(make_server, redis_url):
    a, b = make_server(state_url=redis_url), make_server(state_url=redis_url)
    async with connect(a.url) as c:
        info = await c.open(name="Rachel")
        first, _ = await c.ask("Where is Ross?", "m1")
    async with connect(b.url) as c:  # the client comes back through the proxy, to the other replica
        await c.send(type="resume", session_id=info["session_id"], token=info["token"], last_seq=first["seq"])
        back = await c.recv()
        assert back["resumed"] and [h["text"] for h in back["history"]] == ["Where is Ross?", first["text"]]
        await c.send(type="message", id="m1", text="Where is Ross?")  # answered on A: not answered again on B
        again = await c.recv()
        assert again["duplicate"] and again["text"] == first["text"] and again["seq"] == first["seq"]
        second, _ = await c.ask("And Chandler?", "m2")
        assert second["seq"] > first["seq"]
    async with connect(a.url) as c:  # back on A, which still holds its old copy: it sees B's turn
        await c.send(type="resume", session_id=info["session_id"], token=info["token"], last_seq=second["seq"])
        back = await c.recv()
        assert [h["message_id"] for h in back["history"]] == ["m1", "m1", "m2", "m2"]
        assert back["last_seq"] == second["seq"]
    async with connect(b.url) as c:
        await c.send(type="resume", session_id=info["session_id"], token="wrong")
        assert (await c.recv())["code"] == "resume_refused"


async def test_sessions_expire_in_redis_and_unused_ones_are_never_written(make_server, redis_url):
    import redis

    server = make_server(state_url=redis_url, session_idle_s=3600)
    async with connect(server.url) as c:
        await c.open()
    async with connect(server.url) as c:
        used = await c.open()
        await c.ask("hi", "1")
    db = redis.Redis.from_url(redis_url)
    assert db.keys("joey:session:*") == [f"joey:session:{used['session_id']}".encode()]
    assert 3500_000 < db.pttl(f"joey:session:{used['session_id']}") <= 3600_000


async def test_a_reply_in_flight_on_a_is_relayed_live_to_b_and_cancel_on_b_stops_it(make_paced_server, redis_url):
    a = make_paced_server(0.05, state_url=redis_url, min_new_tokens=150, max_new_tokens=150, orphan_grace_s=60)
    b = make_paced_server(0.05, state_url=redis_url, min_new_tokens=150, max_new_tokens=150)
    async with connect(a.url) as on_a:
        info = await on_a.open()
        await on_a.send(type="message", id="story", text="Tell me a long story")
        first, before = await on_a.until("chunk")
        seen = [*before, first]
        async with connect(b.url) as on_b:  # the phone switched networks; the proxy picked B
            await on_b.send(type="resume", session_id=info["session_id"], token=info["token"],
                            last_seq=first["seq"])
            back = await on_b.recv()
            assert back["resumed"] and back["in_flight"]["message_id"] == "story"
            taken, _ = await on_a.until("error")
            assert taken["code"] == "session_taken_over"
            chunks = [await on_b.recv() for _ in range(3)]
            assert [c["type"] for c in chunks] == ["chunk"] * 3
            assert [c["seq"] for c in chunks] == list(range(first["seq"] + 1, first["seq"] + 4))  # exact replay
            await on_b.send(type="cancel")
            end, rest = await on_b.until("reply_end")
    text = "".join(f["text"] for f in [first, *chunks, *rest] if f["type"] == "chunk")
    assert end["finish_reason"] == "cancelled" and end["text"] == text and end["tokens"] < 150
    assert seen[0]["type"] == "reply_start"
    assert await wait_until(lambda: not a.hub.sessions[info["session_id"]].answering)  # stopped on A


async def test_the_rate_limit_holds_across_replicas(make_server, redis_url):
    a, b = (make_server(state_url=redis_url, rate_limit_messages=2, rate_limit_window_s=3600) for _ in range(2))
    async with connect(a.url) as c:
        info = await c.open()
        await c.ask("one", "1")
    async with connect(b.url) as c:
        await c.send(type="resume", session_id=info["session_id"], token=info["token"])
        await c.recv()
        await c.ask("two", "2")
    async with connect(a.url) as c:
        await c.send(type="resume", session_id=info["session_id"], token=info["token"])
        await c.recv()
        await c.send(type="message", id="3", text="three")
        refused = await c.recv()
        assert refused["code"] == "rate_limited" and refused["retry_after"] > 3000
