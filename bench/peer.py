"""vLLM as the peer: the same workload as bench/server.py, on vLLM for CPUs with the same adapter.

Three servers are up together, and each level runs on one after the other, so the ratios
compare the same minutes of the machine:

- ``lean``: our hub with its own engine (bench/serve.py --kind lean);
- ``vllm``: vLLM serving SmolLM2 with the Joey LoRA as ``joey`` (bench/vllm_server.py), behind
  its own HTTP front. Each session speaks the OpenAI completions API, streamed. It carries its
  conversation and sends the prompt our prompt builder renders, as token ids;
- ``hub+vllm``: our hub streaming every reply from that vLLM (bench/serve.py --kind remote).

The ratios: our engine against vLLM, each behind its own front (lean / vllm tokens/s), and our
hub streaming from vLLM against our hub with its own engine (hub+vllm / lean).
"""

from __future__ import annotations

import asyncio
import functools
import time

from bench.chatters import MESSAGES, chat_level
from bench.common import fmt, markdown_table, ratio
from bench.process import free_port
from bench.server import ServerProcess, measure
from bench.vllm_server import SERVED_ADAPTER, VllmServer, installed

KINDS = ("lean", "vllm", "hub+vllm")


async def _openai_chatter(url: str, index: int, messages: int, deadline: float, records: list, problems: list,
                          tokenizer=None, new_tokens: int = 32, context: int = 1024) -> None:
    """One session against an OpenAI-compatible engine: bench/chatters.py's loop, over HTTP."""
    import httpx

    from model.prompt import Turn, build_prompt, stop_token_ids
    from model.remote_api import completion_body, deltas
    from model.sampling import GenerationParams

    params = GenerationParams(max_new_tokens=new_tokens, min_new_tokens=new_tokens, temperature=0.0,
                              repetition_penalty=1.0)
    turns: list[Turn] = []
    async with httpx.AsyncClient(timeout=httpx.Timeout(None, connect=10)) as http:
        for m in range(messages):
            if time.perf_counter() > deadline:
                return
            turns.append(Turn(f"Bench{index}", MESSAGES[(index + m) % len(MESSAGES)]))
            prompt = build_prompt(tokenizer, turns, context - new_tokens - 1)
            body = completion_body(prompt, params, SERVED_ADAPTER, stop_token_ids(tokenizer), None)
            body["return_token_ids"] = False  # a plain OpenAI client: text only
            arrivals, parts, tokens, finish = [], [], 0, None
            t0 = time.perf_counter()
            try:
                async with http.stream("POST", f"{url}/completions", json=body) as response:
                    if response.status_code != 200:
                        problems.append(("error", f"HTTP {response.status_code}"))
                        continue
                    async for delta in deltas(response.aiter_lines()):
                        if delta.text:
                            arrivals.append(time.perf_counter())
                            parts.append(delta.text)
                        finish = delta.finish_reason or finish
                        tokens = int(delta.usage.get("completion_tokens", tokens))
            except httpx.HTTPError as exc:
                problems.append(("dropped", repr(exc)))
                return
            done = time.perf_counter()
            turns.append(Turn("Joey", "".join(parts).strip()))
            records.append({"ttfc": (arrivals[0] if arrivals else done) - t0, "full": done - t0, "end": done,
                            "gaps": [b - a for a, b in zip(arrivals, arrivals[1:])], "tokens": tokens,
                            "finish": finish})
            if finish not in ("length", "stop"):
                problems.append(("finish", finish))


def run(base: str, adapter: str | None, quick: bool = False, levels=(1, 8, 32, 64), lean_options: list[str] = (),
        threads: int = 1, start_timeout: float = 600, log=print) -> dict:
    if not installed():
        raise RuntimeError("vLLM is not installed: run bash scripts/setup_vllm.sh")
    from transformers import AutoTokenizer

    messages, new_tokens = (2, 8) if quick else (4, 32)
    seconds, grace = (6.0, 30.0) if quick else (25.0, 30.0)
    tokenizer = AutoTokenizer.from_pretrained(base)
    chatter = functools.partial(_openai_chatter, tokenizer=tokenizer, new_tokens=new_tokens)
    log(f"vLLM peer: {messages} message(s) per session at most, {seconds:.0f} s per level, {new_tokens}-token "
        f"greedy replies; lean engine batch {max(levels)} {' '.join(lean_options)}")
    result = {"messages": messages, "new_tokens": new_tokens, "seconds_per_level": seconds, "levels": list(levels),
              "lean_options": list(lean_options), "threads": threads, **{kind: [] for kind in KINDS}}
    both = ["--threads", str(threads)]
    started = time.monotonic()
    with VllmServer(free_port()) as vllm:
        result["vllm_ready_s"] = time.monotonic() - started
        with ServerProcess("lean", base, adapter, new_tokens, max(levels), [*both, *lean_options], start_timeout) as lean, \
                ServerProcess("remote", base, adapter, new_tokens, max(levels), ["--engine-url", vllm.url],
                              start_timeout) as hub:
            hub.kind = "hub+vllm"
            for url, how in ((lean.url, None), (vllm.url, chatter), (hub.url, None)):  # warm-up, not reported
                asyncio.run(chat_level(url, 2, 1, seconds, grace, **({"chatter": how} if how else {})))
            for n in levels:
                result["lean"].append(measure(lean, n, messages, seconds, grace, log))
                row = asyncio.run(chat_level(vllm.url, n, messages, seconds, grace, chatter=chatter))
                log(f"  vllm {n:>2} session(s): {row['replies']} replies, {row['tok_s']:.0f} tok/s, first chunk p50 "
                    f"{row['ttfc_p50_ms']:.0f} ms, gap p99 {row['gap_p99_ms']:.0f} ms, errors {row['errors']}")
                result["vllm"].append(row)
                result["hub+vllm"].append(measure(hub, n, messages, seconds, grace, log))
    for ours, theirs, hub_row in zip(result["lean"], result["vllm"], result["hub+vllm"]):
        ours["vs_vllm"] = ratio(ours["tok_s"], theirs["tok_s"])
        hub_row["vs_lean"] = ratio(hub_row["tok_s"], ours["tok_s"])
    return result


def table(result: dict) -> str:
    headers = ["sessions", "lean tok/s", "vLLM tok/s", "hub+vLLM tok/s", "lean / vLLM", "hub+vLLM / lean",
               "first chunk p50 ms (lean, vLLM, hub+vLLM)", "chunk gap p99 ms (lean, vLLM, hub+vLLM)", "errors"]
    rows = []
    for ours, theirs, hub in zip(result["lean"], result["vllm"], result["hub+vllm"]):
        three = (ours, theirs, hub)
        rows.append([str(ours["sessions"]), ours["tok_s"], theirs["tok_s"], hub["tok_s"], fmt(ours["vs_vllm"], 2) + "x",
                     fmt(hub["vs_lean"], 2) + "x", ", ".join(fmt(r["ttfc_p50_ms"], 0) for r in three),
                     ", ".join(fmt(r["gap_p99_ms"], 0) for r in three), str(sum(r["errors"] + r["dropped"] for r in three))])
    return markdown_table(headers, rows)
