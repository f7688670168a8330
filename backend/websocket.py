"""The /ws route: Starlette glue around an :class:`Endpoint`.

All outgoing frames go through the endpoint's one queue and one sender task, so frames never
interleave and a client that stops reading is cut off after ``send_timeout_s`` instead of
holding memory or blocking anyone else.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from starlette.websockets import WebSocket, WebSocketDisconnect

from backend import protocol as p
from backend.config import Config
from backend.endpoint import Endpoint
from backend.hub import Hub

log = logging.getLogger("joey.ws")

CLOSE_NORMAL = 1000
CLOSE_POLICY = 1008  # wrong Origin or API key, or a client that stopped reading
CLOSE_SERVICE_RESTART = 1012
CLOSE_TRY_AGAIN_LATER = 1013  # too many connections
# Error frames after which the server closes the connection, and with which code.
CLOSING_ERRORS = {p.ErrorCode.SESSION_TAKEN_OVER.value: CLOSE_NORMAL,
                  p.ErrorCode.SERVER_RESTARTING.value: CLOSE_SERVICE_RESTART}


class FramePacer:
    """A token bucket over inbound frames. Past the budget it sleeps instead of reading, so a
    flooding client is slowed by TCP backpressure while every frame still gets its answer."""

    def __init__(self, per_second: float):
        self.rate, self.allowance, self.last = per_second, per_second, time.monotonic()

    async def wait(self) -> None:
        now = time.monotonic()
        self.allowance = min(self.rate, self.allowance + (now - self.last) * self.rate)
        self.last = now
        if self.allowance < 1:
            await asyncio.sleep((1 - self.allowance) / self.rate)
            self.last = time.monotonic()
            self.allowance = 1
        self.allowance -= 1


async def serve_connection(websocket: WebSocket, hub: Hub, config: Config, trusted: bool = False) -> None:
    """Read frames until the client goes or the server closes; always ends, always detaches."""
    # Sessions are bounded per address, except for a trusted bridge, or where every client proved
    # it holds the API key (a bridge such as `joey telegram --server` speaks for many people).
    address = websocket.client.host if websocket.client and not (config.api_key or trusted) else None
    endpoint = Endpoint(hub, address)
    pacer = FramePacer(config.max_frames_per_s)
    sender = asyncio.create_task(_send_forever(websocket, endpoint.outbox, config.send_timeout_s, hub))
    receiving: asyncio.Future | None = None
    try:
        while True:
            await pacer.wait()
            receiving = asyncio.ensure_future(websocket.receive())
            # The sender ends when the server closes the connection (takeover, slow reader, restart);
            # then there is nothing left to read for.
            await asyncio.wait({receiving, sender}, return_when=asyncio.FIRST_COMPLETED)
            if not receiving.done():
                break
            message = receiving.result()
            if message["type"] == "websocket.disconnect":
                break
            text = message.get("text")
            await endpoint.receive(text if text is not None else message.get("bytes") or b"")
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass  # the peer went away mid-read
    finally:
        if receiving is not None and not receiving.done():
            receiving.cancel()
        endpoint.close()
        # A sentinel, not only cancel(): on Python 3.11 a cancel that lands just as a send finishes
        # can be swallowed, and a sender waiting on an empty queue would then wait forever.
        endpoint.outbox.put_nowait(STOP)
        sender.cancel()
        await asyncio.wait({sender}, timeout=config.send_timeout_s)


STOP = {"type": "_stop"}  # never sent: tells the sender to end


async def _send_forever(websocket: WebSocket, outbox: asyncio.Queue, timeout: float, hub: Hub) -> None:
    while True:
        frame = await outbox.get()
        if frame is STOP:
            return
        try:
            async with asyncio.timeout(timeout):
                await websocket.send_text(json.dumps(frame))
        except TimeoutError:
            log.warning("closing a connection that stopped reading")
            await _close(websocket, CLOSE_POLICY, "client too slow", hub)
            return
        except (WebSocketDisconnect, RuntimeError, OSError):
            return
        if frame["type"] == "error" and frame["code"] in CLOSING_ERRORS:
            await _close(websocket, CLOSING_ERRORS[frame["code"]], frame["message"], hub)
            return


async def _close(websocket: WebSocket, code: int, reason: str, hub: Hub) -> None:
    hub.metrics.closes.labels(str(code)).inc()
    try:
        async with asyncio.timeout(1.0):
            await websocket.close(code, reason)
    except (TimeoutError, RuntimeError, OSError):
        pass
