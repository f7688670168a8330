"""Regenerate tests/golden.json: greedy replies of the shipped weights to fixed prompts.

Run after retraining (`.venv/bin/python scripts/make_golden.py`) and review the diff: the golden
test fails whenever the weights, the prompt builder or the decoding change the output.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from model.generator import JoeyGenerator  # noqa: E402
from model.prompt import Turn  # noqa: E402
from model.sampling import GREEDY  # noqa: E402

PROMPTS = [
    ("Friend", "Hey Joey, how are you doing?"),
    ("Rachel", "Do you want to get some pizza tonight?"),
    ("Chandler", "Where did you put my sandwich?"),
    ("Friend", "I got a new job at the museum!"),
    ("Monica", "Who ate all the food in my fridge?"),
]


async def replies(gen: JoeyGenerator) -> list[str]:
    out = []
    for speaker, text in PROMPTS:
        out.append("".join([c async for c in gen.stream([Turn(speaker, text)], GREEDY)]))
    return out


def main() -> None:
    gen = JoeyGenerator.load(str(ROOT / "weights/base"), str(ROOT / "weights/joey-lora"), max_batch=4)
    gen.start()
    try:
        got = asyncio.run(replies(gen))
    finally:
        gen.stop()
    cases = [{"speaker": s, "text": t, "reply": r} for (s, t), r in zip(PROMPTS, got)]
    (ROOT / "tests/golden.json").write_text(json.dumps(cases, indent=1, ensure_ascii=False) + "\n")
    for case in cases:
        print(f"{case['speaker']}: {case['text']}\n  Joey: {case['reply']}")


if __name__ == "__main__":
    main()
