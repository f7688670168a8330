"""Ratings of Joey's replies, kept for the next adapter; ``joey feedback export`` writes them out.

A client rates one of Joey's replies with a ``feedback`` frame (thumbs up, down, or cleared).
The hub marks the reply's turn in the session's history, so every client of the session sees
the rating, and appends one JSON line here: the rating, the reply, and the turns before it
that the model saw (its context). The file is append-only and private (0600); it outlives the
session, which expires. Exporting keeps each reply's last rating and drops cleared ones.

    joey feedback export [--path var/feedback.jsonl] [--out ratings.jsonl]

With several replicas, each keeps its own file: export each, or point them at one shared disk.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from backend.protocol import RATINGS

log = logging.getLogger("joey.hub")
DEFAULT_PATH = "var/feedback.jsonl"


class FeedbackLog:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Opened once, private from its creation on: the lines hold what people said.
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def record(self, session_id: str, history, index: int, rating: str | None) -> None:
        """Append the rating of Joey's turn ``history[index]``, with the turns before it."""
        history = list(history)  # a session's is a bounded deque
        turn = history[index]
        line = {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "session": session_id,
                "message_id": turn["message_id"], "rating": rating, "reply": turn["text"],
                "context": [{k: v for k, v in t.items() if k != "rating"} for t in history[:index]]}
        os.write(self._fd, (json.dumps(line, ensure_ascii=False) + "\n").encode())

    def close(self) -> None:
        os.close(self._fd)


class Ratings:
    """A hub's feedback file: opened at the first rating (most servers never get one), closed at stop."""

    def __init__(self, path: str):
        self.path = path  # "" keeps ratings on the turns only
        self.log: FeedbackLog | None = None

    def keep(self, session_id: str, history, index: int, rating: str | None) -> None:
        if not self.path:
            return
        try:
            self.log = self.log or FeedbackLog(self.path)
            self.log.record(session_id, history, index, rating)
        except OSError:  # the rating stays on the turn; the file is for the next adapter
            log.exception("could not keep the rating of session %s", session_id[:8], extra={"session": session_id})

    def close(self) -> None:
        if self.log is not None:
            self.log.close()
            self.log = None


def export(path: str | Path) -> list[dict]:
    """Each rated reply once, with its last rating; cleared ratings are left out."""
    latest: dict[tuple[str, str], dict] = {}
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                row = json.loads(line)
                latest[(row["session"], row["message_id"])] = row
    return [row for row in latest.values() if row["rating"] in RATINGS]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["export"], help="export: each rated reply once, as JSON lines")
    parser.add_argument("--path", default=os.environ.get("JOEY_FEEDBACK_PATH", DEFAULT_PATH),
                        help="the server's feedback file (env JOEY_FEEDBACK_PATH)")
    parser.add_argument("--out", default="-", help="where to write the JSON lines ('-' = stdout)")


def run(args: argparse.Namespace) -> int:
    if not Path(args.path).is_file():
        print(f"joey feedback: no feedback file at {args.path}", file=sys.stderr)
        return 2
    rows = export(args.path)
    out = sys.stdout if args.out == "-" else open(args.out, "w", encoding="utf-8")
    try:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    print(f"joey feedback: {len(rows)} rated replies", file=sys.stderr)
    return 0
