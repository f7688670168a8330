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

from bench.chatters import chat_level  # noqa: E402
from bench.common import ROOT, fmt, markdown_table, pyplot, ratio  # noqa: E402
from bench.storm import plot_storm_axes, rate_name, storm_level  # noqa: E402




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
            log(f"  {rate_name(rate)}: full reply p50 {level['full_p50_ms']:.0f} ms (x{phases[-1]['full_ratio']:.2f}); "
                f"flooder sent {flooder['sent']} bad frames, {flooder['received']} answered "
                f"({flooder.get('answered_per_s', 0):.0f}/s), closed: {flooder['closed']}")
        alive = server.readyz() is not None
    storm = {"sessions": storm_sessions, "calm": calm, "phases": phases, "server_ready_after": alive}
    return {"messages": messages, "new_tokens": new_tokens, "rows": rows, "storm": storm}


def table(result: dict) -> str:
    headers = ["sessions", "replies", "first chunk p50 ms", "p95 ms", "full reply p50 ms", "p95 ms",
               "tokens/s", "errors", "dropped", "first chunk ratio", "full reply ratio", "tokens/s ratio"]
    rows = [[str(r["sessions"]), str(r["replies"]), r["ttfc_p50_ms"], r["ttfc_p95_ms"], r["full_p50_ms"], r["full_p95_ms"],
             r["tok_s"], str(r["errors"]), str(r["dropped"]), fmt(r["ttfc_ratio"], 2), fmt(r["full_ratio"], 2),
             fmt(r["tok_s_ratio"], 2)] for r in result["rows"]]
    return markdown_table(headers, rows) + "\n\nRatios are against the 1-session row of the same run."


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


def plot(result: dict, path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    plot_axes(axes[0], result)
    plot_tps_axes(axes[1], result)
    plot_storm_axes(axes[2], result)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
