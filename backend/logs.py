"""Optional JSON logs (``log_format=json``): one object per line, for log collectors.

Each line has time, level, logger and message, plus ``session`` (an 8-character prefix of the
session id, never the token) when the record carries one, and the traceback if any. Message
texts are never logged anywhere, so JSON lines hold no chat content and no secrets.
"""

from __future__ import annotations

import json
import logging
import re

UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
# A query string can hold a key (``/ws?api_key=…``, the documented way for browsers): uvicorn's
# access lines show whole paths, so every query is cut before any handler sees the record.
_QUERY = re.compile(r"\?[^\s\"']*")
REDACTED = "?[redacted]"


def redact(text: str) -> str:
    return _QUERY.sub(REDACTED, text)


class RedactQueryStrings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str) and not record.args:
            record.msg = redact(record.msg)
        return True


def redact_query_strings() -> None:
    """Install the filter on uvicorn's loggers (once; the app may be created many times)."""
    for logger in map(logging.getLogger, UVICORN_LOGGERS):
        if not any(isinstance(f, RedactQueryStrings) for f in logger.filters):
            logger.addFilter(RedactQueryStrings())


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"), "level": record.levelname,
                "logger": record.name, "message": record.getMessage()}
        if session := getattr(record, "session", None):
            line["session"] = str(session)[:8]
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def use_json_logs() -> None:
    """Switch every handler of the root and uvicorn loggers to JSON lines (one stderr handler if none)."""
    formatter = JsonFormatter()
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    for logger in (root, *map(logging.getLogger, UVICORN_LOGGERS)):
        for handler in logger.handlers:
            handler.setFormatter(formatter)
