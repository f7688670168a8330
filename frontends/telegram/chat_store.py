"""What the Telegram adapter must remember across restarts, in one SQLite file.

- ``chats``: each Telegram chat's Joey session (id and token), so a restart resumes it.
- ``inbox``: updates taken but not yet answered. An update from getUpdates is written here, in
  the same transaction that advances the stored offset, *before* the next getUpdates confirms it
  to Telegram (one posted to the webhook, before Telegram gets its 200); it leaves only once its
  reply is sent. A crash in between replays it at start.
- ``delivered``: how many parts of the reply to each Telegram message were sent, so a replayed
  update never sends a part twice (the Joey hub repeats its stored answer for the same message
  id, and the parts already out are skipped).
- ``migrated``: groups that became supergroups (old chat id -> new one), so a reply to a
  message of the old group, and the group's Joey session, follow it to the new id.
- ``meta``: the getUpdates offset (polling mode), and the bot it belongs to.

Update ids restarting lower than the stored offset (Telegram after a week without updates,
or the file reused with another bot's token) would make the offset skip every new update:
the Bot API serves an offset "in the future" from its queue's head, and updates below the
offset would be taken for old ones. :meth:`ChatStore.accept` takes them as new and starts the
offset again from them. A file used by another bot before is started afresh
(:meth:`ChatStore.bind_bot`): its offset, message ids and sessions were that bot's.

Writes are a few hundred bytes and take about a millisecond, so they run inline on the loop.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from pathlib import Path

from backend.store import private_sqlite
from frontends.telegram.config import TelegramConfigError

log = logging.getLogger("joey.telegram")

SCHEMA = """
CREATE TABLE IF NOT EXISTS chats (
    chat_id INTEGER PRIMARY KEY,
    session_id TEXT NOT NULL,
    token TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS inbox (
    update_id INTEGER PRIMARY KEY,
    payload TEXT NOT NULL,          -- the update as Bot API JSON
    received_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS delivered (
    chat_id INTEGER NOT NULL,
    message_id INTEGER NOT NULL,
    parts INTEGER NOT NULL,         -- reply parts sent so far
    done INTEGER NOT NULL,          -- 1 once every part is out
    at REAL NOT NULL,
    PRIMARY KEY (chat_id, message_id)
);
CREATE TABLE IF NOT EXISTS migrated (
    old_chat_id INTEGER PRIMARY KEY,
    new_chat_id INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def open_chat_store(path: str | Path) -> "ChatStore":
    """The store at ``path``; a path that cannot be written is a :class:`TelegramConfigError`."""
    try:
        return ChatStore(path)
    except (OSError, sqlite3.Error) as exc:
        raise TelegramConfigError(f"cannot use the state file {path} ({exc}); set JOEY_TELEGRAM_STATE "
                                  "(--state) to a file in a writable folder") from None


class ChatStore:
    def __init__(self, path: str | Path):
        self.db = private_sqlite(path, isolation_level=None)  # explicit transactions below
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
        except sqlite3.Error:
            self.db.close()
            raise

    def close(self) -> None:
        self.db.close()

    # --- chat -> session -------------------------------------------------------------------
    def session_for(self, chat_id: int) -> tuple[str, str] | None:
        row = self.db.execute("SELECT session_id, token FROM chats WHERE chat_id = ?", (chat_id,)).fetchone()
        return (row[0], row[1]) if row else None

    def save_session(self, chat_id: int, session_id: str, token: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO chats VALUES (?, ?, ?, ?)", (chat_id, session_id, token, time.time()))

    # --- groups that became supergroups -----------------------------------------------------
    def current_chat(self, chat_id: int) -> int:
        """Where the chat lives now: its supergroup's id after a migration, else itself."""
        row = self.db.execute("SELECT new_chat_id FROM migrated WHERE old_chat_id = ?", (chat_id,)).fetchone()
        return row[0] if row else chat_id

    def former_ids(self, chat_id: int) -> list[int]:
        """The ids of the groups that became this supergroup."""
        return [r[0] for r in self.db.execute("SELECT old_chat_id FROM migrated WHERE new_chat_id = ?", (chat_id,))]

    def migrate(self, old_chat_id: int, new_chat_id: int) -> None:
        """Record the move and hand the old chat's session to the new id (idempotent)."""
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute("INSERT OR REPLACE INTO migrated VALUES (?, ?)", (old_chat_id, new_chat_id))
            self.db.execute("UPDATE OR IGNORE chats SET chat_id = ? WHERE chat_id = ?", (new_chat_id, old_chat_id))

    # --- updates ---------------------------------------------------------------------------
    def offset(self) -> int | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = 'offset'").fetchone()
        return int(row[0]) if row else None

    def bind_bot(self, bot_id: int) -> None:
        """Remember whose state this is; another bot's is forgotten (its ids would collide with ours)."""
        row = self.db.execute("SELECT value FROM meta WHERE key = 'bot_id'").fetchone()
        with self.db:
            self.db.execute("BEGIN")
            if row is not None and int(row[0]) != bot_id:
                log.warning("state file was used by bot %s, now by bot %s: starting afresh (that bot's offset, "
                            "unanswered updates, chat sessions and delivery records are forgotten)", row[0], bot_id)
                for table in ("inbox", "delivered", "chats", "migrated"):
                    self.db.execute(f"DELETE FROM {table}")
                self.db.execute("DELETE FROM meta WHERE key = 'offset'")
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('bot_id', ?)", (str(bot_id),))

    def accept(self, updates: list[dict]) -> list[dict]:
        """Store new updates and advance the offset past them, atomically. Returns the new ones.

        getUpdates returns ids below the offset only when Telegram's ids restarted: then they are
        all new, and the offset follows them down.
        """
        if not updates:
            return []
        known = self.offset() or 0
        new_offset = max(u["update_id"] for u in updates) + 1
        if min(u["update_id"] for u in updates) < known:
            log.warning("Telegram's update ids restarted (got %d, expected %d or later); taking them as "
                        "new, offset now %d", min(u["update_id"] for u in updates), known, new_offset)
            known = 0
        now = time.time()
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT OR IGNORE INTO inbox VALUES (?, ?, ?)",
                                [(u["update_id"], json.dumps(u), now) for u in updates])
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('offset', ?)", (str(max(new_offset, known)),))
        return updates

    def keep(self, update: dict) -> bool:
        """Store one update posted to the webhook; False when it is in the inbox already."""
        return self.db.execute("INSERT OR IGNORE INTO inbox VALUES (?, ?, ?)",
                               (update["update_id"], json.dumps(update), time.time())).rowcount == 1

    def pending(self) -> list[dict]:
        """Updates accepted but not finished, oldest first (replayed at start)."""
        rows = self.db.execute("SELECT payload FROM inbox ORDER BY update_id")
        return [json.loads(r[0]) for r in rows]

    def inbox_size(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM inbox").fetchone()[0]

    def finish(self, update_id: int) -> None:
        self.db.execute("DELETE FROM inbox WHERE update_id = ?", (update_id,))

    # --- replies ---------------------------------------------------------------------------
    def parts_sent(self, chat_id: int, message_id: int) -> tuple[int, bool]:
        row = self.db.execute("SELECT parts, done FROM delivered WHERE chat_id = ? AND message_id = ?",
                              (chat_id, message_id)).fetchone()
        return (row[0], bool(row[1])) if row else (0, False)

    def part_sent(self, chat_id: int, message_id: int, parts: int, done: bool) -> None:
        self.db.execute("INSERT OR REPLACE INTO delivered VALUES (?, ?, ?, ?, ?)",
                        (chat_id, message_id, parts, int(done), time.time()))

    def prune(self, max_age_s: float = 7 * 86400) -> None:
        """Forget delivery records older than any update Telegram could still resend."""
        self.db.execute("DELETE FROM delivered WHERE at < ?", (time.time() - max_age_s,))
