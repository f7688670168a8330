"""An honest crowd against the default server: does every admitted message start soon, and does
every ``server_busy`` tell the truth?

    .venv/bin/python bench/crowd.py                 # 200 sessions, 3 messages each

One real `joey serve` with its shipped defaults (SmolLM2 + Joey LoRA, ``max_batch``,
``max_queued_replies``, ``max_replies_per_client``, sampling); only the session store is off.
Each session connects from its own loopback address (127.0.0.2, 127.0.0.3, ...), so it is one
honest client, not one address flooding. Each sends its messages one after another. A refusal
is honoured as a polite client would: wait ``retry_after``, resend the same id.

Measured per admitted message: the wait for its first chunk, from the send that was admitted,
by the clients and by the server (its ``joey_time_to_first_token_seconds`` histogram: the
clients share the two cores, so their own lag is in their figure).
Per refusal: whether the client had already waited a ``retry_after`` for this message (a
retry refused again means that ``retry_after`` promised too early). The machine's load before
the run is printed beside it (bench/common.py outside_load): figures from a busy machine are
not results.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)  # the repo root, not bench/

from bench.chatters import MESSAGES  # noqa: E402
from bench.common import markdown_table, outside_load, percentile  # noqa: E402
from bench.process import ChildServer, free_port  # noqa: E402

LIMIT_S = 30.0  # issue 28: no admitted message waits longer for its first token


async def _session(url: str, index: int, messages: int, out: dict) -> None:
    from client import ClientError, JoeyClient, WebSocketTransport

    host = f"127.0.{(index + 2) // 256}.{(index + 2) % 256}"
    client = JoeyClient(WebSocketTransport(url, local_host=host), name=f"Crowd{index}", reconnect=False)
    await client.start()
    try:
        for m in range(messages):
            message_id, waited = f"c{index}-{m}", False
            while True:
                first: list[float] = []
                sent = time.perf_counter()
                try:
                    await client.ask(MESSAGES[(index + m) % len(MESSAGES)], message_id,
                                     on_chunk=lambda _t: first or first.append(time.perf_counter()))
                except ClientError as exc:
                    if exc.code != "server_busy":
                        out["errors"].append(exc.code)
                        break
                    out["refused"] += 1
                    out["refused_again"] += waited
                    out["retry_after"].append(exc.retry_after)
                    waited = True
                    await asyncio.sleep(exc.retry_after)
                    continue
                out["waits"].append((first[0] if first else time.perf_counter()) - sent)
                break
    finally:
        await client.close()


async def crowd(url: str, sessions: int, messages: int) -> dict:
    out = {"waits": [], "refused": 0, "refused_again": 0, "retry_after": [], "errors": []}
    started = time.perf_counter()
    await asyncio.gather(*(_session(url, i, messages, out) for i in range(sessions)))
    out["wall_s"] = time.perf_counter() - started
    return out


def server_side(port: int) -> tuple[int, int]:
    """First chunks later than LIMIT_S after admission, as the server measured them (its
    histogram), so the clients' own lag on this shared machine is not counted."""
    import httpx

    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    value = lambda pattern: int(float(re.search(pattern, text, re.M).group(1)))  # noqa: E731
    within = value(rf'^joey_time_to_first_token_seconds_bucket{{le="{LIMIT_S}"}} (\S+)$')
    count = value(r"^joey_time_to_first_token_seconds_count (\S+)$")
    return count - within, count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--messages", type=int, default=3)
    args = parser.parse_args()
    port = free_port()
    with ChildServer([sys.executable, "-m", "backend.cli", "serve", "--port", str(port), "--state-path", "",
                      "--log-level", "warning"], port) as server:
        load = outside_load()
        got = asyncio.run(crowd(server.url, args.sessions, args.messages))
        over, count = server_side(port)
    waits = got["waits"]
    row = {"sessions": args.sessions, "admitted": len(waits), "refusals (server_busy)": got["refused"],
           "refused again after waiting retry_after": got["refused_again"],
           "retry_after p50 s": f"{percentile(got['retry_after'], 50):.0f}" if got["retry_after"] else "-",
           "first token p50 s": f"{percentile(waits, 50):.1f}", "p99 s": f"{percentile(waits, 99):.1f}",
           "max s": f"{max(waits):.1f}", f"over {LIMIT_S:.0f} s": sum(w > LIMIT_S for w in waits),
           f"over {LIMIT_S:.0f} s, server's count": f"{over} of {count}",
           "other errors": len(got["errors"]), "wall s": f"{got['wall_s']:.0f}",
           "busy cores outside (load avg)": f"{load['outside_cores']:.1f} ({load['load_avg']:.1f})"}
    print(markdown_table(list(row), [list(map(str, row.values()))]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
