"""End to end: a real ``joey serve`` (uvicorn, own process) on a loopback port, N WebSocket chatters.

Each of N concurrent sessions (JoeyClient over WebSocketTransport) sends M messages one after
another. Per message: time to first chunk and full-reply latency, from the moment ``ask`` is
called. Per level: aggregate generated tokens/s (``reply_end.tokens`` summed over the level's
wall time), errors and dropped connections. Baseline: N=1 in the same run, so the table shows
ratios.

Bad-input storm: K chatters talk alone (baseline), then while a separate process floods one
connection with malformed frames (bad JSON, wrong types, unknown types, too-long messages,
binary junk), at a fixed rate and flat out (as fast as the server answers, at most 256
unanswered). Reported: the chatters' latency ratio storm / calm, how many bad frames the server
answered, and whether any connection dropped.

The server runs with greedy decoding and ``min_new_tokens = max_new_tokens`` so every reply has
the same length, a rate limit high enough not to interfere, and no session store.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script (the flooder subprocess): make the repo importable
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.common import ROOT, fmt, markdown_table, percentile, pyplot, ratio  # noqa: E402

MESSAGES = ["How you doin'?", "Who ate my sandwich?", "Do you want to get pizza?", "What's your favourite food?",
            "Tell me about your acting.", "Could this be any slower?", "Where's Chandler?", "Let's watch Baywatch."]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``python -m backend.cli serve`` as a child process, waited on until /readyz says ready."""

    def __init__(self, base: str, adapter: str | None, new_tokens: int, max_batch: int):
        self.port = free_port()
        self.args = [sys.executable, "-m", "backend.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                     "--base-model", base, "--adapter", adapter or "", "--state-path", "", "--max-batch", str(max_batch),
                     "--engine-threads", "1", "--temperature", "0", "--repetition-penalty", "1",
                     "--max-new-tokens", str(new_tokens), "--min-new-tokens", str(new_tokens),
                     "--rate-limit-messages", "1000000", "--max-connections", "10000", "--log-level", "warning"]
        self.proc: subprocess.Popen | None = None
        self.log = tempfile.TemporaryFile()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def readyz(self) -> dict | None:
        import httpx

        try:
            r = httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2)
            return r.json() if r.status_code == 200 else None
        except httpx.HTTPError:
            return None

    def __enter__(self) -> "ServerProcess":
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        self.proc = subprocess.Popen(self.args, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while self.readyz() is None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.log.seek(0)
                raise RuntimeError(f"server did not start:\n{self.log.read().decode(errors='replace')[-3000:]}")
            time.sleep(0.1)
        return self

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


async def _chatter(url: str, index: int, messages: int, records: list, problems: list) -> None:
    from backend.client import ClientError, ConnectionLost, JoeyClient, WebSocketTransport

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


# --- the flooder (its own process, so its CPU use is not the chatters' client-side cost) ------
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


def run(base: str, adapter: str | None, quick: bool = False, levels=(1, 8, 32), messages: int | None = None,
        new_tokens: int | None = None, storm_sessions: int | None = None, storm_rates=None, log=print) -> dict:
    messages = messages or (1 if quick else 5)
    new_tokens = new_tokens or (8 if quick else 48)
    storm_sessions = storm_sessions or (4 if quick else 8)
    storm_rates = storm_rates if storm_rates is not None else ((0.0,) if quick else (100.0, 0.0))
    timeout = 120.0 if quick else 600.0
    log(f"server bench: joey serve in its own process, {messages} message(s) per session, "
        f"{new_tokens} tokens per reply, greedy, engine batch {max(levels)}")
    with ServerProcess(base, adapter, new_tokens, max_batch=max(levels)) as server:
        asyncio.run(chat_level(server.url, 2, 1, timeout))  # warm-up, not reported
        rows = []
        for n in levels:
            row = asyncio.run(chat_level(server.url, n, messages, timeout))
            rows.append(row)
            log(f"  {n} session(s): {row['replies']} replies, {row['tok_s']:.0f} tok/s, first chunk p50 "
                f"{row['ttfc_p50_ms']:.0f} ms, errors {row['errors']}, dropped {row['dropped']}")
        base_row = rows[0]
        for row in rows:
            row["ttfc_ratio"] = ratio(row["ttfc_p50_ms"], base_row["ttfc_p50_ms"])
            row["full_ratio"] = ratio(row["full_p50_ms"], base_row["full_p50_ms"])
            row["tok_s_ratio"] = ratio(row["tok_s"], base_row["tok_s"])
        calm = asyncio.run(chat_level(server.url, storm_sessions, messages, timeout))
        log(f"  calm: {storm_sessions} chatters, full reply p50 {calm['full_p50_ms']:.0f} ms")
        phases = []
        for rate in storm_rates:
            level, flooder = asyncio.run(storm_level(server.url, storm_sessions, messages, timeout, rate))
            phases.append({"rate": rate, "level": level, "flooder": flooder,
                           "full_ratio": ratio(level["full_p50_ms"], calm["full_p50_ms"]),
                           "ttfc_ratio": ratio(level["ttfc_p50_ms"], calm["ttfc_p50_ms"])})
            log(f"  {_rate_name(rate)}: full reply p50 {level['full_p50_ms']:.0f} ms (x{phases[-1]['full_ratio']:.2f}); "
                f"flooder sent {flooder['sent']} bad frames, {flooder['received']} answered "
                f"({flooder.get('answered_per_s', 0):.0f}/s), closed: {flooder['closed']}")
        alive = server.readyz() is not None
    storm = {"sessions": storm_sessions, "calm": calm, "phases": phases, "server_ready_after": alive}
    return {"messages": messages, "new_tokens": new_tokens, "rows": rows, "storm": storm}


def _rate_name(rate: float) -> str:
    return f"bad frames at {rate:.0f}/s" if rate > 0 else "bad frames flat out"


def table(result: dict) -> str:
    headers = ["sessions", "replies", "first chunk p50 ms", "p95 ms", "full reply p50 ms", "p95 ms",
               "tokens/s", "errors", "dropped", "first chunk ratio", "full reply ratio", "tokens/s ratio"]
    rows = [[str(r["sessions"]), str(r["replies"]), r["ttfc_p50_ms"], r["ttfc_p95_ms"], r["full_p50_ms"], r["full_p95_ms"],
             r["tok_s"], str(r["errors"]), str(r["dropped"]), fmt(r["ttfc_ratio"], 2), fmt(r["full_ratio"], 2),
             fmt(r["tok_s_ratio"], 2)] for r in result["rows"]]
    return markdown_table(headers, rows) + "\n\nRatios are against the 1-session row of the same run."


def storm_table(result: dict) -> str:
    s = result["storm"]
    headers = ["phase", "replies", "first chunk p50 ms", "full reply p50 ms", "p95 ms", "full reply ratio vs calm",
               "errors", "dropped", "bad frames sent", "answered", "answered/s", "flooder connection"]
    rows = [["calm (no flooder)", str(s["calm"]["replies"]), s["calm"]["ttfc_p50_ms"], s["calm"]["full_p50_ms"],
             s["calm"]["full_p95_ms"], "1.00", str(s["calm"]["errors"]), str(s["calm"]["dropped"]), "", "", "", ""]]
    for ph in s["phases"]:
        r, fl = ph["level"], ph["flooder"]
        rows.append([_rate_name(ph["rate"]), str(r["replies"]), r["ttfc_p50_ms"], r["full_p50_ms"], r["full_p95_ms"],
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


def plot_axes(ax, result: dict) -> None:
    rows = result["rows"]
    xs = [r["sessions"] for r in rows]
    ax.plot(xs, [r["ttfc_p50_ms"] for r in rows], "o-", label="first chunk p50")
    ax.plot(xs, [r["full_p50_ms"] for r in rows], "s-", label="full reply p50")
    ax.plot(xs, [r["full_p95_ms"] for r in rows], "s--", label="full reply p95")
    ax.set_xscale("log", base=2)
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.set_xlabel("concurrent WebSocket sessions")
    ax.set_ylabel("ms")
    ax.set_title(f"Server latency ({result['new_tokens']}-token replies)")
    ax.legend(fontsize=8)


def plot_tps_axes(ax, result: dict) -> None:
    rows = result["rows"]
    xs = range(len(rows))
    ax.bar(list(xs), [r["tok_s"] for r in rows], 0.6, color="tab:green")
    for x, r in zip(xs, rows):
        ax.annotate(f"x{r['tok_s_ratio']:.2f}", (x, r["tok_s"]), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(list(xs), [str(r["sessions"]) for r in rows])
    ax.set_xlabel("concurrent WebSocket sessions")
    ax.set_ylabel("aggregate tokens/s")
    ax.set_title("Server throughput (ratio vs 1 session)")


def plot_storm_axes(ax, result: dict) -> None:
    s = result["storm"]
    names = ["calm"] + [_rate_name(ph["rate"]).replace("bad frames ", "") for ph in s["phases"]]
    levels = [s["calm"]] + [ph["level"] for ph in s["phases"]]
    xs = range(len(levels))
    ax.bar([x - 0.2 for x in xs], [lv["full_p50_ms"] for lv in levels], 0.4, label="full reply p50")
    ax.bar([x + 0.2 for x in xs], [lv["full_p95_ms"] for lv in levels], 0.4, label="full reply p95")
    ax.set_xticks(list(xs), names)
    ax.set_yscale("log")
    ax.set_ylabel("ms (log)")
    ax.set_title(f"{s['sessions']} chatters vs one malformed-frame flooder")
    ax.legend(fontsize=8)


def plot(result: dict, path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    plot_axes(axes[0], result)
    plot_tps_axes(axes[1], result)
    plot_storm_axes(axes[2], result)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "flood":
        print(json.dumps(asyncio.run(flood(sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5])))))
    else:
        print("usage: bench/server.py flood URL STOP_FILE MAX_SECONDS RATE (run bench/run_all.py for the benchmark)",
              file=sys.stderr)
        sys.exit(2)
