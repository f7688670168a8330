"""What the character sheet costs a busy server: first-token time with and without it.

    .venv/bin/python bench/sheet_cost.py              # 32 sessions, 3 messages each, two rounds

Two real `joey serve` processes on the shipped weights, up together and measured in turns:
``sheet`` is the default server (the sheet in every prompt, 1024-token context); ``no sheet``
is the same server with a card that holds only the system line and the former 512-token
context. Greedy 32-token replies, conversations carried. Prints a table; the figure that matters
is the first-token p50, as a ratio sheet / no sheet measured in the same minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)  # the repo root, not bench/

from bench.chatters import chat_level  # noqa: E402
from bench.common import markdown_table, median, ratio  # noqa: E402
from bench.process import ChildServer, free_port  # noqa: E402

BARE_CARD = "---\nname: Joey\nsystem: You are Joey Tribbiani from Friends. Reply with Joey's next line only.\n---\n"
SERVER_FLAGS = ["--temperature", "0", "--repetition-penalty", "1", "--max-new-tokens", "32", "--min-new-tokens", "32",
                "--rate-limit-messages", "1000000", "--max-sessions-per-client", "100000", "--max-replies-per-client", "100000", "--max-queued-replies",
                "100000", "--max-batch", "32", "--state-path", "", "--log-level", "warning"]


def server(extra: list[str]) -> ChildServer:
    port = free_port()
    return ChildServer([sys.executable, "-m", "backend.cli", "serve", "--port", str(port), *SERVER_FLAGS, *extra], port)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=32)
    parser.add_argument("--messages", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bare = Path(tmp) / "bare.md"
        bare.write_text(BARE_CARD)
        variants = {"sheet": server([]), "no sheet": server(["--character-card", str(bare), "--context-tokens", "512"])}
        rows: dict[str, list[dict]] = {name: [] for name in variants}
        for s in variants.values():
            s.__enter__()
        try:
            for _ in range(args.rounds):
                for name, s in variants.items():
                    row = asyncio.run(chat_level(s.url, args.sessions, args.messages, seconds=600))
                    rows[name].append(row)
                    print(f"{name}: first token p50 {row['ttfc_p50_ms']:.0f} ms, p99 {row['ttfc_p99_ms']:.0f} ms, "
                          f"gap p99 {row['gap_p99_ms']:.0f} ms, {row['tok_s']:.0f} tok/s", flush=True)
        finally:
            for s in variants.values():
                s.__exit__()
    keys = [("first token p50 ms", "ttfc_p50_ms"), ("first token p99 ms", "ttfc_p99_ms"), ("gap p99 ms", "gap_p99_ms"),
            ("tokens/s", "tok_s")]
    table = [[label] + [f"{median([r[k] for r in rows[n]]):.0f}" for n in rows] +
             [f"{ratio(median([r[k] for r in rows['sheet']]), median([r[k] for r in rows['no sheet']])):.2f}"]
             for label, k in keys]
    print(markdown_table(["median of rounds", *rows, "sheet / no sheet"], table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
