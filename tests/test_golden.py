"""Golden tests on the shipped weights: greedy decoding gives exactly the stored replies.

Both presets, decoded in fp32 (scripts/make_golden.py says why). After retraining, regenerate
with `.venv/bin/python scripts/make_golden.py` and review the diff.
"""

from __future__ import annotations

import json

import pytest

from model.engine_options import EngineOptions
from model.generator import JoeyGenerator
from model.presets import PRESETS
from model.prompt import Turn
from model.sampling import GREEDY
from tests.conftest import ROOT, RunningServer, connect, server_config

GOLDEN = json.loads((ROOT / "tests" / "golden.json").read_text())
GOLDEN_DTYPE = "fp32"
CASES = [(name, case) for name, cases in GOLDEN.items() for case in cases]


@pytest.fixture(scope="module")
def shipped():
    loaded = {}
    for name in GOLDEN:
        gen = JoeyGenerator.from_preset(name, options=EngineOptions(max_batch=4, dtype=GOLDEN_DTYPE, process=False))
        gen.start()
        loaded[name] = gen
    yield loaded
    for gen in loaded.values():
        gen.stop()


def test_adapters_ship_as_small_fp16_safetensors():
    from safetensors import safe_open

    for name in ("smollm2", "mini"):
        adapter = list((ROOT / "weights" / name / "joey-lora").glob("*.safetensors"))
        assert len(adapter) == 1 and adapter[0].stat().st_size <= 12e6
        with safe_open(str(adapter[0]), framework="pt") as f:
            assert {str(f.get_tensor(k).dtype) for k in f.keys()} == {"torch.float16"}
    mini_base = json.loads((ROOT / "weights" / "mini" / "base" / "config.json").read_text())
    assert mini_base["dtype"] == "float16"


def test_shipped_files_name_no_path_of_the_machine_that_made_them():
    for config in (ROOT / "weights").rglob("*config.json"):
        text = config.read_text()
        assert "/work/" not in text and "/home/" not in text and '": "/' not in text, config


@pytest.mark.parametrize("name,case", CASES, ids=[f"{n}-{c['text'][:20]}" for n, c in CASES])
async def test_greedy_reply_is_golden(shipped, name, case):
    reply = shipped[name].stream([Turn(case["speaker"], case["text"])], GREEDY)
    assert "".join([chunk async for chunk in reply]) == case["reply"]


async def test_the_sheet_is_prefilled_once_per_process_not_once_per_message(shipped):
    """Every SmolLM2 prompt opens with the same system message and sheet (about 430 tokens): the
    prefix cache pins it, so each new conversation reuses it instead of computing it again."""
    from model.loading import shared_prefix

    gen = shipped["smollm2"]
    sheet = len(shared_prefix(gen.tokenizer, gen.context))
    before = gen.stats()
    for text in ("First conversation.", "Second one.", "And a third."):
        reply = gen.stream([Turn("Friend", text)], GREEDY)
        assert "".join([chunk async for chunk in reply])
    after = gen.stats()
    assert sheet > 400
    assert after.reused_tokens - before.reused_tokens >= 3 * sheet
    assert after.prefill_tokens - before.prefill_tokens < 3 * 20  # only the new message, each time


async def test_server_answers_with_the_default_preset():
    case = GOLDEN["smollm2"][0]
    preset = PRESETS["smollm2"]
    config = server_config(preset.base, preset.adapter, repetition_penalty=1.0, temperature=0.0, max_batch=4,
                           engine_dtype=GOLDEN_DTYPE)
    with RunningServer(config) as server:
        async with connect(server.url) as client:
            await client.open(name=case["speaker"])
            end, _ = await client.ask(case["text"], "golden")
    assert end["text"] == case["reply"] and end["finish_reason"] in ("stop", "length")
