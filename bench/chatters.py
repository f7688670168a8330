"""Chat sessions for the server benchmarks: N JoeyClients over WebSocket, timed per message.

Each of N sessions sends messages one after another (the next once the reply has ended) until
it has sent ``messages`` or the level's ``seconds`` are up; replies still running then are
waited for up to ``grace`` seconds, then the sessions close (which cancels them). Measured per
reply, from the moment ``ask`` is called: time to the first chunk, and the gaps between chunks.
A level's throughput is the tokens of completed replies over its wall time.
"""

from __future__ import annotations

import asyncio
import time

from bench.common import outside_load, percentile

MESSAGES = ["How you doin'?", "Who ate my sandwich?", "Do you want to get pizza?", "What's your favourite food?",
            "Tell me about your acting.", "Could this be any slower?", "Where's Chandler?", "Let's watch Baywatch."]


async def _chatter(url: str, index: int, messages: int, deadline: float, records: list, problems: list) -> None:
    from client import ClientError, ConnectionLost, JoeyClient, WebSocketTransport

    client = JoeyClient(WebSocketTransport(url), name=f"Bench{index}", reconnect=False)
    try:
        await client.start()
    except (ConnectionLost, ClientError, OSError) as exc:
        problems.append(("connect", repr(exc)))
        return
    try:
        for m in range(messages):
            if time.perf_counter() > deadline:
                return
            arrivals: list[float] = []
            t0 = time.perf_counter()
            try:
                end = await client.ask(MESSAGES[(index + m) % len(MESSAGES)],
                                       on_chunk=lambda _t: arrivals.append(time.perf_counter()))
            except ConnectionLost as exc:
                problems.append(("dropped", repr(exc)))
                return
            except ClientError as exc:
                problems.append(("error", repr(exc)))
                continue
            done = time.perf_counter()
            records.append({"ttfc": (arrivals[0] if arrivals else done) - t0, "full": done - t0, "end": done,
                            "gaps": [b - a for a, b in zip(arrivals, arrivals[1:])],
                            "tokens": end["tokens"], "finish": end["finish_reason"]})
            if end["finish_reason"] not in ("length", "stop"):
                problems.append(("finish", end["finish_reason"]))
    finally:
        await client.close()


async def chat_level(url: str, sessions: int, messages: int, seconds: float, grace: float = 60.0,
                     chatter=_chatter) -> dict:
    """Run one level; returns its figures (latencies in ms). ``chatter``: one session's loop, with
    ``_chatter``'s arguments (bench/peer.py speaks the OpenAI API with it)."""
    records, problems = [], []
    load = await asyncio.to_thread(outside_load)
    t0 = time.perf_counter()
    deadline = t0 + seconds
    tasks = [asyncio.create_task(chatter(url, i, messages, deadline, records, problems)) for i in range(sessions)]
    _, late = await asyncio.wait(tasks, timeout=seconds + grace)
    for task in late:  # closing the session cancels its reply on the server
        task.cancel()
    await asyncio.gather(*late, return_exceptions=True)
    wall = max([r["end"] for r in records], default=time.perf_counter()) - t0
    ttfc, gaps = [r["ttfc"] for r in records], [g for r in records for g in r["gaps"]]
    tokens = sum(r["tokens"] for r in records)
    ms = lambda values, q: 1000 * percentile(values, q)  # noqa: E731
    return {**load, "sessions": sessions, "replies": len(records), "unfinished": len(late), "wall_s": wall,
            "tokens": tokens, "tok_s": tokens / wall if wall > 0 else 0.0,
            "ttfc_p50_ms": ms(ttfc, 50), "ttfc_p99_ms": ms(ttfc, 99),
            "gap_p50_ms": ms(gaps, 50), "gap_p99_ms": ms(gaps, 99),
            "full_p50_ms": ms([r["full"] for r in records], 50), "full_p95_ms": ms([r["full"] for r in records], 95),
            "errors": len([p for p in problems if p[0] != "dropped"]),
            "dropped": len([p for p in problems if p[0] == "dropped"]), "problems": problems[:10]}
