"""Regenerate tests/golden.json: greedy replies of each preset's shipped weights to fixed prompts.

Run after retraining (`.venv/bin/python scripts/make_golden.py`) and review the diff: the golden
test fails whenever the weights, the prompt builder or the decoding change the output. Decoding
runs in fp32 so the text does not depend on which dtype the engine would pick on this CPU.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from model.engine_options import EngineOptions
from model.generator import JoeyGenerator  # noqa: E402
from model.presets import PRESETS  # noqa: E402
from model.prompt import Turn  # noqa: E402
from model.sampling import GREEDY  # noqa: E402

PROMPTS = [
    ("Friend", "Hey Joey, how are you doing?"),
    ("Rachel", "Do you want to get some pizza tonight?"),
    ("Chandler", "Where did you put my sandwich?"),
    ("Friend", "I got a new job at the museum!"),
    ("Monica", "Who ate all the food in my fridge?"),
    ("Friend", "Who is your roommate?"),
    ("Friend", "What's the name of your stuffed penguin?"),
]
GOLDEN_DTYPE = "fp32"


async def replies(gen: JoeyGenerator) -> list[str]:
    out = []
    for speaker, text in PROMPTS:
        out.append("".join([c async for c in gen.stream([Turn(speaker, text)], GREEDY)]))
    return out


def main() -> None:
    golden = {}
    for name in PRESETS:
        gen = JoeyGenerator.from_preset(name, options=EngineOptions(max_batch=4, dtype=GOLDEN_DTYPE, process=False))
        gen.start()
        try:
            got = asyncio.run(replies(gen))
        finally:
            gen.stop()
        golden[name] = [{"speaker": s, "text": t, "reply": r} for (s, t), r in zip(PROMPTS, got)]
        for case in golden[name]:
            print(f"[{name}] {case['speaker']}: {case['text']}\n  Joey: {case['reply']}")
    (ROOT / "tests/golden.json").write_text(json.dumps(golden, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
