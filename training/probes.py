"""Persona, memory and in-character probes for `joey eval`, run through the serving engine.

The question sets live in ``training/evalsets/`` and never enter training (a test checks that
none of their questions is among ``characters/joey.train.json``'s). Every probe is sampled
``SAMPLES`` times at the server's default sampling, each with its own seed:

* persona: one question about Joey's life in a fresh conversation; right when the reply holds
  one of the accepted answers (case-insensitive, as whole words);
* memory: the user's lines are said one by one, each answered live by the model, and the last
  reply must hold the fact stated earlier;
* in character: no assistant-speak ("as an AI", "language model", ...) and no code.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, replace
from pathlib import Path

from model.prompt import DEFAULT_USER_NAME, Turn
from model.sampling import GenerationParams

EVALSETS = Path(__file__).resolve().parent / "evalsets"
SAMPLES = 3
PROBE_SEED = 4321
ASSISTANT_SPEAK = re.compile(
    r"\b(as an ai|an ai\b|a?n? ?(ai|artificial intelligence) (language )?model|language model|i'?m an assistant|"
    r"i am an assistant|virtual assistant|ai assistant|as a (large )?language|openai|chatgpt|i cannot assist|"
    r"i can'?t assist|i'm not able to provide|i do not have (personal|the ability)|i don'?t have personal)",
    re.IGNORECASE)
CODE = re.compile(r"```|\bdef \w+\(|\bfunction \w*\(|\bimport \w+|\bSELECT\b.+\bFROM\b|console\.log|print\(|"
                  r"\breturn\b.*;|#include|=>|\{\s*\"", re.IGNORECASE)


def load(name: str) -> dict:
    return json.loads((EVALSETS / f"joey-{name}.json").read_text())


def holds(reply: str, accept: list[str]) -> bool:
    """Does ``reply`` contain one of the accepted answers as whole words (any case)?"""
    text = reply.lower().replace("\u2019", "'")
    return any(re.search(rf"(?<![a-z0-9]){re.escape(a.lower())}(?![a-z0-9])", text) for a in accept)


def in_character(reply: str) -> bool:
    return not ASSISTANT_SPEAK.search(reply) and not CODE.search(reply)


@dataclass
class ProbeScores:
    persona: float
    memory: float
    in_character: float
    samples: dict  # a few (question, reply, right) rows per probe, for the model card


async def _ask(gen, turns: list[Turn], params: GenerationParams) -> str:
    stream = gen.stream(turns, params)
    return "".join([c async for c in stream]).strip()


def _seeded(params: GenerationParams, i: int) -> GenerationParams:
    return params if params.greedy else replace(params, seed=PROBE_SEED + i)


async def _single(gen, questions: list[str], params: GenerationParams) -> list[list[str]]:
    """Each question in a fresh conversation, SAMPLES times: replies[question][sample]."""
    jobs = [_ask(gen, [Turn(DEFAULT_USER_NAME, q)], _seeded(params, i * SAMPLES + k))
            for i, q in enumerate(questions) for k in range(SAMPLES)]
    flat = await asyncio.gather(*jobs)
    return [flat[i * SAMPLES:(i + 1) * SAMPLES] for i in range(len(questions))]


async def _conversation(gen, lines: list[str], params: GenerationParams, seed: int) -> list[Turn]:
    turns: list[Turn] = []
    for j, line in enumerate(lines):
        turns.append(Turn(DEFAULT_USER_NAME, line))
        turns.append(Turn(gen.bot_name, await _ask(gen, turns, _seeded(params, seed * 10 + j))))
    return turns


async def _memory(gen, conversations: list[dict], params: GenerationParams) -> list[list[list[Turn]]]:
    jobs = [_conversation(gen, c["user"], params, i * SAMPLES + k)
            for i, c in enumerate(conversations) for k in range(SAMPLES)]
    flat = await asyncio.gather(*jobs)
    return [flat[i * SAMPLES:(i + 1) * SAMPLES] for i in range(len(conversations))]


def run_probes(gen, params: GenerationParams) -> ProbeScores:
    """All three probes on a started generator (the engine the server runs)."""
    persona, memory, character = load("persona")["questions"], load("memory")["conversations"], load("character")["prompts"]

    async def everything():
        return (await _single(gen, [p["q"] for p in persona], params), await _memory(gen, memory, params),
                await _single(gen, character, params))

    persona_out, memory_out, character_out = asyncio.run(everything())
    persona_ok = [[holds(r, p["accept"]) for r in rs] for p, rs in zip(persona, persona_out)]
    memory_ok = [[holds(t[-1].text, c["accept"]) for t in convs] for c, convs in zip(memory, memory_out)]
    character_ok = [[in_character(r) for r in rs] for rs in character_out]
    mean = lambda rows: sum(map(sum, rows)) / max(1, sum(map(len, rows)))  # noqa: E731
    samples = {
        "persona": [{"q": p["q"], "reply": rs[0], "right": ok[0]} for p, rs, ok in zip(persona[:10], persona_out, persona_ok)],
        "memory": [{"turns": [[t.speaker, t.text] for t in convs[0]], "right": ok[0]}
                   for convs, ok in zip(memory_out[:4], memory_ok)],
        "in_character": [{"q": q, "reply": rs[0], "in_character": ok[0]}
                         for q, rs, ok in zip(character[:8], character_out, character_ok)],
    }
    return ProbeScores(mean(persona_ok), mean(memory_ok), mean(character_ok), samples)
