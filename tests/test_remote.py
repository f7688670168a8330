"""The remote engine (model/remote.py) where no engine is needed: the face all engines share,
what a request carries, and an engine that is not there. Against a real vLLM:
tests/test_remote_vllm.py."""

from __future__ import annotations

import asyncio
import inspect
import time

import pytest

from bench.process import free_port
from model.engine_options import EngineOptions
from model.engine import Engine
from model.engine_api import EngineClient
from model.engine_process import EngineProcess
from model.generator import JoeyGenerator
from model.prompt import stop_token_ids
from model.remote import RemoteEngine, TextStream
from model.remote_api import completion_body, parse_event
from model.remote_pool import RemoteSettings, base_urls
from model.reply import EngineError, FinishReason
from model.sampling import GenerationParams

METHODS = ("start", "submit", "abort", "stats", "stop")


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model[0]))


def test_every_engine_has_the_engine_client_face(tiny_model, tokenizer):
    base, adapter = map(str, tiny_model)
    thread = JoeyGenerator.load(base, adapter, EngineOptions(max_batch=1, process=False)).engine
    process = EngineProcess(base, adapter, EngineOptions(max_batch=1))  # not started: no child yet
    remote = RemoteEngine([f"http://127.0.0.1:{free_port()}/v1"], tokenizer, stop_token_ids(tokenizer))
    for engine, kind in ((thread, Engine), (process, EngineProcess), (remote, RemoteEngine)):
        assert isinstance(engine, EngineClient), kind.__name__
        assert isinstance(inspect.getattr_static(kind, "ready"), property), kind.__name__
        for name in METHODS:
            want, got = inspect.signature(getattr(EngineClient, name)), inspect.signature(getattr(kind, name))
            assert list(got.parameters.values())[:len(want.parameters)] == list(want.parameters.values()), \
                f"{kind.__name__}.{name}{got} against {want}"
            extra = list(got.parameters.values())[len(want.parameters):]
            assert all(p.default is not inspect.Parameter.empty for p in extra), f"{kind.__name__}.{name}{got}"
            assert got.return_annotation == want.return_annotation, f"{kind.__name__}.{name}"


def test_every_sampling_setting_goes_to_the_engine():
    params = GenerationParams(max_new_tokens=33, min_new_tokens=4, temperature=0.55, top_k=12, top_p=0.8,
                              repetition_penalty=1.3, seed=99)
    body = completion_body([5, 6, 7], params, "joey", {2, 0, 1}, None)
    assert body["prompt"] == [5, 6, 7] and body["model"] == "joey" and body["stream"] is True
    assert {k: body[k] for k in ("max_tokens", "min_tokens", "temperature", "top_k", "top_p", "repetition_penalty",
                                 "seed", "stop_token_ids")} == \
        {"max_tokens": 33, "min_tokens": 4, "temperature": 0.55, "top_k": 12, "top_p": 0.8,
         "repetition_penalty": 1.3, "seed": 99, "stop_token_ids": [0, 1, 2]}
    assert body["skip_special_tokens"] and body["return_token_ids"] and "stop" not in body
    # Ours: temperature <= 0 is greedy and top_k 0 keeps all; the OpenAI API's: 0 and -1.
    greedy = completion_body([1], GenerationParams(temperature=-1, top_k=0), "joey", set(), "\n")
    assert greedy["temperature"] == 0 and greedy["top_k"] == -1 and "seed" not in greedy
    assert greedy["stop"] == ["\n"]  # plain-text bases end a line with a newline


def test_stream_events_and_errors_parse():
    delta = parse_event('{"choices":[{"index":0,"text":"Hi","token_ids":[5,6],"finish_reason":null}]}')
    assert (delta.text, delta.token_ids, delta.finish_reason) == ("Hi", [5, 6], None)
    end = parse_event('{"choices":[{"text":"","token_ids":[2],"finish_reason":"stop","stop_reason":null}]}')
    assert end.finish_reason == "stop" and end.token_ids == [2]
    assert parse_event("[DONE]") is None
    from model.remote_api import StreamBroken

    with pytest.raises(StreamBroken, match="out of memory"):
        parse_event('{"error": {"message": "out of memory", "code": 500}}')


def test_text_without_token_ids_keeps_the_decoders_rules():
    stream = TextStream(limit=6, holdback=4)
    chunks = [stream.push_text(t) for t in (" Hey", " you.", " How", " you", " doin")]
    assert "".join(chunks) == "Hey you."  # the unfinished sentence waits near the limit
    assert stream.finish_at_sentence() == "" and len(stream) == 5
    whole = TextStream()  # text joined from several events comes out as one
    assert [whole.push_text(t) for t in ("caf", "é", " au", " lait")] == ["caf", "é", " au", " lait"]


def test_engine_urls_are_checked():
    assert base_urls(" http://a:8000/v1/ , https://b/v1") == ["http://a:8000/v1", "https://b/v1"]
    with pytest.raises(ValueError, match="http"):
        base_urls("a:8000/v1")


async def test_an_engine_that_is_not_there_is_not_ready_says_why_and_fails_requests_after_bounded_retries(tokenizer):
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens here
    settings = RemoteSettings(retries=2, retry_backoff_s=0.1, health_interval_s=0.1)
    engine = RemoteEngine([url], tokenizer, stop_token_ids(tokenizer), settings=settings)
    with pytest.raises(EngineError, match="not started"):
        engine.submit([1, 2], GenerationParams())
    await asyncio.to_thread(engine.start)
    try:
        assert not engine.ready and url in engine.reason and "does not answer" in engine.reason
        started = time.monotonic()
        reply = engine.submit([1, 2, 3], GenerationParams(max_new_tokens=5))
        with pytest.raises(EngineError, match=r"failed before the reply started.*after 3 tries"):
            async for _ in reply:
                pass
        assert time.monotonic() - started >= 0.1 + 0.2  # the backoff doubled between tries
        assert reply.finish_reason is FinishReason.ERROR and reply.tokens == 0
        stats = engine.stats()
        assert stats.requests_finished == {"error": 1} and stats.queue_depth == stats.active_batch == 0
    finally:
        engine.stop()
    assert not engine.running and "stopped" in engine.reason
