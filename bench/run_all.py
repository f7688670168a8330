"""Run every benchmark: decode throughput (bench/engine.py) and the server end to end (bench/server.py).

    .venv/bin/python bench/run_all.py            # fuller counts (a few minutes)
    .venv/bin/python bench/run_all.py --quick    # small counts, a CI smoke run

Uses weights/base + weights/joey-lora when weights/base/model.safetensors exists, else a tiny
random model built in a temp dir (the output says which). Prints markdown tables and writes
bench/out/engine.png, bench/out/server.png, bench/out/results.json and the summary plot
docs/bench.png. Every comparison is against a baseline measured in the same run: read ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)  # the repo root, not bench/

from bench import engine, server, storm  # noqa: E402
from bench.common import OUT, ROOT, choose_model, pyplot  # noqa: E402


def summary_plot(results: dict, path: Path) -> None:
    plt = pyplot()
    count = ("engine" in results) + 2 * ("server" in results)
    fig, axes = plt.subplots(1, count, figsize=(5.5 * count, 4.2), squeeze=False)
    axes = list(axes[0])
    if "engine" in results:
        engine.plot_axes(axes.pop(0), results["engine"])
    if "server" in results:
        server.plot_axes(axes.pop(0), results["server"])
        storm.plot_storm_axes(axes.pop(0), results["server"])
    for ax in axes:
        ax.remove()
    fig.suptitle(f"Joey Chat benchmarks ({'quick' if results['quick'] else 'full'} run) on the {results['model']['short']}",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts, for a CI smoke run")
    parser.add_argument("--base-model", help="base model directory (default: weights/base if present, else a tiny model)")
    parser.add_argument("--adapter", help="LoRA adapter directory (default: weights/joey-lora with weights/base)")
    parser.add_argument("--tiny", action="store_true", help="use the tiny random test model even if weights/ exists")
    parser.add_argument("--only", choices=["engine", "server"], help="run just one of the two")
    parser.add_argument("--out", type=Path, default=OUT, help="folder for plots and results.json (default bench/out)")
    parser.add_argument("--summary-plot", type=Path, default=ROOT / "docs" / "bench.png",
                        help="where the one summary plot goes ('' to skip)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.time()

    import torch

    with choose_model(args.base_model, args.adapter, force_tiny=args.tiny) as model:
        print(f"# Joey Chat benchmarks ({'quick' if args.quick else 'full'} run)\n")
        print(f"Model: {model.label}")
        print(f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
              f"Python {platform.python_version()}; load average {os.getloadavg()[0]:.1f} at start\n", flush=True)
        results = {"quick": args.quick, "model": {"label": model.label, "short": model.short, "base": model.base, "adapter": model.adapter},
                   "machine": {"cpus": os.cpu_count(), "torch": torch.__version__, "load_avg_start": os.getloadavg()[0]},
                   "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
        if args.only in (None, "engine"):
            results["engine"] = engine.run(model.base, model.adapter, quick=args.quick)
            engine.plot(results["engine"], args.out / "engine.png")
        if args.only in (None, "server"):
            results["server"] = server.run(model.base, model.adapter, quick=args.quick)
            server.plot(results["server"], args.out / "server.png")

    results["seconds"] = time.time() - started
    results["machine"]["load_avg_end"] = os.getloadavg()[0]
    if "engine" in results:
        e = results["engine"]
        print(f"\n## Decode throughput: lean engine vs HF generate() ({e['new_tokens']} new tokens per request, "
              f"prompts {e['prompt_tokens'][0]}-{e['prompt_tokens'][1]} tokens, median of {e['reps']})\n")
        print(engine.table(e))
    if "server" in results:
        s = results["server"]
        print(f"\n## Server end to end ({s['messages']} messages per session, {s['new_tokens']}-token replies)\n")
        print(server.table(s))
        print(f"\n## Bad-input storm ({s['storm']['sessions']} chatters, one flooding connection)\n")
        print(storm.storm_table(s))
    (args.out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    if str(args.summary_plot) not in ("", "."):
        args.summary_plot.parent.mkdir(parents=True, exist_ok=True)
        summary_plot(results, args.summary_plot)
    print(f"\nWrote {args.out}/results.json and plots in {args.out}"
          + (f" and {args.summary_plot}" if str(args.summary_plot) not in ("", ".") else "")
          + f"; {results['seconds']:.0f} s in all.")
    failed = False
    if "server" in results:
        s = results["server"]
        chats = [*s["rows"], s["storm"]["calm"], *(ph["level"] for ph in s["storm"]["phases"])]
        failed = any(r["dropped"] or r["errors"] for r in chats) or not s["storm"]["server_ready_after"]
        if failed:
            print("FAILED: some chat sessions had errors or dropped connections, or the server died (see the tables)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
