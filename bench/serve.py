"""A benchmark server process: the real app (backend.app.create_app under uvicorn, as ``joey
serve`` runs it) in front of either generator:

    python bench/serve.py --kind lean  --port 8100 --base DIR [--adapter DIR] [engine options]
    python bench/serve.py --kind naive --port 8101 --base DIR [--adapter DIR]
    python bench/serve.py --kind remote --port 8102 --base DIR --engine-url http://127.0.0.1:8000/v1

Greedy, every reply forced to ``--new-tokens`` tokens (min = max), a rate limit that does not
interfere, no session store, and a reply whose session closed is aborted after 0.5 s (not 30),
so replies cut off at the end of one level do not run on into the next: only generation differs
between the two kinds.
"""

from __future__ import annotations

from model.engine_options import EngineOptions
import argparse
import logging
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parent.parent)


def main(argv: list[str] | None = None) -> int:
    from model.prefill_plan import PREFILL_CHUNK

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=["lean", "naive", "remote"], required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--base", required=True)
    parser.add_argument("--adapter", default="")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--dtype", default="auto", help="lean engine: auto, bf16 or fp32")
    parser.add_argument("--compile", action="store_true", help="lean engine: compiled decode step and prefill pass")
    parser.add_argument("--engine-process", action=argparse.BooleanOptionalAction, default=True,
                        help="lean engine: in a child process of its own (default), or on a thread of the server")
    parser.add_argument("--prefill-chunk", type=int, default=PREFILL_CHUNK)
    parser.add_argument("--threads", type=int, default=1, help="torch threads: the naive generator's, or the lean engine's passes (a compiled one-row step runs on one)")
    parser.add_argument("--prefix-cache", type=int, default=64, help="lean engine: conversations kept (one per session)")
    parser.add_argument("--engine-url", default="", help="remote: the engines' OpenAI base URLs, comma-separated")
    parser.add_argument("--engine-model", default="joey", help="remote: the name the engines serve the adapter under")
    args = parser.parse_args(argv)

    import uvicorn

    from backend.app import create_app
    from backend.config import Config
    from backend.ws_protocol import uvicorn_options

    logging.basicConfig(level="WARNING")
    config = Config(port=args.port, base_model=args.base, adapter=args.adapter or "none", max_batch=args.max_batch,
                    engine_threads=args.threads, temperature=0.0, repetition_penalty=1.0, max_new_tokens=args.new_tokens,
                    min_new_tokens=args.new_tokens, rate_limit_messages=1_000_000, max_connections=10_000,
                    max_sessions=100_000, max_sessions_per_client=100_000, max_replies_per_client=100_000,
                    max_queued_replies=100_000, max_queue_wait_s=1e9, orphan_grace_s=0.5, state_path="", log_level="warning",
                    shutdown_grace_s=2.0)
    if args.kind == "lean":
        from model.generator import JoeyGenerator

        # The sentence hold-back is off: with every reply forced to its limit it would only
        # bunch the last tokens into sentence-sized chunks and blur the inter-token gaps.
        options = EngineOptions(max_batch=args.max_batch, threads=args.threads, context=config.context_tokens,
                                dtype=args.dtype, compile=args.compile, prefill_chunk=args.prefill_chunk,
                                sentence_holdback=0, prefix_cache=args.prefix_cache, process=args.engine_process)
        generator = JoeyGenerator.load(args.base, args.adapter or None, options)
    elif args.kind == "remote":  # the hub streaming from vLLM: only the tokenizer is loaded here
        from model.generator import JoeyGenerator
        from model.remote_pool import RemoteSettings, base_urls

        generator = JoeyGenerator.remote(base_urls(args.engine_url), args.base,
                                         EngineOptions(context=config.context_tokens, sentence_holdback=0),
                                         settings=RemoteSettings(model=args.engine_model))
    else:
        from bench.naive import NaiveGenerator

        generator = NaiveGenerator.load(args.base, args.adapter or None, context=config.context_tokens,
                                        threads=args.threads)
    uvicorn.run(create_app(config, generator), host="127.0.0.1", port=args.port, log_level="warning",
                **uvicorn_options(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
