"""Soak: many chatting sessions and many idle connections against one real `joey serve`, for minutes.

    python -m bench.soak                          # 200 sessions + 1,000 idle connections, 5 minutes, mini model
    python -m bench.soak --minutes 1 --sessions 20 --idle 100 --model tiny   # a smoke run

Each chat session sends a message, reads until its ``reply_end``, thinks 1-4 s, and goes on.
Every ``--drop-every``-th message it drops the connection mid-reply, reconnects, resumes with
its ``last_seq`` and resends the same id, as a phone on a train would. It checks, per message:
exactly one ``reply_end`` (lost: none within the timeout; duplicated: a second one, or a
frame whose ``seq`` is not above the last one seen), and that the chunks it saw join to the
``reply_end`` text. ``server_busy`` and ``rate_limited`` are waited out (``retry_after``) and
counted. Idle connections open a session and sit. The server's RSS is sampled every 5 s and
its slope over the last 4 minutes reported (RSS summed over the server's processes: the
engine's too). Results: a markdown section (``--write`` puts it
in docs/benchmarks.md under "Soak") and bench/out/soak.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import resource
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (OUT, ROOT, ModelChoice, fmt, markdown_table, memory_mb, percentile, preset_model,  # noqa: E402
                          tiny_model)
from bench.process import ChildServer, free_port  # noqa: E402

HEADING = "## Soak (bench/soak.py)"
MESSAGES = ["How you doin'?", "Who ate my sandwich?", "Pizza tonight?", "Where's Chandler?", "Tell me about acting.",
            "Do you like ducks?", "What's your favourite food?", "Want to watch Baywatch?"]
REPLY_TIMEOUT_S = 120.0


class Tally:
    def __init__(self):
        self.sent = self.answered = self.lost = self.duplicated = self.mismatched = self.drops = 0
        self.errors: Counter = Counter()
        self.closes: Counter = Counter()
        self.ttfc: list[float] = []  # from the message the server accepted to its first chunk
        self.waited: list[float] = []  # from the first try, admission refusals waited out included
        self.full: list[float] = []


async def _read_reply(ws, message_id: str, state: dict, tally: Tally, t0: float, ttfc: list) -> dict | None:
    # ttfc gets [time since this try's send, time since the first try] at the first chunk.
    """Frames until this message's reply_end; None if refused (server_busy/rate_limited: retried)."""
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), REPLY_TIMEOUT_S))
        seq = frame.get("seq")
        if seq is not None and not frame.get("duplicate"):
            if seq <= state["last_seq"]:
                tally.duplicated += 1
            state["last_seq"] = max(state["last_seq"], seq)
        if frame["type"] == "chunk" and frame["message_id"] == message_id:
            state["chunks"].append(frame["text"])
            if not ttfc:
                now = time.perf_counter()
                ttfc.extend([now - state["sent_at"], now - t0])
        elif frame["type"] == "reply_start" and frame["message_id"] == message_id:
            state["chunks"] = []
        elif frame["type"] == "error":
            tally.errors[frame["code"]] += 1
            if frame["code"] in ("server_busy", "rate_limited", "busy"):
                await asyncio.sleep(frame.get("retry_after", 1.0))
                return None
        elif frame["type"] == "reply_end" and frame["message_id"] == message_id:
            return frame


async def _connect(url: str, state: dict):
    from websockets.asyncio.client import connect

    ws = await connect(url, max_size=2**20, open_timeout=60)
    if state.get("session_id"):
        await ws.send(json.dumps({"type": "resume", "session_id": state["session_id"], "token": state["token"],
                                  "last_seq": state["last_seq"]}))
    else:
        await ws.send(json.dumps({"type": "open", "name": "Soak"}))
    info = json.loads(await asyncio.wait_for(ws.recv(), 60))
    assert info["type"] == "session", info
    state.update(session_id=info["session_id"], token=info["token"])
    if not info["resumed"]:  # on resume we keep our own last_seq: the replay starts after it
        state["last_seq"] = info["last_seq"]
    return ws


async def chatter(url: str, index: int, deadline: float, drop_every: int, tally: Tally) -> None:
    rng = random.Random(index)
    state = {"last_seq": 0, "chunks": []}
    ws = await _connect(url, state)
    try:
        n = 0
        while time.perf_counter() < deadline:
            n += 1
            message_id, text = f"s{index}-m{n}", MESSAGES[rng.randrange(len(MESSAGES))]
            tally.sent += 1
            t0, ttfc, ends = time.perf_counter(), [], []
            drop = drop_every and n % drop_every == 0
            while not ends:
                await ws.send(json.dumps({"type": "message", "id": message_id, "text": text}))
                state["sent_at"] = time.perf_counter()
                try:
                    if drop:  # leave mid-reply, come back, resend the same id
                        drop = False
                        await asyncio.sleep(rng.uniform(0.05, 0.5))
                        ws.transport.abort()
                        tally.drops += 1
                        with contextlib.suppress(Exception):
                            await ws.wait_closed()
                        ws = await _connect(url, state)
                        continue
                    end = await _read_reply(ws, message_id, state, tally, t0, ttfc)
                except TimeoutError:
                    tally.lost += 1
                    break
                if end is not None:
                    ends.append(end)
            if not ends:
                continue
            end = ends[0]
            tally.answered += 1
            if not end.get("duplicate") and "".join(state["chunks"]) != end["text"]:
                tally.mismatched += 1  # after a resume the replayed chunks must complete the text exactly
            tally.full.append(time.perf_counter() - t0)
            if ttfc:
                tally.ttfc.append(ttfc[0])
                tally.waited.append(ttfc[1])
            await asyncio.sleep(rng.uniform(1, 4))
    except Exception as exc:  # the connection died under us: a protocol problem worth reporting
        tally.closes[type(exc).__name__] += 1
    finally:
        with contextlib.suppress(Exception):
            await ws.close()


async def idler(url: str, stop: asyncio.Event, tally: Tally) -> bool:
    state = {"last_seq": 0}
    try:
        ws = await _connect(url, state)
    except Exception as exc:
        tally.closes[f"idle {type(exc).__name__}"] += 1
        return False
    try:
        await stop.wait()
        return True
    finally:
        with contextlib.suppress(Exception):
            await ws.close()


def slope_mb_per_min(samples: list[tuple[float, float]]) -> float:
    if len(samples) < 3:
        return float("nan")
    xs, ys = [t / 60 for t, _ in samples], [m for _, m in samples]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var if var else float("nan")


async def soak(url: str, pid: int, minutes: float, sessions: int, idle: int, drop_every: int) -> dict:
    tally, stop = Tally(), asyncio.Event()
    idlers = []
    for start in range(0, idle, 100):  # connect in waves, as a crowd arriving
        idlers += [asyncio.create_task(idler(url, stop, tally)) for _ in range(start, min(idle, start + 100))]
        await asyncio.sleep(0.2)
    started = time.perf_counter()
    deadline = started + minutes * 60
    chatters = [asyncio.create_task(chatter(url, i, deadline, drop_every, tally)) for i in range(sessions)]
    rss: list[tuple[float, float]] = []
    while not all(t.done() for t in chatters):
        rss.append((time.perf_counter() - started, memory_mb(pid)["rss_mb"]))  # with the engine process
        await asyncio.wait(chatters, timeout=5)
    wall = time.perf_counter() - started
    stop.set()
    idle_ok = sum(await asyncio.gather(*idlers))
    last4 = [(t, m) for t, m in rss if t >= wall - 240]
    ms = lambda xs, q: 1000 * percentile(xs, q)  # noqa: E731
    return {"minutes": minutes, "sessions": sessions, "idle": idle, "idle_held": idle_ok, "wall_s": wall,
            "sent": tally.sent, "answered": tally.answered, "lost": tally.lost, "duplicated": tally.duplicated,
            "mismatched": tally.mismatched, "drops_resumed": tally.drops, "errors": dict(tally.errors),
            "connection_failures": dict(tally.closes),
            "ttfc_p50_ms": ms(tally.ttfc, 50), "ttfc_p95_ms": ms(tally.ttfc, 95), "ttfc_p99_ms": ms(tally.ttfc, 99),
            "waited_p50_ms": ms(tally.waited, 50), "waited_p95_ms": ms(tally.waited, 95),
            "full_p50_ms": ms(tally.full, 50), "full_p95_ms": ms(tally.full, 95),
            "rss_start_mb": rss[0][1] if rss else float("nan"), "rss_end_mb": rss[-1][1] if rss else float("nan"),
            "rss_slope_mb_per_min_last4": slope_mb_per_min(last4)}


def serve(base: str, adapter: str | None, state_dir: str, extra: list[str]) -> ChildServer:
    """`joey serve` on the model, with the connection and per-client limits out of the soak's way."""
    port = free_port()
    return ChildServer([sys.executable, "-m", "backend.cli", "serve", "--base-model", base, "--adapter", adapter or "none",
                        "--port", str(port), "--state-path", f"{state_dir}/sessions.db", "--max-connections", "5000",
                        "--max-sessions-per-client", "100000", "--max-replies-per-client", "100000", "--log-level", "warning", *extra], port,
                       stop_signal=signal.SIGTERM)


def report(result: dict, label: str) -> str:
    r = result
    rows = [["sessions chatting / idle connections held", f"{r['sessions']} / {r['idle_held']} of {r['idle']}"],
            ["duration", f"{fmt(r['wall_s'] / 60)} min"],
            ["messages sent / answered", f"{r['sent']} / {r['answered']}"],
            ["**lost / duplicated replies**", f"**{r['lost']} / {r['duplicated']}**"],
            ["reply text differing from its chunks", r["mismatched"]],
            ["drops mid-reply, resumed", r["drops_resumed"]],
            ["error frames", ", ".join(f"{k} {v}" for k, v in sorted(r["errors"].items())) or "none"],
            ["connections that failed", ", ".join(f"{k} {v}" for k, v in r["connection_failures"].items()) or "none"],
            ["first chunk after the accepted send, p50 / p95 / p99",
             f"{fmt(r['ttfc_p50_ms'], 0)} / {fmt(r['ttfc_p95_ms'], 0)} / {fmt(r['ttfc_p99_ms'], 0)} ms"],
            ["first chunk after the first try (server_busy waits included), p50 / p95",
             f"{fmt(r['waited_p50_ms'], 0)} / {fmt(r['waited_p95_ms'], 0)} ms"],
            ["whole reply from the first try, p50 / p95", f"{fmt(r['full_p50_ms'], 0)} / {fmt(r['full_p95_ms'], 0)} ms"],
            ["server RSS start -> end", f"{fmt(r['rss_start_mb'])} -> {fmt(r['rss_end_mb'])} MiB"],
            ["RSS slope, last 4 minutes", f"{fmt(r['rss_slope_mb_per_min_last4'], 2)} MiB/min"]]
    return (f"{HEADING}\n\nModel: {label}. Command: `python -m bench.soak {r['args']}`. "
            "Admission refusals (`server_busy`, `rate_limited`) are waited out and counted under error frames.\n\n"
            + markdown_table(["measure", "value"], rows) + "\n")


def write_section(text: str, path: Path = ROOT / "docs" / "benchmarks.md") -> None:
    """Put the Soak section in the document: replace ours if there, else append it."""
    doc = path.read_text(encoding="utf-8") if path.exists() else ""
    if HEADING in doc:
        head, _, rest = doc.partition(HEADING)
        following = rest.find("\n## ")
        doc = head + text + (rest[following + 1:] if following >= 0 else "")
    else:
        doc = doc.rstrip("\n") + "\n\n" + text
    path.write_text(doc, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--drop-every", type=int, default=10, help="drop and resume every n-th message (0 = never)")
    parser.add_argument("--model", default="mini", help="a preset (mini, smollm2) or 'tiny' (a random test model)")
    parser.add_argument("--base-model", default="", help="a model folder instead of --model (with --adapter)")
    parser.add_argument("--adapter", default="", help="the LoRA folder for --base-model ('' = none)")
    parser.add_argument("--write", action="store_true", help="put the result in docs/benchmarks.md")
    parser.add_argument("--json", type=Path, default=OUT / "soak.json", help="where the raw figures go")
    parser.add_argument("server_args", nargs="*", help="extra `joey serve` flags, after --")
    args = parser.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * (args.sessions + args.idle) + 256)), hard))
    if args.base_model:
        label = f"{args.base_model} + {args.adapter or 'no adapter'}"
        given = ModelChoice("given", args.base_model, args.adapter or None, label)
        chosen = contextlib.nullcontext(given)
    else:
        chosen = tiny_model() if args.model == "tiny" else contextlib.nullcontext(preset_model(args.model))
    with chosen as choice:
        with tempfile.TemporaryDirectory(prefix="joey-soak-") as state_dir:
            with serve(choice.base, choice.adapter, state_dir, args.server_args) as server:
                result = asyncio.run(soak(server.url, server.proc.pid, args.minutes, args.sessions, args.idle,
                                          args.drop_every))
    result["args"] = " ".join(argv if argv is not None else sys.argv[1:])
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    text = report(result, choice.label)
    print(text)
    if args.write:
        write_section(text)
    return 0 if result["lost"] == 0 and result["duplicated"] == 0 and result["mismatched"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
