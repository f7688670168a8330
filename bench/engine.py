"""Decode throughput: the lean engine (JoeyGenerator.stream) against HF ``model.generate()``.

Both decode the same merged model, greedily, on one torch thread, with every reply forced to the
same length (``min_new_tokens = max_new_tokens``), from the same prompts:

- baseline: HF ``generate()`` at batch 1 and as a left-padded batch of N prompts;
  its time to first token is a ``generate(max_new_tokens=1)`` call on the same batch;
- ours: N requests submitted to the engine at once (continuous batching), timed from submit to
  the last reply's end; time to first token is submit -> first text chunk of each request.

Ratios are ours / HF measured in the same run, so a noisy machine cancels out (mostly).
"""

from __future__ import annotations

from model.engine_options import EngineOptions
import asyncio
import logging
import time

from bench.common import fmt, markdown_table, median, percentile, pyplot, ratio

PROMPTS = [
    [("Chandler", "So does he have a hump? A hump and a hairpiece?")],
    [("Monica", "There's nothing to tell! He's just some guy I work with!")],
    [("Rachel", "I got a new job at the museum!"), ("Joey", "Yeah? Doing what?"),
     ("Rachel", "Mostly carrying things, but there is a dinosaur.")],
    [("Ross", "Who ate all the food in my fridge? The sandwich had my name on it.")],
    [("Phoebe", "Smelly cat, smelly cat, what are they feeding you?"), ("Joey", "Nice song."),
     ("Phoebe", "Thank you! I wrote it this morning in the laundromat, next to a very loud dryer.")],
    [("Chandler", "Could this BE any longer?")],
]


def _turns(i: int):
    from model.prompt import Turn

    return [Turn(s, t) for s, t in PROMPTS[i % len(PROMPTS)]]


def load_hf(base: str, adapter: str | None):
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    return model.eval()


def _left_padded(prompts: list[list[int]], pad_id: int):
    import torch

    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, p in enumerate(prompts):
        ids[row, width - len(p):] = torch.tensor(p)
        mask[row, width - len(p):] = 1
    return ids, mask


def hf_run(model, prompts: list[list[int]], new_tokens: int, pad_id: int) -> dict:
    """One ``generate()`` call on a left-padded batch; returns seconds and tokens generated."""
    import torch

    ids, mask = _left_padded(prompts, pad_id)
    with torch.inference_mode():
        t0 = time.perf_counter()
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens,
                             min_new_tokens=new_tokens, do_sample=False, pad_token_id=pad_id)
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "tokens": int((out.shape[1] - ids.shape[1]) * out.shape[0])}


async def _ours_wave(generator, prompts: list[list[int]], params) -> dict:
    """Submit every prompt at once; wall time until the last ends, first-chunk time of each."""
    t0 = time.perf_counter()
    replies = [generator.engine.submit(p, params) for p in prompts]

    async def drain(reply):
        first = None
        async for _ in reply:
            if first is None:
                first = time.perf_counter() - t0
        return first, reply.tokens

    done = await asyncio.gather(*(drain(r) for r in replies))
    return {"seconds": time.perf_counter() - t0, "tokens": sum(t for _, t in done),
            "ttft": [f for f, _ in done if f is not None]}


def run(base: str, adapter: str | None, quick: bool = False, concurrency=(1, 4, 16),
        new_tokens: int | None = None, reps: int | None = None, log=print) -> dict:
    import torch

    from model.generator import JoeyGenerator
    from model.sampling import GenerationParams

    logging.getLogger("joey").setLevel(logging.WARNING)
    new_tokens = new_tokens or (16 if quick else 64)
    reps = reps or (1 if quick else 3)
    torch.set_num_threads(1)
    generator = JoeyGenerator.load(base, adapter, EngineOptions(max_batch=max(concurrency), threads=1, process=False))
    model = load_hf(base, adapter)
    torch.set_num_threads(1)  # the HF baseline runs on this thread with the same budget
    tok = generator.tokenizer
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    params = GenerationParams(max_new_tokens=new_tokens, min_new_tokens=new_tokens, temperature=0.0,
                              repetition_penalty=1.0)
    all_prompts = [generator.prompt_ids(_turns(i), params) for i in range(max(concurrency))]
    lengths = [len(p) for p in all_prompts]
    log(f"engine bench: {new_tokens} new tokens per request, prompts of {min(lengths)}-{max(lengths)} tokens, "
        f"{reps} rep(s), torch threads 1")

    generator.start()
    loop = asyncio.new_event_loop()
    try:
        # Warm both paths up (allocator, first-call overheads) before anything is timed.
        hf_run(model, all_prompts[:2], 4, pad_id)
        loop.run_until_complete(_ours_wave(generator, all_prompts[:2], params))
        rows = []
        for c in concurrency:
            prompts = all_prompts[:c]
            hf_tps, hf_ttft, our_tps, our_ttft, our_p95 = [], [], [], [], []
            for _ in range(reps):
                r = hf_run(model, prompts, new_tokens, pad_id)
                hf_tps.append(r["tokens"] / r["seconds"])
                hf_ttft.append(hf_run(model, prompts, 1, pad_id)["seconds"])
                w = loop.run_until_complete(_ours_wave(generator, prompts, params))
                our_tps.append(w["tokens"] / w["seconds"])
                our_ttft.append(median(w["ttft"]))
                our_p95.append(percentile(w["ttft"], 95))
            row = {"concurrency": c, "hf_tok_s": median(hf_tps), "ours_tok_s": median(our_tps),
                   "hf_ttft_ms": 1000 * median(hf_ttft), "ours_ttft_p50_ms": 1000 * median(our_ttft),
                   "ours_ttft_p95_ms": 1000 * median(our_p95)}
            row["tok_s_ratio"] = ratio(row["ours_tok_s"], row["hf_tok_s"])
            row["ttft_ratio"] = ratio(row["ours_ttft_p50_ms"], row["hf_ttft_ms"])
            rows.append(row)
            log(f"  concurrency {c}: HF {row['hf_tok_s']:.0f} tok/s, ours {row['ours_tok_s']:.0f} tok/s "
                f"(x{row['tok_s_ratio']:.2f})")
    finally:
        generator.stop()
        loop.close()
    return {"new_tokens": new_tokens, "reps": reps, "prompt_tokens": [min(lengths), max(lengths)], "rows": rows}


def table(result: dict) -> str:
    headers = ["concurrency", "HF generate tok/s", "lean engine tok/s", "ratio ours/HF",
               "HF first token ms", "ours first token p50 ms", "ours p95 ms", "ratio ours/HF (first token)"]
    rows = [[str(r["concurrency"]), r["hf_tok_s"], r["ours_tok_s"], fmt(r["tok_s_ratio"], 2),
             r["hf_ttft_ms"], r["ours_ttft_p50_ms"], r["ours_ttft_p95_ms"], fmt(r["ttft_ratio"], 2)] for r in result["rows"]]
    return markdown_table(headers, rows)


def plot_axes(ax_tps, result: dict) -> None:
    rows = result["rows"]
    xs = range(len(rows))
    ax_tps.bar([x - 0.2 for x in xs], [r["hf_tok_s"] for r in rows], 0.4, label="HF generate()")
    ax_tps.bar([x + 0.2 for x in xs], [r["ours_tok_s"] for r in rows], 0.4, label="lean engine")
    for x, r in zip(xs, rows):
        ax_tps.annotate(f"x{r['tok_s_ratio']:.2f}", (x + 0.2, r["ours_tok_s"]), ha="center", va="bottom", fontsize=8)
    ax_tps.set_xticks(list(xs), [str(r["concurrency"]) for r in rows])
    ax_tps.set_xlabel("concurrent requests (HF: padded batch)")
    ax_tps.set_ylabel("aggregate tokens/s")
    ax_tps.set_title("Decode throughput (greedy, 1 thread)")
    ax_tps.legend(fontsize=8)


def plot(result: dict, path) -> None:
    plt = pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    plot_axes(a, result)
    rows = result["rows"]
    xs = range(len(rows))
    b.bar([x - 0.2 for x in xs], [r["hf_ttft_ms"] for r in rows], 0.4, label="HF generate(max_new_tokens=1)")
    b.bar([x + 0.2 for x in xs], [r["ours_ttft_p50_ms"] for r in rows], 0.4, label="lean engine p50")
    b.set_xticks(list(xs), [str(r["concurrency"]) for r in rows])
    b.set_xlabel("concurrent requests")
    b.set_ylabel("ms")
    b.set_title("Time to first token")
    b.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
