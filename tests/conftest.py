"""Shared fixtures: a tiny model on disk and a real uvicorn server on a free loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from pathlib import Path

import pytest

from backend.config import Config
from backend.ws_protocol import uvicorn_options
from bench.process import free_port
from tests.server_thread import ServerThread
from tests.tiny_model import build_tiny_model

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_BASE, SHIPPED_ADAPTER = ROOT / "weights" / "mini" / "base", ROOT / "weights" / "mini" / "joey-lora"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> tuple[Path, Path]:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


class RunningServer(ServerThread):
    """The real app under uvicorn in a background thread, exactly as ``joey serve`` runs it."""

    def __init__(self, config: Config):
        from backend.app import create_app

        self.config = config
        self.app = create_app(config)
        super().__init__(self.app, config.port, uvicorn_options(config))

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.config.port}/ws"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.config.port}"

    @property
    def hub(self):
        return self.app.state.hub

    @property
    def server_loop(self) -> asyncio.AbstractEventLoop:
        return self.hub.loop


def server_config(base: Path, adapter: Path | None, **overrides) -> Config:
    config = Config(base_model=str(base), adapter=str(adapter) if adapter else "none", port=free_port(),
                    web_root=str(ROOT / "frontends" / "web"), max_batch=8, temperature=0.0, state_path="",
                    shutdown_grace_s=2.0)  # a test's server stops in seconds, whatever it is still answering
    return dataclasses.replace(config, **overrides)


@pytest.fixture
def make_server(tiny_model):
    """Start servers on the tiny model with Config overrides; all are stopped after the test."""
    with contextlib.ExitStack() as stack:
        yield lambda **overrides: stack.enter_context(RunningServer(server_config(*tiny_model, **overrides)))


@pytest.fixture(scope="module")
def server(tiny_model):
    with RunningServer(server_config(*tiny_model)) as running:
        yield running


class Client:
    """A raw protocol-v1 test client over the `websockets` library.

    Every frame it sends and receives must match docs/asyncapi.yaml (strictly: no undocumented
    fields), so the server cannot drift from the spec. Deliberately bad frames go through
    ``client.ws.send(raw)``, which is not checked.
    """

    def __init__(self, ws):
        from tests.spec import load_spec

        self.ws = ws
        self.spec = load_spec(strict=True)

    async def send(self, **frame) -> None:
        self.spec.validate_client(frame)
        await self.ws.send(json.dumps(frame))

    async def recv(self, timeout: float = 20) -> dict:
        frame = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        self.spec.validate_server(frame)
        return frame

    async def until(self, kind: str, timeout: float = 30) -> tuple[dict, list[dict]]:
        """Read frames until one of ``kind``; returns it and every frame before it."""
        seen = []
        while True:
            frame = await self.recv(timeout)
            if frame["type"] == kind:
                return frame, seen
            seen.append(frame)

    async def open(self, **fields) -> dict:
        await self.send(type="open", **fields)
        return await self.recv()

    async def ask(self, text: str, message_id: str) -> tuple[dict, list[dict]]:
        await self.send(type="message", id=message_id, text=text)
        return await self.until("reply_end")

    async def streaming(self, text: str, message_id: str) -> None:
        """Send a message and return once its reply streams (its first chunk came)."""
        await self.send(type="message", id=message_id, text=text)
        await self.until("chunk")

    async def while_streaming(self, text: str, message_id: str, **frame) -> tuple[dict, list[dict]]:
        """Send a message, then ``frame`` once its reply streams; returns the reply_end and the
        frames before it."""
        await self.streaming(text, message_id)
        await self.send(**frame)
        return await self.until("reply_end")


@contextlib.asynccontextmanager
async def connect(url: str, **kwargs):
    from websockets.asyncio.client import connect as ws_connect

    async with ws_connect(url, **kwargs) as ws:
        yield Client(ws)


async def wait_until(predicate, timeout: float = 5.0) -> bool:
    """Poll ``predicate`` (the engine thread acts between steps, so give it a moment)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True
