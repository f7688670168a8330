"""Logs hold no secrets: a key sent in the query string never reaches uvicorn's log lines."""

from __future__ import annotations

import logging

import pytest
import websockets

from backend.logs import UVICORN_LOGGERS, redact


def test_a_query_string_is_cut_from_a_line():
    assert redact('127.0.0.1:5 - "WebSocket /ws?api_key=s3cret" 403') == '127.0.0.1:5 - "WebSocket /ws?[redacted]" 403'
    assert redact("GET /readyz HTTP/1.1") == "GET /readyz HTTP/1.1"


async def test_keys_in_the_query_string_never_reach_the_log(make_server):
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    keep = Keep(level=logging.DEBUG)
    server = make_server(api_key="right-key-7f3a")  # first: uvicorn sets up its loggers as it starts
    loggers = [logging.getLogger(name) for name in UVICORN_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(keep)
        lg.setLevel(logging.INFO)
    try:
        with pytest.raises(websockets.InvalidStatus):
            async with websockets.connect(server.url + "?api_key=wrong-key-9b1c"):
                pass
        async with websockets.connect(server.url + "?api_key=right-key-7f3a") as ws:
            await ws.send('{"type": "open"}')
            assert '"session"' in await ws.recv()
    finally:
        for lg, level in zip(loggers, levels):
            lg.removeHandler(keep)
            lg.setLevel(level)
    text = "\n".join(lines)
    assert "/ws?[redacted]" in text
    assert "wrong-key-9b1c" not in text and "right-key-7f3a" not in text
