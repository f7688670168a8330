"""The bad-input storm: chatters talk while another process floods one connection with bad frames.

The flooder runs as its own process (``python bench/storm.py flood ...``), so its CPU use is not
counted as the chatters' client-side cost.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script (the flooder subprocess): make the repo importable
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.chatters import chat_level  # noqa: E402
from bench.common import ROOT, fmt, markdown_table  # noqa: E402

BAD_FRAMES = [
    "{not json", "[1, 2, 3]", "42", '"just a string"', '{"type": 5}', '{"type": "nope"}', '{"no_type": true}',
    '{"type": "message"}', '{"type": "message", "id": 7, "text": "hi"}', '{"type": "message", "id": "x", "text": 9}',
    json.dumps({"type": "message", "id": "long", "text": "a" * 5000}), '{"type": "open", "name": 123}',
    '{"type": "resume", "session_id": "nope", "token": "nope"}', '{"type": "ping", "nonce": [1]}',
    "\u0000\u0001\u0002", "{" * 500 + "}" * 500,
]


async def flood(url: str, stop_file: str, max_seconds: float, rate: float = 0.0, window: int = 256) -> dict:
    """Send malformed frames until ``stop_file`` exists: at ``rate`` frames/s, or (0) as fast as the
    server answers them, with at most ``window`` frames unanswered (a closed loop, so the count is
    what the server really processed, not what piled up in socket buffers)."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    stats = {"rate": rate, "sent": 0, "received": 0, "codes": {}, "closed": None}
    frames = [*BAD_FRAMES, b"\xff\xfe\x00binary junk"]
    async with connect(url, max_size=2**20) as ws:
        await ws.send(json.dumps({"type": "open", "name": "Flooder"}))
        json.loads(await ws.recv())

        async def reader():
            try:
                async for raw in ws:
                    frame = json.loads(raw)
                    stats["received"] += 1
                    code = frame.get("code", frame.get("type"))
                    stats["codes"][code] = stats["codes"].get(code, 0) + 1
            except ConnectionClosed as exc:
                stats["closed"] = f"{exc.rcvd.code if exc.rcvd else 1006}"

        task = asyncio.create_task(reader())
        t0 = time.perf_counter()
        try:
            while not os.path.exists(stop_file) and time.perf_counter() - t0 < max_seconds and not task.done():
                if rate > 0:
                    due = t0 + stats["sent"] / rate
                    if due > time.perf_counter():
                        await asyncio.sleep(due - time.perf_counter())
                elif stats["sent"] - stats["received"] >= window:
                    await asyncio.sleep(0.001)
                    continue
                await ws.send(frames[stats["sent"] % len(frames)])
                stats["sent"] += 1
        except ConnectionClosed as exc:
            stats["closed"] = f"{exc.rcvd.code if exc.rcvd else 1006}"
        stats["seconds"] = time.perf_counter() - t0
        await asyncio.sleep(0.5)  # collect the last answers
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    stats["answered_per_s"] = stats["received"] / stats["seconds"] if stats["seconds"] else 0.0
    return stats


async def storm_level(url: str, sessions: int, messages: int, timeout: float, rate: float) -> tuple[dict, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        stop_file = str(Path(tmp) / "stop")
        proc = await asyncio.create_subprocess_exec(sys.executable, str(Path(__file__).resolve()), "flood", url, stop_file,
                                                    str(timeout), str(rate), stdout=asyncio.subprocess.PIPE, cwd=str(ROOT))
        await asyncio.sleep(1.0)  # let the flood get going (it starts a Python process)
        level = await chat_level(url, sessions, messages, timeout)
        Path(stop_file).touch()
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
    try:
        flooder = json.loads(out.decode().strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        flooder = {"rate": rate, "sent": 0, "received": 0, "codes": {}, "closed": "flooder failed", "answered_per_s": 0.0}
    return level, flooder


def rate_name(rate: float) -> str:
    return f"bad frames at {rate:.0f}/s" if rate > 0 else "bad frames flat out"


def storm_table(result: dict) -> str:
    s = result["storm"]
    headers = ["phase", "replies", "first chunk p50 ms", "full reply p50 ms", "p95 ms", "full reply ratio vs calm",
               "errors", "dropped", "bad frames sent", "answered", "answered/s", "flooder connection"]
    rows = [["calm (no flooder)", str(s["calm"]["replies"]), s["calm"]["ttfc_p50_ms"], s["calm"]["full_p50_ms"],
             s["calm"]["full_p95_ms"], "1.00", str(s["calm"]["errors"]), str(s["calm"]["dropped"]), "", "", "", ""]]
    for ph in s["phases"]:
        r, fl = ph["level"], ph["flooder"]
        rows.append([rate_name(ph["rate"]), str(r["replies"]), r["ttfc_p50_ms"], r["full_p50_ms"], r["full_p95_ms"],
                     fmt(ph["full_ratio"], 2), str(r["errors"]), str(r["dropped"]), f"{fl['sent']:,}",
                     f"{fl['received']:,}", fl.get("answered_per_s", 0.0), "open" if fl["closed"] is None else f"closed {fl['closed']}"])
    dropped = s["calm"]["dropped"] + sum(ph["level"]["dropped"] + (ph["flooder"]["closed"] is not None) for ph in s["phases"])
    codes: dict = {}
    for ph in s["phases"]:
        for k, v in ph["flooder"]["codes"].items():
            codes[k] = codes.get(k, 0) + v
    code_text = ", ".join(f"{k} {v:,}" for k, v in sorted(codes.items(), key=lambda kv: -kv[1]))
    return (markdown_table(headers, rows)
            + f"\n\n{s['sessions']} chatters each time. Answers the flooder got: {code_text or 'none'}. "
            f"Connections dropped: {dropped}. Server ready afterwards: {'yes' if s['server_ready_after'] else 'NO'}.")


def plot_storm_axes(ax, result: dict) -> None:
    s = result["storm"]
    names = ["calm"] + [rate_name(ph["rate"]).replace("bad frames ", "") for ph in s["phases"]]
    levels = [s["calm"]] + [ph["level"] for ph in s["phases"]]
    xs = range(len(levels))
    ax.bar([x - 0.2 for x in xs], [lv["full_p50_ms"] for lv in levels], 0.4, label="full reply p50")
    ax.bar([x + 0.2 for x in xs], [lv["full_p95_ms"] for lv in levels], 0.4, label="full reply p95")
    ax.set_xticks(list(xs), names)
    ax.set_yscale("log")
    ax.set_ylabel("ms (log)")
    ax.set_title(f"{s['sessions']} chatters vs one malformed-frame flooder")
    ax.legend(fontsize=8)


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "flood":
        print(json.dumps(asyncio.run(flood(sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5])))))
    else:
        print("usage: bench/storm.py flood URL STOP_FILE MAX_SECONDS RATE (run bench/run_all.py for the benchmark)",
              file=sys.stderr)
        sys.exit(2)
