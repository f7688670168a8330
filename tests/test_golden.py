"""Golden tests on the shipped weights: greedy decoding gives exactly the stored replies.

After retraining, regenerate with scripts/make_golden.py and review the diff.
"""

from __future__ import annotations

import json

import pytest

from model.generator import JoeyGenerator
from model.prompt import Turn
from model.sampling import GREEDY
from tests.conftest import ROOT, SHIPPED_ADAPTER, SHIPPED_BASE, RunningServer, connect, server_config

GOLDEN = json.loads((ROOT / "tests" / "golden.json").read_text())


@pytest.fixture(scope="module")
def shipped_generator():
    gen = JoeyGenerator.load(str(SHIPPED_BASE), str(SHIPPED_ADAPTER), max_batch=4)
    gen.start()
    yield gen
    gen.stop()


def test_weights_ship_as_fp16_safetensors_within_budget():
    files = list(SHIPPED_BASE.glob("*.safetensors")) + list(SHIPPED_ADAPTER.glob("*.safetensors"))
    assert len(files) == 2 and sum(f.stat().st_size for f in files) <= 40e6
    assert json.loads((SHIPPED_BASE / "config.json").read_text())["dtype"] == "float16"


@pytest.mark.parametrize("case", GOLDEN, ids=[c["text"][:20] for c in GOLDEN])
async def test_greedy_reply_is_golden(shipped_generator, case):
    reply = shipped_generator.stream([Turn(case["speaker"], case["text"])], GREEDY)
    assert "".join([chunk async for chunk in reply]) == case["reply"]


async def test_server_answers_with_the_shipped_weights():
    case = GOLDEN[0]
    config = server_config(SHIPPED_BASE, SHIPPED_ADAPTER, repetition_penalty=1.0, max_batch=4)
    with RunningServer(config) as server:
        async with connect(server.url) as client:
            await client.open(name=case["speaker"])
            end, _ = await client.ask(case["text"], "golden")
    assert end["text"] == case["reply"] and end["finish_reason"] in ("stop", "length")
