"""The engine and generator: streaming, batching, cancellation, UTF-8 safety, stop rules."""

from __future__ import annotations

import asyncio
import gc

import pytest

from bench.tiny_model import TINY_CHARACTER_CARD
from model.engine_options import EngineOptions
from model.character import Character
from model.generator import JoeyGenerator
from model.loading import ModelNotFound, shared_prefix
from model.prompt import EOT, TURN, Turn
from model.sampling import GREEDY, GenerationParams
from tests.conftest import wait_until


@pytest.fixture(params=["thread", "process"])
async def generator(tiny_model, request):
    """The engine on a thread of this process, and in a child process (the server's default):
    the tests that use this fixture hold for both."""
    gen = JoeyGenerator.load(str(tiny_model[0]), str(tiny_model[1]), EngineOptions(max_batch=4, process=request.param == "process"))
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


# --- equality with HF generate, sentence ends, metrics, readiness ------------------------------

def hf_greedy_text(hf, tokenizer, prompt: list[int], params: GenerationParams, stop_ids: set[int]) -> str:
    """What HF ``generate`` says greedily for ``prompt`` alone, decoded as the engine decodes."""
    import torch

    with torch.no_grad():
        out = hf.generate(torch.tensor([prompt]), max_new_tokens=params.max_new_tokens, do_sample=False,
                          min_new_tokens=params.min_new_tokens, eos_token_id=sorted(stop_ids), pad_token_id=0)
    ids = [t for t in out[0, len(prompt):].tolist() if t not in stop_ids]
    return tokenizer.decode(ids, skip_special_tokens=True).lstrip()


@pytest.fixture(scope="module")
def gqa_model(tmp_path_factory):
    from bench.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-gqa"), shape="chatml")


@pytest.mark.parametrize("which,together", [("tiny_model", False), ("gqa_model", False), ("gqa_model", True)])
async def test_greedy_replies_equal_hf_generate_even_when_requests_join_at_different_steps(which, together, request):
    from model.prompt import stop_token_ids
    from tests.test_lean import load_hf

    dirs = request.getfixturevalue(which)
    # fp32 so equality is exact; a 4-token prefill chunk so later prompts go in while others
    # decode, or a 64-token one so prompts that arrive together share passes.
    options = EngineOptions(max_batch=4, dtype="fp32", prefill_chunk=64 if together else 4, sentence_holdback=0,
                            process=False)
    gen = JoeyGenerator.load(str(dirs[0]), str(dirs[1]), options, character=Character.parse(TINY_CHARACTER_CARD))
    gen.start()
    try:
        hf, stops = load_hf(dirs), stop_token_ids(gen.tokenizer)
        prompts = [[Turn("Monica", "Hi")], [Turn("Ross", "Dinosaurs! " * 6)], [Turn("Phoebe", "Smelly cat")],
                   [Turn("Rachel", "Café au lait? 🍕")], [Turn("Chandler", "Could this BE any longer?")]]
        params = [GenerationParams(max_new_tokens=24, min_new_tokens=n, temperature=0, repetition_penalty=1.0)
                  for n in (24, 12, 1, 24, 5)]
        expected = [hf_greedy_text(hf, gen.tokenizer, gen.prompt_ids(p, q), q, stops) for p, q in zip(prompts, params)]
        # Each request joins after the one before has streamed a few chunks, or all at once (their
        # prompts then share prefill passes); the fifth waits for a free slot (max_batch 4).
        replies, tasks = [], []
        for turns, p in zip(prompts, params):
            if replies and not together:
                seen = len(replies[-1][1])
                assert await wait_until(lambda: len(replies[-1][1]) >= seen + 3 or replies[-1][0].finish_reason, 20)
            reply, chunks = gen.stream(turns, p), []
            replies.append((reply, chunks))
            tasks.append(asyncio.create_task(_drain(reply, chunks)))
        await asyncio.gather(*tasks)
        assert ["".join(chunks) for _, chunks in replies] == expected
    finally:
        gen.stop()


async def _drain(reply, chunks: list) -> None:
    async for chunk in reply:
        chunks.append(chunk)


async def test_a_reply_cut_by_the_limit_ends_at_its_last_sentence_end(tiny_model):
    from model.detokenize import last_sentence_end

    gen = JoeyGenerator.load(str(tiny_model[0]), str(tiny_model[1]), EngineOptions(max_batch=2, dtype="fp32", process=False))
    gen.start()
    try:
        cut = 0
        for limit in (12, 16, 20, 24, 28):
            turns = [Turn("Monica", "There's nothing to tell!")]
            # Greedy with a penalty: this tiny model then writes sentences with ends inside them.
            params = GenerationParams(max_new_tokens=limit, min_new_tokens=limit, temperature=0, repetition_penalty=1.3)
            gen.engine.sentence_holdback = 0
            full = await collect(gen.stream(turns, params))
            gen.engine.sentence_holdback = 16
            reply = gen.stream(turns, params)
            text = await collect(reply)
            assert reply.finish_reason.value == "length" and reply.tokens == limit
            end = last_sentence_end(full)
            assert text == (full[:end] if end else full)
            cut += bool(end) and end < len(full)
        assert cut, "no limit fell mid-sentence: the test did not exercise the cut"
    finally:
        gen.stop()


async def test_stats_count_tokens_first_tokens_and_steps(generator):
    prompts = [[Turn("Ross", f"Hi {i}")] for i in range(3)]
    replies = [generator.stream(p, GenerationParams(max_new_tokens=6, seed=i)) for i, p in enumerate(prompts)]
    for reply in replies:
        await collect(reply)
    stats = generator.stats()
    # The shared start of every prompt is computed once, not per request; the rest is computed
    # or copied from an earlier prompt (the prefix cache), never both.
    shared = len(shared_prefix(generator.tokenizer, generator.context))
    assert shared > 0 and stats.reused_tokens >= 3 * shared
    assert stats.prefill_tokens + stats.reused_tokens == sum(len(generator.prompt_ids(p, GREEDY)) for p in prompts)
    assert stats.tokens_generated == sum(r.tokens for r in replies)
    assert stats.ttft_seconds.count == 3 and stats.ttft_seconds.cumulative()[-1][1] == 3
    assert stats.step_seconds.count >= max(r.tokens for r in replies) - 1
    assert sum(stats.requests_finished.values()) == 3
    assert (stats.queue_depth, stats.active_batch) == (0, 0)


async def test_a_conversations_next_message_prefills_only_what_is_new(tiny_model):
    kept, plain = (JoeyGenerator.load(str(tiny_model[0]), str(tiny_model[1]),
                                      EngineOptions(max_batch=2, prefix_cache=n, process=False))
                   for n in (2, 0))
    kept.start(), plain.start()
    try:
        turns, previous = [Turn("Rachel", "Hi Joey")], 0
        for message in ("And then?", "Really?", "Bye!"):
            before = kept.stats().prefill_tokens
            reply = await collect(kept.stream(turns, GREEDY))
            assert reply == await collect(plain.stream(turns, GREEDY))  # copied keys are the same keys
            prompt = kept.prompt_ids(turns, GREEDY)
            if previous:  # everything up to the last reply came from the cache
                assert kept.stats().prefill_tokens - before <= len(prompt) - previous
            turns, previous = turns + [Turn("Joey", reply), Turn("Rachel", message)], len(prompt)
        assert kept.stats().reused_tokens > plain.stats().reused_tokens
    finally:
        kept.stop(), plain.stop()


async def test_a_prompt_cached_but_for_its_last_token_is_run_by_the_decode_step(tiny_model):
    gen = JoeyGenerator.load(str(tiny_model[0]), str(tiny_model[1]), EngineOptions(max_batch=2, dtype="fp32", process=False))
    passes = []
    lean = gen.engine.model
    prefill_rows = lean.prefill_rows
    lean.prefill_rows = lambda first, rows: passes.append([len(ids) for ids, _ in rows]) or prefill_rows(first, rows)
    gen.start()
    try:
        turns = [Turn("Ross", "We were on a break!")]
        first = await collect(gen.stream(turns, GREEDY))
        assert passes and max(passes[-1]) > 1
        passes.clear()
        # Asked again: all but the prompt's last token come from the prefix cache.
        assert await collect(gen.stream(turns, GREEDY)) == first
        assert passes == [] and gen.stats().reused_tokens >= len(gen.prompt_ids(turns, GREEDY)) - 1
    finally:
        gen.stop()


async def test_not_ready_until_warm_up_ends_and_requests_wait_for_it(tiny_model):
    import threading

    gen = JoeyGenerator.load(str(tiny_model[0]), str(tiny_model[1]), EngineOptions(max_batch=2, process=False))
    release = threading.Event()
    gen.engine._warmup = release.wait  # stands in for compiling, which takes long
    gen.start()
    try:
        reply = gen.stream([Turn("Joey", "Hey")], GREEDY)
        assert not gen.ready and gen.stats().queue_depth == 1
        release.set()
        assert await collect(reply) and gen.ready
    finally:
        release.set()
        gen.stop()


async def test_the_heap_alive_at_start_up_is_frozen_out_of_full_collections(tiny_model):
    """A full collection of an engine's start-up heap stalls every stream (190 ms for SmolLM2)."""
    gc.unfreeze()  # what an earlier engine or server of this test process froze
    gen = JoeyGenerator.load(str(tiny_model[0]), str(tiny_model[1]), EngineOptions(max_batch=2, process=False))
    gen.start()
    try:
        assert await wait_until(lambda: gen.ready)
        assert gc.get_freeze_count() > 10_000
    finally:
        gen.stop()
    assert gc.get_freeze_count() == 0  # thawed with the engine


def test_the_engine_is_set_up_on_one_thread_which_it_leaves_so(tiny_model, monkeypatch):
    """Set up with two threads, the engine thread's two were no faster than one (build_engine)."""
    import torch

    import model.loading as generator

    seen = []
    lean = generator.LeanLlama
    monkeypatch.setattr(generator, "LeanLlama", lambda *a, **kw: seen.append(torch.get_num_threads()) or lean(*a, **kw))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        engine, _, _ = generator.build_engine(str(tiny_model[0]), str(tiny_model[1]),
                                              EngineOptions(max_batch=2, threads=2, process=False).resolved())
        assert (seen, torch.get_num_threads(), engine.model.threads) == ([1], 1, 2)
    finally:
        torch.set_num_threads(before)


async def test_a_long_new_prompt_does_not_stall_a_running_stream(tiny_model):
    gen = JoeyGenerator.load(str(tiny_model[0]), str(tiny_model[1]), EngineOptions(max_batch=2, prefill_chunk=8, process=False))
    gen.start()
    try:
        order: list[str] = []
        running = gen.stream([Turn("Chandler", "Go on")], GenerationParams(max_new_tokens=120, min_new_tokens=120,
                                                                            temperature=0))
        first = asyncio.create_task(_drain(running, order))
        assert await wait_until(lambda: len(order) >= 2, 20)
        order.append("<submitted>")
        long = gen.stream([Turn("Monica", "word " * 150)], GenerationParams(max_new_tokens=1, temperature=0))
        await collect(long)
        order.append("<answered>")
        between = order.index("<answered>") - order.index("<submitted>") - 1
        assert between >= 5, f"the running stream got only {between} chunks during a ~150-token prefill"
        await running.aclose()
        await first
    finally:
        gen.stop()
