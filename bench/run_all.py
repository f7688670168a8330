"""Benchmarks through the real server, against the naive baseline measured in the same run.

    .venv/bin/python bench/run_all.py                  # both presets, N = 1, 8, 32, 64 (about 13 minutes)
    .venv/bin/python bench/run_all.py --compile ''     # the same with eager lean servers (compiled by default)
    .venv/bin/python bench/run_all.py --quick --tiny   # a tiny random model, small counts: the smoke test
    .venv/bin/python bench/run_all.py --only engine    # offline: the engine vs HF generate(), no server
    .venv/bin/python bench/run_all.py --preset smollm2 --peer ''   # without the vLLM peer

For each model: the lean server and the naive one (HF generate + TextIteratorStreamer, one
request at a time) answer the same sessions (bench/server.py). Prints markdown tables, writes
bench/out/results.json, bench/out/report.md and the plot (docs/bench.png by default). Read the
ratios: both sides ran on the same machine in the same minutes. For SmolLM2, vLLM for CPUs with the
same adapter is measured too, under the same workload (bench/peer.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)  # the repo root, not bench/

from bench import engine, peer, server, storm  # noqa: E402
from bench.common import OUT, ROOT, ModelChoice, preset_model, pyplot, tiny_model  # noqa: E402

# Issue 10's targets, as (what, N, key, kind, mini, smollm2): kind "ratio" is lean / naive
# (at least), "ms" an absolute bound on the lean server (at most).
TARGETS = [
    ("1 session, tokens/s", 1, "tok_s_ratio", "ratio", 5, 3),
    ("1 session, time to first token p50", 1, "ttfc_p50_ms", "ms", 15, 150),
    ("32 sessions, aggregate tokens/s", 32, "tok_s_ratio", "ratio", 15, 15),
    ("64 sessions, aggregate tokens/s", 64, "tok_s_ratio", "ratio", 20, 20),
    ("32 sessions, inter-token gap p99", 32, "gap_p99_ms", "ms", 40, 150),
]


def targets_table(results: dict) -> str:
    names = [n for n in results["models"] if "server" in results["models"][n]]
    lines = ["| target | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
    for what, n, key, kind, *bounds in TARGETS:
        cells = []
        for name in names:
            rows = {r["sessions"]: r for r in results["models"][name]["server"]["lean"]}
            bound = bounds[1] if name == "smollm2" else bounds[0]
            if n not in rows:
                cells.append("not run")
                continue
            value = rows[n][key]
            met = value >= bound if kind == "ratio" else value <= bound
            shown = f"{value:.1f}x (>= {bound}x)" if kind == "ratio" else f"{value:.0f} ms (<= {bound} ms)"
            cells.append(f"{shown} {'met' if met else '**missed**'}")
        lines.append(f"| {what} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary_plot(results: dict, path: Path) -> None:
    plt = pyplot()
    fig, (ax_tps, ax_lat) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, r in results["models"].items():
        if "server" in r:
            server.plot_axes(ax_tps, ax_lat, r["server"], name)
    ax_tps.set_title("Aggregate tokens/s through the server")
    ax_lat.set_title("p99 latency: first chunk and gap between chunks")
    fig.suptitle(f"Joey Chat: lean engine vs naive HF generate() server, same run ({results['started']})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def report(results: dict) -> str:
    parts = [f"Run {results['started']} ({'quick' if results['quick'] else 'full'}), {results['seconds']:.0f} s; "
             f"{results['machine']['cpus']} CPUs, torch {results['machine']['torch']}, load average "
             f"{results['machine']['load_avg_start']:.1f} at start, {results['machine']['load_avg_end']:.1f} at end.\n"]
    for name, r in results["models"].items():
        parts.append(f"### {r['label']}\n")
        if "failed" in r:
            parts.append(f"Not measured: {r['failed']}\n")
        if "server" in r:
            s = r["server"]
            parts.append(f"{s['messages']} messages per session at most, {s['seconds_per_level']:.0f} s per level, "
                         f"{s['new_tokens']}-token greedy replies, {s['threads']} torch thread(s) per server. Lean server "
                         f"{'with compiled passes' if '--compile' in s['lean_options'] else 'eager (not compiled)'}, "
                         f"ready after {s['lean_ready_s']:.1f} s, "
                         f"naive after {s['naive_ready_s']:.1f} s.\n")
            parts.append(server.ratio_table(s) + "\n")
            parts.append(server.table(s) + "\n")
            parts.append(storm.storm_table(s) + "\n")
            if "peer_failed" in s:
                parts.append(f"vLLM peer not measured: {s['peer_failed']}\n")
            if "peer" in s:
                parts.append(f"Against vLLM for CPUs with the same adapter, in the same levels (ready after "
                             f"{s['peer']['vllm_ready_s']:.0f} s): our engine and vLLM, each behind its own front, "
                             f"and our hub streaming from vLLM.\n")
                parts.append(peer.table(s["lean"], s["peer"]) + "\n")
        if "engine" in r:
            parts.append(engine.table(r["engine"]) + "\n")
    if any("server" in r for r in results["models"].values()):
        parts.append("### Targets (issue 10)\n\n" + targets_table(results) + "\n")
    return "\n".join(parts)


def sane(results: dict) -> list[str]:
    """What makes a run unusable: errors, dropped sessions, no tokens, ratios that are not numbers."""
    problems = []
    for name, r in results["models"].items():
        if "failed" in r:
            problems.append(f"{name}: {r['failed']}")
        s = r.get("server")
        if not s:
            continue
        for kind in ("lean", "naive"):
            for row in s[kind]:
                if row["errors"] or row["dropped"] or row["tokens"] <= 0:
                    problems.append(f"{name} {kind} {row['sessions']} sessions: errors {row['errors']}, "
                                    f"dropped {row['dropped']}, tokens {row['tokens']}")
        problems += [f"{name}: ratio at {row['sessions']} sessions is {row['tok_s_ratio']}"
                     for row in s["lean"] if not math.isfinite(row["tok_s_ratio"])]
        if not s["storm"]["server_ready_after"]:
            problems.append(f"{name}: the server died in the storm")
        for kind in peer.KINDS:
            problems += [f"{name} peer {kind} {row['sessions']} sessions: errors {row['errors']}, dropped {row['dropped']}"
                         for row in s.get("peer", {}).get(kind, []) if row["errors"] or row["dropped"]]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts and levels 1 and 4, for a smoke run")
    parser.add_argument("--tiny", action="store_true", help="a tiny random model instead of the presets")
    parser.add_argument("--preset", action="append", choices=["mini", "smollm2"],
                        help="which presets (repeatable; default both)")
    parser.add_argument("--only", choices=["engine", "server"], default="server",
                        help="server (default): through the real server; engine: offline vs HF generate()")
    parser.add_argument("--levels", default="", help="comma-separated session counts (default 1,8,32,64; quick 1,4)")
    parser.add_argument("--compile", default="mini,smollm2", help="comma-separated models whose lean server compiles "
                        "its passes (default both: mini is ready in about a minute, SmolLM2 in several; '' = none)")
    parser.add_argument("--lean-option", action="append", default=[], metavar="FLAG",
                        help="extra bench/serve.py flag for the lean server, e.g. --lean-option=--prefill-chunk=16 "
                        "(repeatable)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads of both servers, lean and naive "
                        "(default 0: the preset's engine threads, 2 for smollm2 and 1 for mini; the naive server "
                        "is as fast with 1 as with 2)")
    parser.add_argument("--start-timeout", type=float, default=600,
                        help="seconds a server may take to get ready (compiling SmolLM2's passes took 5 minutes on a "
                        "Zen4 and over 10 on an AVX2-only Zen3); a model whose server does not is reported as not "
                        "measured, and the run goes on with the next")
    parser.add_argument("--peer", default="vllm", choices=["vllm", ""], help="the peer engine measured beside the "
                        "smollm2 preset under the same workload: vLLM for CPUs (scripts/setup_vllm.sh); '' = none")
    parser.add_argument("--out", type=Path, default=OUT, help="folder for results.json and report.md")
    parser.add_argument("--summary-plot", type=Path, default=ROOT / "docs" / "bench.png", help="where the plot goes")
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args.out.mkdir(parents=True, exist_ok=True)
    levels = [int(x) for x in args.levels.split(",") if x] or ([1, 4] if args.quick else [1, 8, 32, 64])
    started = time.time()

    import torch

    results = {"quick": args.quick, "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "models": {},
               "machine": {"cpus": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
                           "load_avg_start": os.getloadavg()[0]}}
    with contextlib.ExitStack() as stack:
        choices: list[ModelChoice] = [stack.enter_context(tiny_model())] if args.tiny else \
            [preset_model(p) for p in (args.preset or ["mini", "smollm2"])]
        for model in choices:
            print(f"\n# {model.label}", flush=True)
            entry = results["models"][model.name] = {"label": model.label, "base": model.base, "adapter": model.adapter}
            if args.only == "engine":
                entry["engine"] = engine.run(model.base, model.adapter, quick=args.quick)
            else:
                try:
                    entry["server"] = server.run(
                        model.base, model.adapter, quick=args.quick, levels=levels,
                        lean_options=(["--compile"] if model.name in args.compile.split(",") else [])
                        + [f"--prefill-chunk={model.prefill_chunk}", *args.lean_option],
                        threads=args.threads or model.threads, start_timeout=args.start_timeout,
                        peer=args.peer == "vllm" and model.name == "smollm2")  # vLLM serves SmolLM2's adapter
                except RuntimeError as exc:  # a server that never got ready: the other model's levels still count
                    entry["failed"] = str(exc).splitlines()[0]
                    print(f"  not measured: {entry['failed']}", flush=True)
    results["seconds"] = time.time() - started
    results["machine"]["load_avg_end"] = os.getloadavg()[0]
    text = report(results)
    print("\n" + text)
    (args.out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    (args.out / "report.md").write_text(text)
    if args.only == "server" and str(args.summary_plot) not in ("", "."):
        args.summary_plot.parent.mkdir(parents=True, exist_ok=True)
        summary_plot(results, args.summary_plot)
    print(f"Wrote {args.out}/results.json, {args.out}/report.md; {results['seconds']:.0f} s in all.")
    if problems := sane(results):
        print("FAILED:\n" + "\n".join(problems))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
