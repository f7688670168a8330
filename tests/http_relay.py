"""An HTTP relay in front of a real engine, for the one fault a real vLLM will not show on demand:
429/503 answers (tests/test_remote_vllm.py). Everything else it passes through as it comes."""

from __future__ import annotations

import asyncio

import httpx

from bench.process import free_port
from tests.server_thread import ServerThread


class Relay:
    """HTTP in front of a real engine: answers the first completions with the ``refuse`` statuses
    (each with its Retry-After, or none), then relays every request and its stream as it comes.
    Counts what it refused and relayed, and the relayed streams still open."""

    def __init__(self, target: str, refuse: list[tuple[int, str | None]] = ()):
        self.target, self.refuse = target.rstrip("/"), list(refuse)
        self.refused = self.relayed = self.open = 0
        self.port = free_port()
        self.server = ServerThread(self, self.port, lifespan="off")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def __call__(self, scope, receive, send):
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        completion = scope["method"] == "POST" and scope["path"].endswith("/completions")
        if completion and self.refuse:
            status, retry_after = self.refuse.pop(0)
            self.refused += 1
            headers = [(b"content-type", b"application/json")] + \
                ([(b"retry-after", retry_after.encode())] if retry_after is not None else [])
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": b'{"error": {"message": "overloaded"}}'})
            return
        self.relayed += completion
        self.open += completion

        async def relay():
            async with httpx.AsyncClient(timeout=None) as client:
                async with client.stream(scope["method"], self.target + scope["path"], content=body,
                                         headers={"content-type": "application/json"}) as upstream:
                    await send({"type": "http.response.start", "status": upstream.status_code,
                                "headers": [(b"content-type", upstream.headers.get("content-type", "").encode())]})
                    async for chunk in upstream.aiter_raw():
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    await send({"type": "http.response.body", "body": b""})

        async def client_gone():
            while (await receive())["type"] != "http.disconnect":
                pass

        # uvicorn drops what is sent to a client that has gone: watch for it, and then close the
        # upstream stream (cancelling the relay leaves its blocks), as that client's close would.
        tasks = [asyncio.ensure_future(relay()), asyncio.ensure_future(client_gone())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.open -= completion

    def __enter__(self) -> "Relay":
        self.server.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.server.__exit__(*exc)
