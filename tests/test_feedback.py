"""backend/feedback.py and Hub.rate: thumbs on Joey's replies, kept on the turn and in the file, exported."""

from __future__ import annotations

import json
import stat

from backend.cli import main as joey
from tests.conftest import connect


async def test_a_rating_is_kept_on_the_turn_and_in_the_file_and_exported_once(make_server, tmp_path, capsys):
    path = tmp_path / "feedback.jsonl"
    server = make_server(feedback_path=str(path), max_new_tokens=8)
    async with connect(server.url) as c:
        opened = await c.open(name="Ross")
        first, _ = await c.ask("Do you want some pizza?", "m1")
        await c.ask("And a sandwich?", "m2")
        for message_id, rating in (("m1", "up"), ("m1", "up"), ("m2", "down"), ("m2", None)):
            await c.send(type="feedback", message_id=message_id, rating=rating)
            assert await c.recv() == {"type": "feedback", "message_id": message_id, "rating": rating}
    async with connect(server.url) as c:  # another client of the session sees the rating
        await c.send(type="resume", session_id=opened["session_id"], token=opened["token"])
        history = (await c.recv())["history"]
    assert [t.get("rating") for t in history] == [None, "up", None, None]
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["message_id"], r["rating"]) for r in lines] == [("m1", "up"), ("m2", "down"), ("m2", None)]  # no repeat
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    out = tmp_path / "ratings.jsonl"
    assert joey(["feedback", "export", "--path", str(path), "--out", str(out)]) == 0
    [row] = [json.loads(line) for line in out.read_text().splitlines()]  # m2's rating was cleared
    assert row["reply"] == first["text"] and row["rating"] == "up"
    assert row["context"] == [{"role": "user", "text": "Do you want some pizza?", "message_id": "m1"}]
    assert joey(["feedback", "export", "--path", str(tmp_path / "none.jsonl")]) == 2
    assert "no feedback file" in capsys.readouterr().err


async def test_a_bad_rating_is_a_typed_error_and_the_session_carries_on(make_server, tmp_path):
    server = make_server(feedback_path=str(tmp_path / "feedback.jsonl"), max_new_tokens=8)
    async with connect(server.url) as c:
        await c.open()
        await c.send(type="feedback", message_id="m1", rating="up")  # nothing said yet
        refused = await c.recv()
        assert refused["code"] == "invalid_field" and refused["message_id"] == "m1"
        await c.ask("Hi Joey", "m1")
        await c.ws.send(json.dumps({"type": "feedback", "message_id": "m1", "rating": "meh"}))
        assert (await c.recv())["code"] == "invalid_field"
        await c.ws.send(json.dumps({"type": "feedback", "rating": "up"}))
        assert (await c.recv())["code"] == "missing_field"
        end, _ = await c.ask("Still there?", "m2")
        assert end["text"]
    assert not (tmp_path / "feedback.jsonl").exists()  # nothing was rated
