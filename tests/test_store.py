"""The session store's secrets: tokens kept only as hashes, and a file only its owner can read."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sqlite3
import stat

import httpx
import pytest

from backend.config import Config
from backend.hub import Hub
from backend.protocol import ErrorCode, ProtocolError
from backend.rows import hash_token
from backend.store import SessionStore
from frontends.telegram.chat_store import ChatStore
from tests.test_hub import ScriptedGenerator, attached, drain_until


async def answered_session(path):
    hub = Hub(ScriptedGenerator(), Config(state_path=str(path)), SessionStore(path))
    hub.start()
    session, out = attached(hub)
    hub.send(session, "1", "hello")
    await drain_until(out, "reply_end")
    await hub.stop()
    hub.store.close()
    return session


def tokens_in(path) -> list[str]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return [row[0] for row in db.execute("SELECT token FROM sessions")]


async def test_the_file_holds_a_hash_so_a_copy_cannot_resume_but_the_owner_can(tmp_path):
    session = await answered_session(tmp_path / "s.db")
    assert tokens_in(tmp_path / "s.db") == [hash_token(session.token)]
    assert session.token not in (tmp_path / "s.db").read_bytes().decode(errors="replace")
    shutil.copy(tmp_path / "s.db", tmp_path / "copy.db")
    again = Hub(ScriptedGenerator(), Config(state_path=""), SessionStore(tmp_path / "copy.db"))
    again.start()
    try:
        with pytest.raises(ProtocolError) as refused:
            again.resume(session.id, tokens_in(tmp_path / "copy.db")[0])  # what a thief reads
        assert refused.value.code is ErrorCode.RESUME_REFUSED
        resumed = again.resume(session.id, session.token)
        out = asyncio.Queue()
        again.attach(resumed, out, last_seq=0)
        assert out.get_nowait()["token"] == session.token  # the session frame gives it back
    finally:
        await again.stop()
        again.store.close()


async def test_a_row_from_before_hashing_is_hashed_at_load_and_still_resumes(tmp_path):
    session = await answered_session(tmp_path / "s.db")
    with contextlib.closing(sqlite3.connect(tmp_path / "s.db")) as db, db:
        db.execute("UPDATE sessions SET token = ?", (session.token,))  # as an older server wrote it
    hub = Hub(ScriptedGenerator(), Config(state_path=""), SessionStore(tmp_path / "s.db"))
    hub.start()
    assert tokens_in(tmp_path / "s.db") == [hash_token(session.token)]  # hashed in place at load
    try:
        assert hub.resume(session.id, session.token).history[0]["text"] == "hello"
    finally:
        await hub.stop()
        hub.store.close()


@pytest.mark.parametrize("make", [SessionStore, ChatStore])
def test_state_files_are_private_even_when_they_existed(tmp_path, make):
    old = tmp_path / "old.db"
    old.touch(mode=0o644)
    os.chmod(old, 0o644)
    for path in (tmp_path / "new" / "state.db", old):
        store = make(path)
        store.db.execute("CREATE TABLE IF NOT EXISTS probe (x)")
        store.db.execute("INSERT INTO probe VALUES (1)")  # a write: the -wal file appears
        files = [p for p in path.parent.iterdir() if p.name.startswith(path.name)]
        assert len(files) >= 2 and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files), files
        store.close()


async def test_readyz_needs_the_key_when_the_server_has_one(make_server):
    server = make_server(api_key="s3cret-key")
    async with httpx.AsyncClient(base_url=server.http) as http:
        assert (await http.get("/readyz")).status_code == 401
        assert (await http.get("/readyz?api_key=wrong")).status_code == 401
        key = {"Authorization": "Bearer s3cret-key"}
        for _ in range(600):  # the engine warms up first
            if (ready := await http.get("/readyz", headers=key)).status_code == 200:
                break
            await asyncio.sleep(0.1)
        assert ready.status_code == 200 and ready.json()["ready"]
        assert (await http.get("/healthz")).status_code == 200  # liveness says nothing: no key needed
