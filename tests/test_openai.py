"""The OpenAI-compatible API (issue 29): the official `openai` SDK against a real server on loopback.

The server is the real app under uvicorn with the tiny model (tests/conftest.py), ``openai=True``;
every request goes through the hub's session API, so the engine, admission and /metrics are
the ones the WebSocket clients use.
"""

from __future__ import annotations

import asyncio
import logging
import time

import httpx
import openai
import pytest

from tests.conftest import RunningServer, server_config, wait_until
from tests.test_server_metrics import scrape

HI = [{"role": "user", "content": "How you doin'?"}]
CANCELLED = "joey_replies_total{finish_reason=cancelled}"


def until_ready(server: RunningServer) -> RunningServer:
    """The API answers 503 until the engine has warmed up, as /readyz does; tests start after."""
    deadline = time.monotonic() + 60
    while not server.app.state.generator.ready:
        assert time.monotonic() < deadline, "the engine did not get ready"
        time.sleep(0.05)
    return server


@pytest.fixture(scope="module")
def server(tiny_model):
    with RunningServer(server_config(*tiny_model, openai=True)) as running:
        yield until_ready(running)


@pytest.fixture
def api_server(make_server):
    """Start servers with the API on and Config overrides, ready to answer."""
    return lambda **overrides: until_ready(make_server(openai=True, **overrides))


def sdk(server, **options) -> openai.OpenAI:
    # No keys on these servers: the SDK insists on one and the server ignores it on loopback.
    return openai.OpenAI(base_url=server.http + "/v1", api_key=options.pop("api_key", "none"), max_retries=0, **options)


def async_sdk(server) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.http + "/v1", api_key="none", max_retries=0)


def content(completion) -> str:
    return completion.choices[0].message.content


def left_nothing_behind(server, within_s: float = 5.0) -> bool:
    """No session of a request outlives it, and no reply runs (a cancelled one ends on the server's loop,
    a moment after the response)."""
    deadline = time.monotonic() + within_s
    while server.hub.replies or server.hub.sessions:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_models_lists_joey_and_an_unknown_model_is_not_found(server):
    client = sdk(server)
    assert [m.id for m in client.models.list()] == ["joey"]
    assert client.models.retrieve("joey").owned_by == "joey-chat"
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=HI)
    assert (caught.value.code, caught.value.param, caught.value.type) == ("model_not_found", "model",
                                                                          "invalid_request_error")
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")


def test_a_completion_carries_the_reply_and_its_usage(server):
    reply = sdk(server).chat.completions.create(model="joey", messages=HI)
    assert reply.object == "chat.completion" and reply.model == "joey" and reply.id.startswith("chatcmpl-")
    choice = reply.choices[0]
    assert choice.message.role == "assistant" and choice.message.content and choice.finish_reason in ("stop", "length")
    assert reply.usage.completion_tokens >= 1 and reply.usage.prompt_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    assert left_nothing_behind(server)


def test_a_stream_opens_with_the_role_and_ends_with_the_finish_reason_then_the_usage(server):
    client = sdk(server)
    chunks = list(client.chat.completions.create(model="joey", messages=HI, stream=True,
                                                 stream_options={"include_usage": True}))
    assert {c.object for c in chunks} == {"chat.completion.chunk"} and len({c.id for c in chunks}) == 1
    first, *middle, last, usage = chunks
    assert first.choices[0].delta.role == "assistant"
    assert all(c.choices[0].finish_reason is None for c in (first, *middle))
    assert last.choices[0].finish_reason in ("stop", "length") and not last.choices[0].delta.content
    assert usage.choices == [] and usage.usage.completion_tokens >= 1 and usage.usage.prompt_tokens > 0
    streamed = "".join(c.choices[0].delta.content or "" for c in (first, *middle))
    # The server samples greedily (temperature 0): the same question, the same answer, either way.
    assert streamed == content(client.chat.completions.create(model="joey", messages=HI))
    assert left_nothing_behind(server)


def test_the_wire_is_server_sent_events_ending_with_done(server):
    body = {"model": "joey", "messages": HI, "stream": True}
    with httpx.stream("POST", server.http + "/v1/chat/completions", json=body, timeout=30) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        raw = response.read().decode()
    events = [e for e in raw.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"
    assert '"usage"' not in raw  # only stream_options.include_usage asks for it


def test_max_tokens_is_honoured_and_capped_by_the_servers_limit(server):
    client = sdk(server)
    short = client.chat.completions.create(model="joey", messages=HI, max_tokens=3)
    assert short.usage.completion_tokens <= 3
    assert short.choices[0].finish_reason == "length" or short.usage.completion_tokens < 3
    long = client.chat.completions.create(model="joey", messages=HI, max_completion_tokens=100_000)
    assert long.usage.completion_tokens <= server.config.max_new_tokens


def test_a_stop_sequence_cuts_the_reply_before_it_whole_or_streamed(server):
    client = sdk(server)
    messages = [{"role": "user", "content": "Tell me about sandwiches"}]
    full = content(client.chat.completions.create(model="joey", messages=messages))
    assert len(full) >= 6, full
    stop = full[len(full) // 2:len(full) // 2 + 3]
    expected = full[:full.find(stop)]
    cut = client.chat.completions.create(model="joey", messages=messages, stop=[stop, "never said"])
    assert content(cut) == expected and cut.choices[0].finish_reason == "stop"
    assert 0 < cut.usage.completion_tokens
    chunks = list(client.chat.completions.create(model="joey", messages=messages, stop=stop, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == expected
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert left_nothing_behind(server)


def test_the_same_seed_samples_the_same_reply(server):
    client = sdk(server)
    asks = [client.chat.completions.create(model="joey", messages=HI, temperature=1.2, top_p=0.95, seed=1234)
            for _ in range(2)]
    assert content(asks[0]) == content(asks[1])


async def test_a_growing_conversation_is_served_from_the_prefix_cache(server):
    """Each request re-sends the conversation; the engine copies what it saw instead of computing it."""
    client, history, reused = sdk(server), [], []
    for text in ("Ross, is that a new sweater?", "Did Monica cook the turkey?", "Who ate my sandwich?"):
        history.append({"role": "user", "content": text, "name": "Ross"})
        before = (await scrape(server))["joey_engine_prefix_reused_tokens_total"]
        reply = client.chat.completions.create(model="joey", messages=history, max_tokens=8)
        history.append({"role": "assistant", "content": content(reply)})
        reused.append((await scrape(server))["joey_engine_prefix_reused_tokens_total"] - before)
    # The first reuses the system prompt only; each next one, the whole exchange before it too.
    assert reused[0] < reused[1] < reused[2], reused


@pytest.mark.parametrize("extra, param, code", [
    ({"n": 2}, "n", "unsupported_value"),
    ({"tools": [{"type": "function", "function": {"name": "order_pizza", "parameters": {}}}]}, "tools",
     "unsupported_parameter"),
    ({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "Who is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]},
     "messages[0].content[1]", "unsupported_content"),
    ({"messages": [{"role": "user", "content": "Hi"}, {"role": "tool", "content": "42", "tool_call_id": "x"}]},
     "messages[1]", "unsupported_parameter"),
    ({"response_format": {"type": "json_object"}}, "response_format", "unsupported_parameter"),
    ({"temperature": 3}, "temperature", "invalid_value"),
])
def test_what_joey_does_not_do_is_a_clear_bad_request(server, extra, param, code):
    request = {"model": "joey", "messages": HI, **extra}
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(server).chat.completions.create(**request)
    assert (caught.value.param, caught.value.code, caught.value.type) == (param, code, "invalid_request_error")
    assert caught.value.message


def test_keys_are_required_compared_and_never_shown(api_server, caplog):
    caplog.set_level(logging.DEBUG)
    server = api_server(openai_keys="first-key-0123456789,second-key-0123456789")
    with pytest.raises(openai.AuthenticationError) as caught:
        sdk(server, api_key="wrong-key-0123456789").chat.completions.create(model="joey", messages=HI)
    assert caught.value.code == "invalid_api_key"
    missing = httpx.get(server.http + "/v1/models")
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "missing_api_key"
    reply = sdk(server, api_key="second-key-0123456789").chat.completions.create(model="joey", messages=HI)
    assert content(reply)
    shown = caplog.text + httpx.get(server.http + "/metrics").text
    assert "key-0123456789" not in shown


def test_too_many_requests_from_one_caller_is_a_rate_limit_with_retry_after(api_server):
    server = api_server(openai_rate_limit_messages=2, max_new_tokens=5)
    client = sdk(server)
    for _ in range(2):
        client.chat.completions.create(model="joey", messages=HI)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="joey", messages=HI)
    assert caught.value.code == "rate_limited" and int(caught.value.response.headers["retry-after"]) >= 1
    assert left_nothing_behind(server)


@pytest.fixture
def talkative(api_server):
    """Replies of 200 tokens, one engine slot and no queue: long enough to act on one while it streams."""
    return api_server(min_new_tokens=200, max_new_tokens=200, max_batch=1, max_queued_replies=0)


async def test_a_full_engine_queue_is_a_rate_limit_too_and_a_closed_stream_frees_the_slot(talkative):
    server, engine = talkative, talkative.app.state.generator.engine
    client = sdk(server)
    before = (await scrape(server)).get(CANCELLED, 0)
    stream = client.chat.completions.create(model="joey", messages=HI, stream=True)
    chunks = iter(stream)
    next(chunks), next(chunks)  # the role, then text: the reply holds the one slot
    with pytest.raises(openai.RateLimitError) as caught:  # the hub's admission: same queue bound as /ws
        client.chat.completions.create(model="joey", messages=HI)
    assert caught.value.code == "server_busy" and int(caught.value.response.headers["retry-after"]) >= 1
    assert engine.active == 1
    stream.close()  # the client goes away mid-stream
    assert await wait_until(lambda: engine.active == 0 and left_nothing_behind(server), timeout=3)
    assert (await scrape(server))[CANCELLED] == before + 1
    assert content(client.chat.completions.create(model="joey", messages=HI, max_tokens=5))  # and carries on


def test_one_callers_replies_in_flight_are_capped_like_an_addresss(api_server):
    server = api_server(min_new_tokens=200, max_new_tokens=200, max_batch=4, max_replies_per_client=1)
    client = sdk(server)
    stream = client.chat.completions.create(model="joey", messages=HI, stream=True)
    chunks = iter(stream)
    next(chunks), next(chunks)  # its one reply in flight streams
    with pytest.raises(openai.RateLimitError) as caught:  # though the engine has slots free
        client.chat.completions.create(model="joey", messages=HI)
    assert caught.value.code == "server_busy" and int(caught.value.response.headers["retry-after"]) >= 1
    stream.close()


async def test_a_client_that_stops_waiting_for_a_whole_completion_cancels_it(talkative):
    server = talkative
    before = (await scrape(server)).get(CANCELLED, 0)
    # On a quiet machine the tiny model may finish 200 tokens before a patient client gives up:
    # such a completion is simply answered, and a less patient client tries next.
    for timeout in (0.3, 0.1, 0.03):
        try:
            sdk(server, timeout=timeout).chat.completions.create(model="joey", messages=HI)
        except openai.APITimeoutError:
            break
    else:
        pytest.fail("every completion finished before its client gave up")
    assert await wait_until(lambda: left_nothing_behind(server), timeout=3)
    assert (await scrape(server))[CANCELLED] == before + 1


async def test_many_streaming_clients_share_the_engines_batch(api_server):
    server = api_server(max_batch=8, min_new_tokens=40, max_new_tokens=40, max_replies_per_client=12)
    engine, client, peak = server.app.state.generator.engine, async_sdk(server), 0

    async def watch():
        nonlocal peak
        while True:
            peak = max(peak, engine.active)
            await asyncio.sleep(0.002)

    async def ask(i: int) -> tuple[str, str]:
        stream = await client.chat.completions.create(
            model="joey", messages=[{"role": "user", "content": f"Pizza number {i}?"}], stream=True)
        parts, finish = [], None
        async for chunk in stream:
            parts.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
        return "".join(parts), finish

    watcher = asyncio.create_task(watch())
    try:
        results = await asyncio.gather(*(ask(i) for i in range(12)))
    finally:
        watcher.cancel()
    assert all(text and finish == "length" for text, finish in results), results
    assert peak >= 2  # decoded together, in one batch
    assert await wait_until(lambda: left_nothing_behind(server))
