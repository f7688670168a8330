"""End to end through the real server: N concurrent WebSocket sessions against two servers.

Both servers are the real app (bench/serve.py: create_app under uvicorn, in its own process);
they differ only in the generator behind the hub:

- ``lean``: the engine (continuous batching, bf16 where it wins, chunked prefill);
- ``naive``: HF ``generate()`` + ``TextIteratorStreamer``, one request at a time (bench/naive.py).

Per level N (1, 8, 32, 64): time to first chunk p50/p99, gap between chunks p50/p99, aggregate
tokens/s, and the server's RSS (resident memory, read from /proc after the level). Ratios are
lean / naive at the same N in the same run: both servers are up together and each level runs on
one right after the other (the one-session level in several pairs, the median reported). Each
level is bounded in time, so a slow server answers fewer messages instead of running for ever.

Bad-input storm (lean server only): K chatters talk alone, then while a separate process floods
one connection with malformed frames; reported as the latency ratio storm / calm.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

from bench.chatters import chat_level
from bench.common import BUSY_CORES, ROOT, fmt, markdown_table, memory_mb, ratio
from bench.process import ChildServer, free_port
from bench.storm import rate_name, storm_level


class ServerProcess(ChildServer):
    """``bench/serve.py`` as a child process, serving one kind of generator."""

    def __init__(self, kind: str, base: str, adapter: str | None, new_tokens: int, max_batch: int,
                 extra: list[str] = (), start_timeout: float = 600):
        port = free_port()
        super().__init__([sys.executable, str(ROOT / "bench" / "serve.py"), "--kind", kind, "--port", str(port),
                          "--base", base, "--adapter", adapter or "", "--new-tokens", str(new_tokens),
                          "--max-batch", str(max_batch), *extra], port, start_timeout=start_timeout)
        self.kind = kind

    def memory_mb(self) -> dict:
        return memory_mb(self.proc.pid)


# The one-session level is short (a few seconds) and the most at the mercy of a noisy machine:
# mini's naive server gave 114 to 243 tokens/s in seven runs of one day. It is taken in pairs,
# lean then naive back to back, and the pair with the median ratio is reported.
SINGLE_PAIRS = 3


def measure(server: ServerProcess, sessions: int, messages: int, seconds: float, grace: float, log=print) -> dict:
    row = asyncio.run(chat_level(server.url, sessions, messages, seconds, grace))
    row.update(server.memory_mb())
    log(f"  {server.kind} {sessions:>2} session(s): {row['replies']} replies, {row['tok_s']:.0f} tok/s, first chunk p50 "
        f"{row['ttfc_p50_ms']:.0f} ms, gap p99 {row['gap_p99_ms']:.0f} ms, RSS {row['rss_mb']:.0f} MiB (PSS "
        f"{row['pss_mb']:.0f}), errors {row['errors']}, dropped {row['dropped']}")
    return row


def median_pair(pairs: list[tuple[dict, dict]]) -> tuple[dict, dict]:
    """The (lean, naive) pair whose tokens/s ratio is the median; the lean row keeps every pair's ratio."""
    ranked = sorted(pairs, key=lambda pair: ratio(pair[0]["tok_s"], pair[1]["tok_s"]))
    ours, naive = ranked[len(ranked) // 2]
    ours["pair_ratios"] = [ratio(o["tok_s"], n["tok_s"]) for o, n in pairs]
    return ours, naive


def run(base: str, adapter: str | None, quick: bool = False, levels=(1, 8, 32, 64), lean_options: list[str] = (),
        threads: int = 1, start_timeout: float = 600, peer: bool = False, log=print) -> dict:
    """``peer``: also vLLM with the same adapter, and our hub streaming from it (bench/peer.py)."""
    messages = 2 if quick else 4
    new_tokens = 8 if quick else 32
    seconds = 6.0 if quick else 25.0
    grace = 30.0  # then replies still waiting are cancelled (only the naive server gets there)
    storm_sessions = 4
    log(f"server bench: {messages} message(s) per session at most, {seconds:.0f} s per level, {new_tokens}-token "
        f"replies, greedy; {threads} torch thread(s) per server; lean engine batch {max(levels)} {' '.join(lean_options)}")
    result = {"messages": messages, "new_tokens": new_tokens, "seconds_per_level": seconds, "grace_s": grace,
              "levels": list(levels), "single_pairs": SINGLE_PAIRS,
              "lean_options": list(lean_options), "threads": threads, "lean": [], "naive": []}
    both = ["--threads", str(threads)]
    # Both servers stay up, and each level runs on one then the other, so the two sides of a ratio
    # see the same minutes of the machine. The idle one waits on a socket and a queue.
    with ServerProcess("lean", base, adapter, new_tokens, max(levels), [*both, *lean_options], start_timeout) as lean, \
            ServerProcess("naive", base, adapter, new_tokens, max(levels), both, start_timeout) as naive, \
            contextlib.ExitStack() as stack:
        result["lean_ready_s"], result["naive_ready_s"] = lean.ready_after_s, naive.ready_after_s
        peers = _peers(stack, result, base, adapter, new_tokens, max(levels), start_timeout, log) if peer else None
        for server in (lean, naive):
            asyncio.run(chat_level(server.url, 2, 1, seconds, grace))  # warm-up, not reported
        if peers is not None:
            peers.warm_up(seconds, grace)
        for n in levels:
            take = lambda server: measure(server, n, messages, seconds, grace, log)  # noqa: E731
            ours, theirs = median_pair([(take(lean), take(naive)) for _ in range(SINGLE_PAIRS)]) if n == 1 \
                else (take(lean), take(naive))
            result["lean"].append(ours)
            result["naive"].append(theirs)
            if peers is not None:
                for kind, row in zip(("vllm", "hub+vllm"), peers.level(n, messages, seconds, grace, log)):
                    result["peer"][kind].append(row)
        calm = asyncio.run(chat_level(lean.url, storm_sessions, messages, seconds))
        level, flooder = asyncio.run(storm_level(lean.url, storm_sessions, messages, seconds, 0.0))
        result["storm"] = {"sessions": storm_sessions, "calm": calm, "server_ready_after": lean.readyz() is not None,
                           "phases": [{"rate": 0.0, "level": level, "flooder": flooder,
                                       "full_ratio": ratio(level["full_p50_ms"], calm["full_p50_ms"]),
                                       "ttfc_ratio": ratio(level["ttfc_p50_ms"], calm["ttfc_p50_ms"])}]}
        log(f"  storm ({rate_name(0.0)}): full reply p50 x{result['storm']['phases'][0]['full_ratio']:.2f} vs calm; "
            f"flooder sent {flooder['sent']}, {flooder['received']} answered, closed: {flooder['closed']}")
    for ours, theirs in zip(result["lean"], result["naive"]):
        ours["tok_s_ratio"] = ratio(ours["tok_s"], theirs["tok_s"])
        ours["ttfc_ratio"] = ratio(theirs["ttfc_p50_ms"], ours["ttfc_p50_ms"])
    if "peer" in result:
        from bench import peer as peer_bench

        peer_bench.ratios(result["lean"], result["peer"])
    return result


def _peers(stack: contextlib.ExitStack, result: dict, base: str, adapter: str | None, new_tokens: int,
           max_batch: int, start_timeout: float, log):
    """vLLM and a hub in front of it, up for the rest of ``stack``; None (and why, in the result)
    when vLLM is missing or does not start: the lean and naive levels still run."""
    from bench import peer as peer_bench  # here: bench/peer.py imports this module

    try:
        peers = stack.enter_context(peer_bench.peers(base, adapter, new_tokens, max_batch, start_timeout))
    except RuntimeError as exc:
        result["peer_failed"] = str(exc).splitlines()[0]
        log(f"  vLLM peer not measured: {result['peer_failed']}")
        return None
    result["peer"] = {"vllm_ready_s": peers.ready_s, "vllm": [], "hub+vllm": []}
    return peers


def table(result: dict) -> str:
    headers = ["sessions", "server", "replies", "unfinished", "first chunk p50 ms", "p99 ms", "chunk gap p50 ms",
               "p99 ms", "tokens/s", "RSS MiB", "PSS MiB", "errors", "dropped", "busy cores outside (load avg)"]
    rows = []
    for ours, naive in zip(result["lean"], result["naive"]):
        for name, r in (("lean", ours), ("naive", naive)):
            rows.append([str(r["sessions"]), name, str(r["replies"]), str(r["unfinished"]), r["ttfc_p50_ms"],
                         r["ttfc_p99_ms"], r["gap_p50_ms"], r["gap_p99_ms"], r["tok_s"], r["rss_mb"],
                         r.get("pss_mb", float("nan")), str(r["errors"]), str(r["dropped"]), busy(r)])
    return markdown_table(headers, rows)


def busy(row: dict) -> str:
    """The machine's load before a level, flagged when it was too busy for a result (bench/common.py)."""
    if "outside_cores" not in row:  # a result file from before the load was recorded
        return "n/a"
    flag = " BUSY" if row["outside_cores"] > BUSY_CORES else ""
    return f"{row['outside_cores']:.1f} ({row['load_avg']:.1f}){flag}"


def ratio_table(result: dict) -> str:
    headers = ["sessions", "tokens/s lean / naive", "first chunk p50: naive / lean", "lean chunk gap p99 ms",
               "naive chunk gap p99 ms"]
    def tok_s(o: dict) -> str:
        pairs = o.get("pair_ratios")
        return fmt(o["tok_s_ratio"], 1) + "x" + (f" (median of {', '.join(fmt(r, 1) for r in pairs)})" if pairs else "")

    rows = [[str(o["sessions"]), tok_s(o), fmt(o["ttfc_ratio"], 1) + "x", o["gap_p99_ms"], n["gap_p99_ms"]]
            for o, n in zip(result["lean"], result["naive"])]
    return markdown_table(headers, rows)


def plot_axes(ax_tps, ax_lat, result: dict, label: str) -> None:
    xs = result["levels"]
    for kind, marker in (("lean", "o"), ("naive", "s")):
        rows = result[kind]
        ax_tps.plot(xs, [r["tok_s"] for r in rows], marker=marker, linestyle="-", label=f"{label} {kind}")
        ax_lat.plot(xs, [r["ttfc_p99_ms"] for r in rows], marker=marker, linestyle="-",
                    label=f"{label} {kind} first chunk p99")
        ax_lat.plot(xs, [r["gap_p99_ms"] for r in rows], marker=marker, linestyle=":", label=f"{label} {kind} gap p99")
    for ax in (ax_tps, ax_lat):
        ax.set_xscale("log", base=2)
        ax.set_xticks(xs, [str(x) for x in xs])
        ax.set_xlabel("concurrent WebSocket sessions")
        ax.legend(fontsize=7)
    ax_tps.set_ylabel("aggregate tokens/s")
    ax_lat.set_ylabel("ms (log)")
    ax_lat.set_yscale("log")
