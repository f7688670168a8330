"""The hub streaming from a real vLLM server (vLLM for CPUs, var/vllm-venv, scripts/setup_vllm.sh)
serving SmolLM2 with the shipped Joey LoRA as model ``joey`` on a loopback port.

One vLLM per module, started once (it takes half a minute or more on two cores): the first test
starts it after the hub, which waits for it, and the last kills it mid-reply. The one fault a real vLLM will not show on demand, 429/503, comes
from a relay in front of it that refuses the first requests and relays the rest.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import time

import httpx
import pytest

from backend.config import Config
from bench.process import free_port
from bench.vllm_server import ADAPTER, BASE, VllmServer, installed
from model.engine_options import EngineOptions
from model.generator import JoeyGenerator
from model.prompt import Turn, build_prompt, stop_token_ids
from model.remote import RemoteEngine
from model.remote_api import completion_body
from model.remote_pool import RemoteSettings
from model.reply import EngineError, FinishReason
from model.sampling import GenerationParams
from tests.conftest import ROOT, RunningServer, connect
from tests.http_relay import Relay

GREEDY = GenerationParams(max_new_tokens=40, temperature=0.0, repetition_penalty=1.0)
# Long enough to outlast a slow CI machine's checks (sheet + 1500 tokens fits vLLM's 2048 context).
LONG = GenerationParams(max_new_tokens=1500, min_new_tokens=1500, temperature=0.0, repetition_penalty=1.0)
PROMPTS = ["Joey, do you want some pizza?", "How you doin'?", "What's your favourite food?",
           "Did you eat my sandwich?", "Can you help me move this couch?", "Are you going to the audition tomorrow?",
           "Tell me about Days of Our Lives.", "Do you share food?"]
# Greedy tolerance, in logits: vLLM (bf16 where the CPU has it) and the fp32 reference round
# differently, so where two tokens are this close either engine may take either.
TOLERANCE = 0.5


@pytest.fixture(scope="module")
def vllm():
    if not installed():
        if os.environ.get("CI"):
            pytest.fail("vLLM is not installed: scripts/setup.sh test runs scripts/setup_vllm.sh (var/vllm-setup.log)")
        pytest.skip("vLLM is not installed: run bash scripts/setup_vllm.sh")
    server = VllmServer(free_port())  # started by the first test that needs it
    yield server
    server.close()


def up(vllm: VllmServer) -> VllmServer:
    if not vllm.alive:
        vllm.start()
    return vllm


def remote_config(url: str, **overrides) -> Config:
    config = Config(engine_url=url, port=free_port(), web_root=str(ROOT / "frontends" / "web"), state_path="",
                    temperature=0.0, repetition_penalty=1.0, engine_health_interval_s=0.25,
                    engine_retry_backoff_s=0.1)
    return dataclasses.replace(config, **overrides)


def remote_generator(*urls: str, sentence_holdback: int = 16, context: int = 1024, **settings) -> JoeyGenerator:
    return JoeyGenerator.remote(list(urls), str(BASE), EngineOptions(context=context, sentence_holdback=sentence_holdback),
                                settings=RemoteSettings(**settings))


async def until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(predicate):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


async def text_of(reply) -> str:
    return "".join([chunk async for chunk in reply])


# --- the engine down at start, then dying mid-reply: first, so its starts serve the module --------
async def test_the_hub_waits_for_its_engine_and_answers_once_it_is_up(vllm):
    vllm.stop()  # not started yet: the hub starts first
    config = remote_config(vllm.url, max_new_tokens=40, min_new_tokens=40, engine_retries=1)
    with RunningServer(config) as server:
        async with httpx.AsyncClient(base_url=server.http) as http:
            ready = await http.get("/readyz")
            reason = ready.json()["engine"]["reason"]
            assert ready.status_code == 503 and vllm.url in reason and "does not answer" in reason
            await asyncio.to_thread(vllm.start)
            assert await until(lambda: httpx.get(f"{server.http}/readyz").status_code == 200, 5)
            async with connect(server.url) as c:
                await c.open(name="Rachel")
                first, _ = await c.ask("Joey, do you want some pizza?", "m1")
                assert first["finish_reason"] == "length" and first["tokens"] == 40 and first["text"]
                # Nothing is answered twice: a resent id gets its first answer, and vLLM no new request.
                await c.send(type="message", id="m1", text="Joey, do you want some pizza?")
                again, frames = await c.until("reply_end")
                assert again["text"] == first["text"] and not [f for f in frames if f["type"] == "chunk"]
                assert server.app.state.generator.stats().requests_finished == {"length": 1}


# --- the same prompt, the same replies -------------------------------------------------------------
async def test_greedy_replies_from_vllm_equal_ours_except_at_near_ties(vllm):
    import torch

    from model.loading import load_merged

    up(vllm)
    # No sentence holdback: each text is then exactly its tokens, cut by the limit or not.
    remote = remote_generator(vllm.url, sentence_holdback=0)
    ours = JoeyGenerator.from_preset("smollm2", options=EngineOptions(context=1024, max_batch=len(PROMPTS), threads=1,
                                                                      sentence_holdback=0, process=False))
    remote.start(), ours.start()
    try:
        assert await asyncio.to_thread(ours.engine.wait_ready, 300)
        turns = [[Turn("Ross", text)] for text in PROMPTS]
        theirs = await asyncio.gather(*(text_of(remote.stream(t, GREEDY)) for t in turns))
        mine = await asyncio.gather(*(text_of(ours.stream(t, GREEDY)) for t in turns))
    finally:
        remote.stop(), ours.stop()
    reference, tokenizer = load_merged(str(BASE), str(ADAPTER))  # fp32, the adapter merged
    async with httpx.AsyncClient(timeout=120) as http:
        for turn, their_text, my_text in zip(turns, theirs, mine):
            prompt = build_prompt(tokenizer, turn, 1024 - GREEDY.max_new_tokens - 1)
            body = {**completion_body(prompt, GREEDY, "joey", stop_token_ids(tokenizer), None), "stream": False}
            del body["stream_options"]
            ids = (await http.post(f"{vllm.url}/completions", json=body)).json()["choices"][0]["token_ids"]
            assert tokenizer.decode(ids, skip_special_tokens=True).lstrip() == their_text
            with torch.inference_mode():
                logits = reference(torch.tensor([prompt + ids])).logits[0, len(prompt) - 1:-1]
            best = logits.max(dim=1).values
            # Every token vLLM chose is the reference's best, or within the tolerance of it.
            assert (best - logits[range(len(ids)), ids]).max().item() <= TOLERANCE, their_text
            if their_text != my_text:
                # Where ours differs, the reference had a near-tie at or before the first token
                # whose text is not in ours.
                k = next(i for i in range(len(ids))
                         if not my_text.startswith(tokenizer.decode(ids[:i + 1], skip_special_tokens=True).lstrip()))
                top2 = logits[:k + 1].topk(2, dim=1).values
                assert (top2[:, 0] - top2[:, 1]).min().item() <= TOLERANCE, (their_text, my_text)
    # Most are equal outright (all but one where both run bf16; fewer against our fp32 on a CPU without bf16).
    assert sum(a == b for a, b in zip(theirs, mine)) >= 3, list(zip(theirs, mine))


async def test_every_sampling_setting_reaches_vllm(vllm):
    up(vllm)
    gen = remote_generator(vllm.url)
    gen.start()
    try:
        # top_k 1, or a tiny top_p, leaves one token to draw, whatever the temperature and the
        # seed: every narrowed draw is the same text, where a draw at T=1.5 from the whole
        # vocabulary would differ. (Compared with each other, not with greedy: vLLM's sampler and
        # its argmax round apart where the greedy path has a near-tie.)
        turns = [Turn("Ross", "Do you share food?")]
        # Six tokens: later, bf16 near-ties in the sheet's echo may round either way between runs.
        short = dataclasses.replace(GREEDY, temperature=1.5, max_new_tokens=6, min_new_tokens=6)
        narrowed = {await text_of(gen.stream(turns, dataclasses.replace(short, seed=seed, **narrow)))
                    for seed, narrow in ((1, dict(top_k=1, top_p=1.0)), (2, dict(top_k=1, top_p=1.0)),
                                         (3, dict(top_k=0, top_p=0.01)))}
        assert len(narrowed) == 1
        # The sheet names the show, so its greedy answer repeats the sheet's words: a strong
        # penalty (vLLM's counts the prompt too) must steer the reply elsewhere.
        turns = [Turn("Ross", "Tell me about Days of Our Lives.")]
        plain = await text_of(gen.stream(turns, GREEDY))
        penalised = await text_of(gen.stream(turns, dataclasses.replace(GREEDY, repetition_penalty=1.5)))
        assert "Days of Our Lives" in plain and penalised != plain
        seeded = GenerationParams(max_new_tokens=24, temperature=1.0, top_k=50, top_p=0.95, seed=7)
        assert await text_of(gen.stream(turns, seeded)) == await text_of(gen.stream(turns, seeded))
        exact = gen.stream(turns, dataclasses.replace(GREEDY, max_new_tokens=10, min_new_tokens=10))
        await text_of(exact)
        assert exact.finish_reason is FinishReason.LENGTH and exact.tokens == 10
        at_least = gen.stream([Turn("Ross", "Do you share food?")], dataclasses.replace(GREEDY, min_new_tokens=20))
        await text_of(at_least)
        assert at_least.tokens >= 20
    finally:
        gen.stop()


# --- through the hub: a chat, its metrics, and a cancel that frees vLLM's slot ----------------------
async def test_a_chat_through_the_hub_streams_from_vllm_and_cancel_frees_its_request(vllm):
    up(vllm)
    with RunningServer(remote_config(vllm.url, max_new_tokens=40, min_new_tokens=40)) as server:
        async with httpx.AsyncClient(base_url=server.http) as http:
            assert (await http.get("/readyz")).status_code == 200
            async with connect(server.url) as c:
                await c.open(name="Ross")
                end, frames = await c.ask("Joey, do you want some pizza?", "m1")
                chunks = [f["text"] for f in frames if f["type"] == "chunk"]
                assert len(chunks) > 1 and "".join(chunks) == end["text"] and end["tokens"] == 40
                again, _ = await c.ask("Are you sure?", "m2")
                assert again["text"]
                assert vllm.metric("vllm:num_requests_running") == 0
            metrics = (await http.get("/metrics")).text
    assert "joey_engine_time_to_first_token_seconds_count 2.0" in metrics
    generated = re.search(r"^joey_engine_tokens_generated_total (\S+)$", metrics, re.M)
    assert float(generated.group(1)) == 80
    # A reply long enough to be cancelled mid-way on any machine (vLLM's own 2048-token context).
    long = remote_config(vllm.url, max_new_tokens=LONG.max_new_tokens, min_new_tokens=LONG.min_new_tokens,
                         context_tokens=2048)
    generated = vllm.metric("vllm:generation_tokens_total")
    with RunningServer(long) as server:
        async with httpx.AsyncClient(base_url=server.http) as http:
            async with connect(server.url) as c:
                await c.open(name="Ross")
                cancelled, frames = await c.while_streaming("Tell me a long story about your acting.", "m3", type="cancel")
                assert cancelled["finish_reason"] == "cancelled" and cancelled["tokens"] < LONG.max_new_tokens, frames
                # vLLM stopped the request: it runs nothing, and made far fewer than the 1500 tokens asked.
                assert await until(lambda: vllm.metric("vllm:num_requests_running") == 0, 10)
                stopped = vllm.metric("vllm:generation_tokens_total")
                await asyncio.sleep(1)
                assert vllm.metric("vllm:generation_tokens_total") == stopped < generated + LONG.max_new_tokens
            metrics = (await http.get("/metrics")).text
    assert 'joey_replies_total{finish_reason="cancelled"} 1.0' in metrics


# --- overload: retried with backoff before the first token, then a clear error ---------------------
async def test_429_and_503_are_retried_with_backoff_then_fail_clearly(vllm):
    up(vllm)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(BASE))
    prompt = build_prompt(tokenizer, [Turn("Ross", "How you doin'?")], 900)
    with Relay(vllm.url.removesuffix("/v1"), refuse=[(429, "0"), (503, None)]) as relay:
        engine = RemoteEngine([relay.url], tokenizer, stop_token_ids(tokenizer),
                              settings=RemoteSettings(retries=2, retry_backoff_s=0.3))
        await asyncio.to_thread(engine.start)
        try:
            started = time.monotonic()
            reply = engine.submit(prompt, GREEDY)
            assert await text_of(reply) and reply.finish_reason is FinishReason.STOP
            # 429 said "retry after 0 s"; the 503 said nothing, so the second backoff (2 x 0.3 s) ran.
            assert time.monotonic() - started >= 0.6
            assert (relay.refused, relay.relayed) == (2, 1)  # one real request: nothing answered twice
            relay.refuse = [(503, None)] * 3
            failed = engine.submit(prompt, GREEDY)
            with pytest.raises(EngineError, match=r"answered 503: overloaded \(after 3 tries\)"):
                await text_of(failed)
            assert (relay.refused, relay.relayed) == (5, 1)
            assert engine.stats().requests_finished == {"stop": 1, "error": 1}
        finally:
            engine.stop()


# --- several engines: each request to the one with the fewest in flight ----------------------------
async def test_two_engine_urls_share_the_load_by_requests_in_flight(vllm):
    up(vllm)
    with Relay(vllm.url.removesuffix("/v1")) as relay:  # a second URL, to the same vLLM
        gen = remote_generator(relay.url, vllm.url, context=2048, health_interval_s=0.25)  # vLLM's own context
        gen.start()
        try:
            first = gen.stream([Turn("Ross", "Tell me a long story.")], LONG)
            await first.__anext__()
            first_relayed = relay.relayed  # 1 if it went through the relay, else 0
            short = gen.stream([Turn("Ross", "Hi!")], dataclasses.replace(GREEDY, max_new_tokens=4))
            await text_of(short)  # one request each while both ran; now the second engine is idle
            third = gen.stream([Turn("Monica", "Tell me another long story.")], LONG)
            await third.__anext__()
            # The third went to the idle engine, where the short one went, not round to the first's.
            assert relay.relayed == first_relayed + 2 * (1 - first_relayed)
            assert relay.open == 1 and await until(lambda: vllm.metric("vllm:num_requests_running") == 2)
            assert gen.stats().active_batch == 2
            await first.aclose(), await third.aclose()
            assert await until(lambda: vllm.metric("vllm:num_requests_running") == 0, 5) and relay.open == 0
        finally:
            gen.stop()


# --- last, because it leaves vLLM dead (a restart costs half a minute) -----------------------------
async def test_a_reply_cut_by_the_engines_death_fails_cleanly_and_readyz_says_why(vllm):
    up(vllm)
    with RunningServer(remote_config(vllm.url, max_new_tokens=40, min_new_tokens=40, engine_retries=1)) as server:
        async with httpx.AsyncClient(base_url=server.http) as http:
            async with connect(server.url) as c:
                session = await c.open(name="Rachel")
                await c.streaming("Tell me about your acting career.", "m2")
                await asyncio.to_thread(vllm.kill)
                error, _ = await c.until("error")
                assert error["code"] == "model_error" and error["message_id"] == "m2"
                cut, _ = await c.until("reply_end")
                assert cut["message_id"] == "m2" and cut["finish_reason"] == "error"
                ready = await http.get("/readyz")
                assert ready.status_code == 503 and vllm.url in ready.json()["engine"]["reason"]
                assert server.app.state.generator.stats().requests_finished == {"error": 1}
        history = server.hub.sessions[session["session_id"]].history
        assert [turn["text"] for turn in history if turn["role"] != "joey"] == ["Tell me about your acting career."]
