"""Hostile input to the OpenAI-compatible API: each gets a clear 4xx in OpenAI's error shape, and
the server carries on (no session, reply or engine slot is left behind)."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.conftest import RunningServer, server_config
from tests.test_openai import HI, content, left_nothing_behind, sdk, until_ready


@pytest.fixture(scope="module")
def server(tiny_model):
    with RunningServer(server_config(*tiny_model, openai=True, max_new_tokens=8)) as running:
        yield until_ready(running)


def post(server, body: bytes | str, **headers) -> httpx.Response:
    return httpx.post(server.http + "/v1/chat/completions", content=body, timeout=30,
                      headers={"content-type": "application/json", **headers})


def error_of(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    return error


def carries_on(server) -> None:
    assert left_nothing_behind(server)
    assert content(sdk(server).chat.completions.create(model="joey", messages=HI))


@pytest.mark.parametrize("body, param, code", [
    ("{not json", None, "invalid_json"),
    ('{"model": "joey", "messages": [', None, "invalid_json"),
    ("[1, 2, 3]", None, "invalid_json"),
    ('{"model": "joey", "messages": [{"role": "user", "content": "Hi"}], "temperature": NaN}', None, "invalid_json"),
    ("[" * 100_000 + "]" * 100_000, None, "invalid_json"),
    ("{}", "model", "missing_required_parameter"),
    ('{"model": "joey"}', "messages", "missing_required_parameter"),
    ('{"model": 7, "messages": []}', "model", "invalid_type"),
    ('{"model": "joey", "messages": "Hi"}', "messages", "invalid_type"),
    ('{"model": "joey", "messages": []}', "messages", "invalid_value"),
    ('{"model": "joey", "messages": ["Hi"]}', "messages[0]", "invalid_type"),
    ('{"model": "joey", "messages": [{"content": "Hi"}]}', "messages[0].role", "missing_required_parameter"),
    ('{"model": "joey", "messages": [{"role": "user", "content": 5}]}', "messages[0].content", "invalid_type"),
    ('{"model": "joey", "messages": [{"role": "user", "content": [{"type": "text"}]}]}', "messages[0].content[0].text",
     "missing_required_parameter"),
    ('{"model": "joey", "messages": [{"role": "user", "content": "Hi", "name": ""}]}', "messages[0].name",
     "invalid_value"),
    ('{"model": "joey", "messages": [{"role": "user", "content": "\\ud800"}]}', "messages[0].content", "invalid_value"),
    ('{"model": "joey", "messages": [{"role": "user", "content": "Hi"}], "stream": "yes"}', "stream", "invalid_type"),
    ('{"model": "joey", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": true}', "max_tokens",
     "invalid_type"),
    ('{"model": "joey", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 0}', "max_tokens",
     "invalid_value"),
    ('{"model": "joey", "messages": [{"role": "user", "content": "Hi"}], "temperature": "hot"}', "temperature",
     "invalid_type"),
    ('{"model": "joey", "messages": [{"role": "user", "content": "Hi"}], "top_p": 1.5}', "top_p", "invalid_value"),
    ('{"model": "joey", "messages": [{"role": "user", "content": "Hi"}], "seed": 1e30}', "seed", "invalid_type"),
    ('{"model": "joey", "messages": [{"role": "user", "content": "Hi"}], "stop": [1]}', "stop[0]", "invalid_type"),
    ('{"model": "joey", "messages": [{"role": "user", "content": "Hi"}], "stop": ["a", "b", "c", "d", "e"]}', "stop",
     "invalid_value"),
    ('{"model": "joey", "messages": [{"role": "user", "content": "Hi"}], "stream_options": []}', "stream_options",
     "invalid_type"),
    ('{"model": "joey", "messages": [{"role": "user", "content": "Hi"}], "n": 0}', "n", "unsupported_value"),
    ('{"model": "joey", "messages": [{"role": "assistant", "content": "Hey"}]}', "messages", "invalid_value"),
    ('{"model": "joey", "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hey"}]}',
     "messages[1]", "invalid_value"),
    ('{"model": "joey", "messages": [{"role": "user", "content": "   "}]}', "messages[0].content", "invalid_value"),
])
def test_malformed_json_and_wrong_types_are_400s_naming_the_field(server, body, param, code):
    error = error_of(post(server, body), 400)
    assert (error["param"], error["code"], error["type"]) == (param, code, "invalid_request_error")


def test_an_unknown_role_is_a_bad_request_through_the_sdk(server):
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(server).chat.completions.create(model="joey", messages=[{"role": "wizard", "content": "Abracadabra"}])
    assert caught.value.param == "messages[0].role" and "wizard" in caught.value.message
    carries_on(server)


def test_a_10_mb_body_is_413_and_the_server_carries_on(server):
    with pytest.raises(openai.APIStatusError) as caught:
        sdk(server).chat.completions.create(model="joey", messages=[{"role": "user", "content": "x" * 10_000_000}])
    assert caught.value.status_code == 413 and caught.value.code == "request_too_large"
    huge = post(server, b'{"model": "joey", "messages": [' + b" " * 10_000_000 + b"]}")
    assert error_of(huge, 413)["code"] == "request_too_large"
    carries_on(server)


def test_10000_messages_are_413_too_many_messages(server):
    messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"line {i}"} for i in range(10_001)]
    with pytest.raises(openai.APIStatusError) as caught:
        sdk(server).chat.completions.create(model="joey", messages=messages)
    assert caught.value.status_code == 413 and caught.value.code == "too_many_messages"
    carries_on(server)


def test_an_overlong_message_is_413_message_too_long(server):
    limit = server.config.max_message_chars
    error = error_of(post(server, json.dumps({"model": "joey", "messages": [
        {"role": "user", "content": "y" * (limit + 1)}]})), 413)
    assert (error["code"], error["param"]) == ("message_too_long", "messages[0].content")
    earlier = "z" * (server.config.openai_max_message_chars + 1)
    error = error_of(post(server, json.dumps({"model": "joey", "messages": [
        {"role": "system", "content": earlier}, {"role": "user", "content": "Hi"}]})), 413)
    assert (error["code"], error["param"]) == ("message_too_long", "messages[0].content")


def test_unknown_paths_and_methods_answer_in_the_same_shape(server):
    assert error_of(httpx.post(server.http + "/v1/embeddings", json={}), 404)["code"] == "unknown_url"
    assert error_of(httpx.get(server.http + "/v1/chat/completions"), 405)["code"] == "method_not_allowed"


def test_without_keys_a_foreign_host_or_page_is_refused(server):
    """DNS rebinding (an attacker's name in Host) and cross-site pages may not drive a local Joey."""
    rebound = httpx.get(server.http + "/v1/models", headers={"host": "evil.example:8000"})
    assert error_of(rebound, 403)["code"] == "origin_not_allowed"
    cross_site = post(server, json.dumps({"model": "joey", "messages": HI}), origin="http://evil.example")
    assert error_of(cross_site, 403)["type"] == "permission_error"
    carries_on(server)


def test_a_stream_of_bad_requests_leaves_the_server_serving(server):
    for _ in range(50):
        post(server, "{bad")
        post(server, '{"model": "joey", "messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}')
    metrics = httpx.get(server.http + "/metrics").text
    assert 'joey_errors_total{code="invalid_json"}' in metrics
    carries_on(server)
