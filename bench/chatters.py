"""Chat sessions for the server benchmarks: N JoeyClients over WebSocket, timed per message."""

from __future__ import annotations

import asyncio
import time

from bench.common import percentile

MESSAGES = ["How you doin'?", "Who ate my sandwich?", "Do you want to get pizza?", "What's your favourite food?",
            "Tell me about your acting.", "Could this be any slower?", "Where's Chandler?", "Let's watch Baywatch."]


async def _chatter(url: str, index: int, messages: int, records: list, problems: list) -> None:
    from client import ClientError, ConnectionLost, JoeyClient, WebSocketTransport

    client = JoeyClient(WebSocketTransport(url), name=f"Bench{index}", reconnect=False)
    try:
        await client.start()
    except (ConnectionLost, ClientError) as exc:
        problems.append(("connect", repr(exc)))
        return
    try:
        for m in range(messages):
            first = []
            t0 = time.perf_counter()
            try:
                end = await client.ask(MESSAGES[(index + m) % len(MESSAGES)],
                                       on_chunk=lambda _t: first or first.append(time.perf_counter()))
            except ConnectionLost as exc:
                problems.append(("dropped", repr(exc)))
                return
            except ClientError as exc:
                problems.append(("error", repr(exc)))
                continue
            done = time.perf_counter()
            records.append({"ttfc": (first[0] if first else done) - t0, "full": done - t0,
                            "tokens": end["tokens"], "finish": end["finish_reason"]})
            if end["finish_reason"] not in ("length", "stop"):
                problems.append(("finish", end["finish_reason"]))
    finally:
        await client.close()


async def chat_level(url: str, sessions: int, messages: int, timeout: float) -> dict:
    records, problems = [], []
    t0 = time.perf_counter()
    try:
        await asyncio.wait_for(asyncio.gather(*(_chatter(url, i, messages, records, problems) for i in range(sessions))),
                               timeout)
    except asyncio.TimeoutError:
        problems.append(("timeout", f"level did not finish in {timeout:.0f} s"))
    wall = time.perf_counter() - t0
    ttfc, full = [r["ttfc"] for r in records], [r["full"] for r in records]
    return {"sessions": sessions, "messages": messages, "replies": len(records), "wall_s": wall,
            "tokens": sum(r["tokens"] for r in records), "tok_s": sum(r["tokens"] for r in records) / wall,
            "ttfc_p50_ms": 1000 * percentile(ttfc, 50), "ttfc_p95_ms": 1000 * percentile(ttfc, 95),
            "full_p50_ms": 1000 * percentile(full, 50), "full_p95_ms": 1000 * percentile(full, 95),
            "errors": len([p for p in problems if p[0] != "dropped"]),
            "dropped": len([p for p in problems if p[0] == "dropped"]), "problems": problems[:10]}
