"""Keep the bot token out of logs and error messages.

The Bot API puts the token in every URL (``/bot<token>/sendMessage``), and httpx logs each
request URL at INFO; python-telegram-bot's ``InvalidToken`` even quotes it. So:

- httpx and httpcore are set to WARNING;
- a log-record factory replaces the token in every record's message, arguments and traceback
  with ``<token>``, whichever logger or handler the record goes to (a logger- or handler-level
  filter would miss child loggers and handlers added later);
- :func:`scrub` cleans a text (an exception message) before it is printed.
"""

from __future__ import annotations

import logging
import traceback

REDACTED = "<token>"
_secrets: set[str] = set()
_installed = False


def scrub(text: str) -> str:
    for secret in _secrets:
        text = text.replace(secret, REDACTED)
    return text


def protect(token: str) -> None:
    """Redact ``token`` from every log record from now on (idempotent, process-wide)."""
    global _installed
    if token:
        _secrets.add(token)
    for name in ("httpx", "httpcore"):
        if logging.getLogger(name).getEffectiveLevel() < logging.WARNING:
            logging.getLogger(name).setLevel(logging.WARNING)
    if _installed:
        return
    _installed = True
    make = logging.getLogRecordFactory()

    def factory(*args, **kwargs) -> logging.LogRecord:
        record = make(*args, **kwargs)
        if _secrets:
            _clean(record)
        return record

    logging.setLogRecordFactory(factory)


def _clean(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a broken format string: leave it to logging to report
        return
    cleaned = scrub(message)
    if cleaned != message:
        record.msg, record.args = cleaned, ()
    if record.exc_info and record.exc_info[1] is not None:
        text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        if scrub(text) != text:
            record.exc_text = scrub(text)
    if record.stack_info:
        record.stack_info = scrub(record.stack_info)
