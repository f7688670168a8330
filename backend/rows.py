"""What a store keeps of a session: one row, the same in SQLite and in Redis (backend/store.py,
backend/redis_store.py), with the session's token only as a hash."""

from __future__ import annotations

import hashlib


def hash_token(token: str) -> str:
    """A session token as stored. Tokens are 256 random bits, so one fast hash is enough."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


def stored_token(value: str) -> str:
    """A row's token hash; a row written before tokens were hashed holds the token itself."""
    return value if value.startswith("sha256:") else hash_token(value)


def session_row(session) -> dict:
    """What a store keeps of a session (the same fields in SQLite and in Redis)."""
    return {"id": session.id, "token": session.token_hash, "user_name": session.user_name, "seq": session.seq,
            "history": list(session.history), "answered": dict(session.answered)}
