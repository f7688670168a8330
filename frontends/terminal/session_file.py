"""The session ``joey chat`` keeps between runs, so the next run continues the same conversation."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


class SessionFile:
    """{"sessions": {server_url: {"session_id": ..., "token": ...}}}, written atomically, mode 0600."""

    def __init__(self, path: str):
        self.path = Path(path).expanduser() if path else None

    def _read(self) -> dict:
        if self.path is None:
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) and isinstance(data.get("sessions"), dict) else {}

    def get(self, server: str) -> tuple[str | None, str | None]:
        entry = self._read().get("sessions", {}).get(server)
        if isinstance(entry, dict) and isinstance(entry.get("session_id"), str) and isinstance(entry.get("token"), str):
            return entry["session_id"], entry["token"]
        return None, None

    def put(self, server: str, session_id: str | None, token: str | None) -> None:
        if self.path is None:
            return
        data = self._read() or {"sessions": {}}
        if session_id and token:
            data["sessions"][server] = {"session_id": session_id, "token": token}
        else:
            data["sessions"].pop(server, None)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = self.path.with_name(self.path.name + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=2)
            os.replace(tmp, self.path)
        except OSError as exc:
            print(f"(could not save the session to {self.path}: {exc})", file=sys.stderr)
