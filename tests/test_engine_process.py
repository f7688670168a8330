"""The engine in a child process (model/engine_process.py): what only a process can get wrong.

Streaming, batching, cancellation, seeds and counters are checked for both kinds of engine by
the ``generator`` fixture of tests/test_engine.py.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal

import pytest

from model.engine_options import EngineOptions
from model.generator import JoeyGenerator
from model.prompt import Turn
from model.reply import EngineError, FinishReason
from model.sampling import GREEDY, GenerationParams

LONG = GenerationParams(max_new_tokens=200, min_new_tokens=200, temperature=0)


def process_generator(base, adapter, **options) -> JoeyGenerator:
    return JoeyGenerator.load(str(base), str(adapter), EngineOptions(max_batch=2, process=True, **options))


async def test_the_weights_live_in_the_child_and_its_replies_equal_the_threads(tiny_model):
    thread = JoeyGenerator.load(str(tiny_model[0]), str(tiny_model[1]), EngineOptions(max_batch=2, process=False))
    child = process_generator(*tiny_model)
    assert not hasattr(child.engine, "model")  # the server process never loads the weights
    thread.start(), child.start()
    try:
        turns = [Turn("Monica", "Who ate my sandwich?")]
        texts = ["".join([c async for c in gen.stream(turns, GREEDY)]) for gen in (thread, child)]
        assert texts[0] and texts[0] == texts[1]
        assert child.ready and child.stats().tokens_generated == thread.stats().tokens_generated
    finally:
        thread.stop(), child.stop()
    assert not child.engine.running and not child.ready


async def test_a_child_that_dies_ends_its_replies_with_an_error_and_is_not_ready(tiny_model):
    gen = process_generator(*tiny_model)
    gen.start()
    try:
        reply = gen.stream([Turn("Chandler", "Go on")], LONG)
        await reply.__anext__()
        os.kill(gen.engine._process.pid, signal.SIGKILL)
        with pytest.raises(EngineError, match="engine process exited"):
            async for _ in reply:
                pass
        assert not gen.ready and not gen.engine.running
        with pytest.raises(EngineError, match="not running"):
            gen.stream([Turn("Joey", "Hey")], GREEDY)
    finally:
        gen.stop()


async def test_weights_that_fail_to_load_in_the_child_fail_its_start(tiny_model, tmp_path):
    base = shutil.copytree(tiny_model[0], tmp_path / "base")
    for weights in base.glob("*.safetensors"):
        weights.write_bytes(b"not a safetensors file")
    gen = process_generator(base, tiny_model[1])  # the tokenizer and config, read here, are fine
    with pytest.raises(EngineError, match="loading the model failed"):
        gen.start()
    assert not gen.ready
    gen.stop()


async def test_the_childs_log_records_reach_the_servers_loggers(tiny_model, caplog):
    caplog.set_level(logging.INFO)
    gen = process_generator(*tiny_model)
    gen.start()
    try:
        assert gen.engine.wait_ready(60)
        assert any(r.name == "joey.loading" and r.getMessage().startswith("loaded ") for r in caplog.records)
    finally:
        gen.stop()


async def test_a_stopped_childs_running_reply_ends_and_the_child_exits(tiny_model):
    gen = process_generator(*tiny_model)
    gen.start()
    reply = gen.stream([Turn("Chandler", "Go on")], LONG)
    await reply.__anext__()
    gen.stop()
    async for _ in reply:  # ended, not left waiting
        pass
    assert reply.finish_reason is FinishReason.CANCELLED and gen.engine._process.exitcode == 0
