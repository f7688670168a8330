"""vLLM as the peer: the same workload as bench/server.py, on vLLM for CPUs with the same adapter.

Three servers are up together, and each level runs on one after the other, so the ratios
compare the same minutes of the machine:

- ``lean``: our hub with its own engine (bench/serve.py --kind lean);
- ``vllm``: vLLM serving SmolLM2 with the Joey LoRA as ``joey`` (bench/vllm_server.py), behind
  its own HTTP front. Each session speaks the OpenAI completions API, streamed. It carries its
  conversation and sends the prompt our prompt builder renders, as token ids;
- ``hub+vllm``: our hub streaming every reply from that vLLM (bench/serve.py --kind remote).

The lean server is bench/server.py's own, so one compiled engine serves both comparisons. The
ratios: our engine against vLLM, each behind its own front (lean / vllm tokens/s), and our hub
streaming from vLLM against our hub with its own engine (hub+vllm / lean).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time

from bench.chatters import MESSAGES, chat_level
from bench.common import fmt, markdown_table, ratio
from bench.process import free_port
from bench.server import ServerProcess, measure  # bench/server.py imports this module inside run()
from bench.vllm_server import SERVED_ADAPTER, VllmServer, installed

KINDS = ("vllm", "hub+vllm")  # the rows bench/server.py adds beside its lean and naive ones


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


class Peers:
    """vLLM and our hub in front of it, up beside bench/server.py's lean and naive servers."""

    def __init__(self, vllm: VllmServer, hub: ServerProcess, chatter, ready_s: float):
        self.vllm, self.hub, self.chatter, self.ready_s = vllm, hub, chatter, ready_s

    def warm_up(self, seconds: float, grace: float) -> None:
        asyncio.run(chat_level(self.vllm.url, 2, 1, seconds, grace, chatter=self.chatter))
        asyncio.run(chat_level(self.hub.url, 2, 1, seconds, grace))

    def level(self, sessions: int, messages: int, seconds: float, grace: float, log=print) -> tuple[dict, dict]:
        """One level on vLLM behind its own front, then on our hub streaming from it."""
        row = asyncio.run(chat_level(self.vllm.url, sessions, messages, seconds, grace, chatter=self.chatter))
        log(f"  vllm {sessions:>2} session(s): {row['replies']} replies, {row['tok_s']:.0f} tok/s, first chunk p50 "
            f"{row['ttfc_p50_ms']:.0f} ms, gap p99 {row['gap_p99_ms']:.0f} ms, errors {row['errors']}, "
            f"dropped {row['dropped']}")
        return row, measure(self.hub, sessions, messages, seconds, grace, log)


@contextlib.contextmanager
def peers(base: str, adapter: str | None, new_tokens: int, max_batch: int, start_timeout: float = 600):
    """Start vLLM (the same base and adapter) and a hub streaming from it; yields :class:`Peers`.
    Raises RuntimeError (VllmFailed) when vLLM is missing or does not start."""
    if not installed():
        raise RuntimeError("vLLM is not installed: run bash scripts/setup_vllm.sh")
    from transformers import AutoTokenizer

    chatter = functools.partial(_openai_chatter, tokenizer=AutoTokenizer.from_pretrained(base), new_tokens=new_tokens)
    started = time.monotonic()
    with VllmServer(free_port()) as vllm:
        ready_s = time.monotonic() - started
        with ServerProcess("remote", base, adapter, new_tokens, max_batch, ["--engine-url", vllm.url],
                           start_timeout) as hub:
            hub.kind = "hub+vllm"
            yield Peers(vllm, hub, chatter, ready_s)


def ratios(lean: list[dict], result: dict) -> None:
    """Our engine against vLLM, and the hub streaming from vLLM against the hub with its own engine."""
    for ours, theirs, hub in zip(lean, result["vllm"], result["hub+vllm"]):
        theirs["lean_vs_vllm"] = ratio(ours["tok_s"], theirs["tok_s"])
        hub["hub_vllm_vs_lean"] = ratio(hub["tok_s"], ours["tok_s"])


def table(lean: list[dict], result: dict) -> str:
    headers = ["sessions", "lean tok/s", "vLLM tok/s", "hub+vLLM tok/s", "lean / vLLM", "hub+vLLM / lean",
               "first chunk p50 ms (lean, vLLM, hub+vLLM)", "chunk gap p99 ms (lean, vLLM, hub+vLLM)", "errors"]
    rows = []
    for ours, theirs, hub in zip(lean, result["vllm"], result["hub+vllm"]):
        three = (ours, theirs, hub)
        rows.append([str(ours["sessions"]), ours["tok_s"], theirs["tok_s"], hub["tok_s"],
                     fmt(theirs["lean_vs_vllm"], 2) + "x", fmt(hub["hub_vllm_vs_lean"], 2) + "x",
                     ", ".join(fmt(r["ttfc_p50_ms"], 0) for r in three), ", ".join(fmt(r["gap_p99_ms"], 0) for r in three),
                     str(sum(r["errors"] + r["dropped"] for r in three))])
    return markdown_table(headers, rows)
