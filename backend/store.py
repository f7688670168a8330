"""Durable sessions: a SQLite file, so a restarted server still knows every conversation.

The hub saves a session when it changes (opened, answered, reset) and loads them all at start.
SQLite ships with Python and needs no server; the writes are a few KB and take about a
millisecond, so they run inline on the event loop.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

from backend.rows import session_row, stored_token

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    token TEXT NOT NULL,     -- "sha256:" + hex digest: a copy of the file cannot resume sessions
    user_name TEXT NOT NULL,
    seq INTEGER NOT NULL,
    history TEXT NOT NULL,   -- JSON list of {role, text, message_id}
    answered TEXT NOT NULL,  -- JSON object: message id -> its reply_end frame
    updated_at REAL NOT NULL -- wall-clock seconds, for idle expiry across restarts
)
"""


def private_sqlite(path: str | Path, **options) -> sqlite3.Connection:
    """A SQLite file only its owner can read (0600): it holds conversations and session secrets.
    SQLite gives its -wal and -shm files the database file's mode."""
    if str(path) == ":memory:":
        return sqlite3.connect(":memory:", **options)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    os.chmod(path, 0o600)  # a file made before this rule, too
    return sqlite3.connect(str(path), **options)


def open_store(config):
    """The configured store: Redis for ``state_url``, else SQLite at ``state_path``, else None."""
    if config.state_url:
        from backend.redis_store import RedisStore

        return RedisStore(config.state_url, config.session_idle_s)
    return SessionStore(config.state_path) if config.state_path else None


class SessionStore:
    shared = False  # one server per file: the hub loads every session at start

    def __init__(self, path: str | Path):
        self.db = private_sqlite(path)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute(SCHEMA)

    def save(self, session) -> None:
        row = session_row(session)
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?)",
                (row["id"], row["token"], row["user_name"], row["seq"], json.dumps(row["history"]),
                 json.dumps(row["answered"]), time.time()),
            )

    def delete(self, session_id: str) -> None:
        with self.db:
            self.db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))

    def load(self, max_idle_s: float) -> list[dict]:
        """Every session used within ``max_idle_s``; older ones are deleted."""
        cutoff = time.time() - max_idle_s
        with self.db:
            self.db.execute("DELETE FROM sessions WHERE updated_at < ?", (cutoff,))
        rows = [_row(r) for r in self.db.execute(
            "SELECT id, token, user_name, seq, history, answered, updated_at FROM sessions")]
        with self.db:  # tokens an older server wrote in plain text are hashed in place
            self.db.executemany("UPDATE sessions SET token = ? WHERE id = ?",
                                [(stored_token(r["token"]), r["id"]) for r in rows if r["token"] != stored_token(r["token"])])
        return rows

    def get(self, session_id: str) -> dict | None:
        r = self.db.execute("SELECT id, token, user_name, seq, history, answered, updated_at FROM sessions "
                            "WHERE id = ?", (session_id,)).fetchone()
        return _row(r) if r else None

    def close(self) -> None:
        self.db.close()


def _row(r) -> dict:
    return {"id": r[0], "token": r[1], "user_name": r[2], "seq": r[3], "history": json.loads(r[4]),
            "answered": json.loads(r[5]), "idle_s": time.time() - r[6]}
