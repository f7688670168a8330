"""The engine and generator: streaming, batching, cancellation, UTF-8 safety, stop rules."""

from __future__ import annotations

import asyncio

import pytest

from model.generator import JoeyGenerator, ModelNotFound
from model.prompt import EOT, TURN, Turn
from model.sampling import GREEDY, GenerationParams
from tests.conftest import wait_until


@pytest.fixture
async def generator(tiny_model):
    gen = JoeyGenerator.load(str(tiny_model[0]), str(tiny_model[1]), max_batch=4)
    gen.start()
    yield gen
    gen.stop()


async def collect(reply) -> str:
    return "".join([chunk async for chunk in reply])


async def test_a_reply_streams_non_empty_chunks_without_special_tokens(generator):
    reply = generator.stream([Turn("Rachel", "Café? 🍕")], GenerationParams(max_new_tokens=80, seed=3))
    chunks = [c async for c in reply]
    assert chunks and all(chunks) and not chunks[0].startswith(" ")
    assert reply.finish_reason.value in ("stop", "length") and 1 <= reply.tokens <= 80
    assert TURN not in "".join(chunks) and EOT not in "".join(chunks)


async def test_batched_requests_equal_single_requests(generator):
    prompts = [[Turn("Monica", "Hi")], [Turn("Ross", "Dinosaurs!")], [Turn("Phoebe", "Smelly cat")]]
    alone = [await collect(generator.stream(p, GREEDY)) for p in prompts]
    together = await asyncio.gather(*(collect(generator.stream(p, GREEDY)) for p in prompts))
    assert list(together) == alone


async def test_closing_a_reply_frees_its_slot(generator):
    long = GenerationParams(max_new_tokens=200, min_new_tokens=200, temperature=0)
    reply = generator.stream([Turn("Chandler", "Go on")], long)
    await reply.__anext__()
    assert generator.engine.active == 1
    await reply.aclose()
    assert await wait_until(lambda: generator.engine.active == 0)
    assert (await collect(generator.stream([Turn("Joey", "Next")], GREEDY)))


async def test_sampling_is_reproducible_with_a_seed(generator):
    params = GenerationParams(seed=42, max_new_tokens=30)
    turns = [Turn("Ross", "We were on a break!")]
    assert await collect(generator.stream(turns, params)) == await collect(generator.stream(turns, params))


async def test_prompt_too_long_for_context_is_trimmed_not_fatal(generator):
    turns = [Turn("Monica", "word " * 400)]
    assert await collect(generator.stream(turns, GREEDY))


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(ModelNotFound, match="no model at"):
        JoeyGenerator.load(str(tmp_path / "nothing"), None)
