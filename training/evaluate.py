"""Evaluate the Joey model on held-out episodes and write docs/MODEL.md.

    joey eval --data ../shared/data
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
from pathlib import Path

from training import data as corpus
from model.prompt import Turn, build_prompt, reply_ids
from model.sampling import GREEDY, GenerationParams

# Written for this card, not taken from the transcripts.
FIXED_PROMPTS = [
    "Hey Joey, how are you doing?", "I got a new job at the museum!", "Who ate all the food in my fridge?",
    "Do you want to get some pizza tonight?", "How did your audition go?", "Can you help me move my couch?",
    "I think I'm in love with my best friend.", "What's your favorite food?", "Where is Chandler?",
    "I just broke up with my girlfriend.", "Want to watch a movie with me?", "Are you an actor?",
    "Can I borrow some money?", "What do you think of my new haircut?", "You're the worst roommate ever!",
    "Let's go get coffee.", "I made you a sandwich.", "Do you know anything about dinosaurs?",
    "I'm so nervous about my date tonight.", "What should I wear to the party?",
]
SAMPLE_SEED = 1234


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="folder with the transcripts")
    parser.add_argument("--base-model", default="weights/base")
    parser.add_argument("--adapter", default="weights/joey-lora")
    parser.add_argument("--pairs", type=int, default=400, help="held-out Joey replies scored for bits per character")
    parser.add_argument("--samples", type=int, default=120, help="held-out contexts sampled for the degenerate rate")
    parser.add_argument("--out", type=Path, default=Path("docs/MODEL.md"))
    parser.add_argument("--work", type=Path, default=Path("build/train"), help="where training left its log")
    parser.add_argument("--threads", type=int, default=1)


def bits_per_char(model, tok, pairs: list[corpus.JoeyPair], budget: int) -> float:
    """Bits per character of Joey's real replies (end-of-turn included), given their context."""
    import torch

    nats, chars = 0.0, 0
    with torch.inference_mode():
        for pair in pairs:
            prompt, target = build_prompt(tok, pair.context, budget), reply_ids(tok, pair.reply)
            ids = torch.tensor([prompt + target])
            logp = torch.log_softmax(model(input_ids=ids).logits[0, len(prompt) - 1 : -1].float(), -1)
            nats -= logp.gather(1, torch.tensor(target).unsqueeze(1)).sum().item()
            chars += len(pair.reply) + 1
    return nats / math.log(2) / chars


def degenerate(text: str, finish_reason: str) -> str | None:
    """Why a reply is degenerate, or None: empty, looping, or cut off mid-sentence."""
    words = text.split()
    if not words:
        return "empty"
    trigrams = [tuple(words[i : i + 3]) for i in range(len(words) - 2)]
    if trigrams and max(trigrams.count(t) for t in set(trigrams)) >= 3:
        return "looping"
    if finish_reason == "length":
        return "cut off"
    return None


async def _generate(gen, contexts: list[list[Turn]], params: GenerationParams) -> list[tuple[str, str]]:
    async def one(turns, seed):
        reply = gen.stream(turns, GenerationParams(**{**params.__dict__, "seed": seed}) if not params.greedy else params)
        text = "".join([c async for c in reply])
        return text, reply.finish_reason.value

    return await asyncio.gather(*(one(t, SAMPLE_SEED + i) for i, t in enumerate(contexts)))


def generate_all(base: str, adapter: str | None, contexts: list[list[Turn]], params: GenerationParams,
                 threads: int) -> list[tuple[str, str]]:
    from model.generator import JoeyGenerator

    gen = JoeyGenerator.load(base, adapter, max_batch=16, threads=threads)
    gen.start()
    try:
        return asyncio.run(_generate(gen, contexts, params))
    finally:
        gen.stop()


def run(args: argparse.Namespace) -> int:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training.model_card import write_model_card

    torch.set_num_threads(args.threads)
    scenes = [s for s in corpus.read_scenes(args.data, include_more=False) if s.show == "Friends" and s.held_out]
    pairs = list(corpus.joey_pairs(scenes, held_out=True))
    rng = random.Random(0)
    scored = rng.sample(pairs, min(args.pairs, len(pairs)))
    tok = AutoTokenizer.from_pretrained(args.base_model)
    model = AutoModelForCausalLM.from_pretrained(args.base_model, dtype=torch.float32).eval()
    model = PeftModel.from_pretrained(model, args.adapter).eval()
    with model.disable_adapter():
        bpc_base = bits_per_char(model, tok, scored, 448)
    bpc_lora = bits_per_char(model, tok, scored, 448)
    print(f"bits/char on {len(scored)} held-out Joey replies: base {bpc_base:.3f}, base+LoRA {bpc_lora:.3f}")

    sampled = rng.sample(pairs, min(args.samples, len(pairs)))
    contexts = [p.context[-4:] for p in sampled]
    sampling = GenerationParams()
    rates = {}
    for label, adapter in (("base", None), ("base+LoRA", args.adapter)):
        outs = generate_all(args.base_model, adapter, contexts, sampling, args.threads)
        kinds = [degenerate(text, finish) for text, finish in outs]
        rates[label] = {k: kinds.count(k) / len(kinds) for k in ("empty", "looping", "cut off")}
        rates[label]["any"] = sum(k is not None for k in kinds) / len(kinds)
        print(label, {k: f"{v:.1%}" for k, v in rates[label].items()})

    fixed = [[Turn("Friend", p)] for p in FIXED_PROMPTS]
    sampled_replies = generate_all(args.base_model, args.adapter, fixed, sampling, args.threads)
    greedy_replies = generate_all(args.base_model, args.adapter, fixed, GREEDY, args.threads)
    base_replies = generate_all(args.base_model, None, fixed, sampling, args.threads)
    table = [(p, b[0], g[0], s[0]) for p, b, g, s in zip(FIXED_PROMPTS, base_replies, greedy_replies, sampled_replies)]
    for row in table:
        print(" | ".join(row))
    results = {"pairs": len(scored), "samples": len(sampled), "bpc_base": bpc_base, "bpc_lora": bpc_lora,
               "degenerate": rates, "fixed": table, "sampling": sampling.__dict__, "seed": SAMPLE_SEED}
    args.work.mkdir(parents=True, exist_ok=True)
    (args.work / "eval.json").write_text(json.dumps(results, indent=1))
    write_model_card(results, args.out, args.base_model, args.adapter, args.work)
    print(f"wrote {args.out}")
    return 0 if bpc_lora < bpc_base else 1
