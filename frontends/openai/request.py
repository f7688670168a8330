"""A chat-completions request body, read and checked field by field into a :class:`ChatRequest`.

Each field is checked for its JSON type and range, and a wrong one is refused with a 400 naming
it in ``param`` (``messages[3].content``), the way OpenAI's own API answers. What Joey cannot do
(``n`` > 1, tools, images, audio, log probabilities, JSON output) is refused by name, never
silently ignored; fields this server does not know are ignored, as OpenAI-compatible servers do,
because clients send their own extensions (SillyTavern's ``top_k``, Open WebUI's ``metadata``).
Size limits are 413s: the number of messages, and each message's length.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from backend.config import Config
from backend.protocol import encodable
from frontends.openai.errors import bad_request, too_large

ROLES = ("system", "developer", "user", "assistant")  # developer is the newer name of system
TOOL_ROLES = ("tool", "function")
MAX_STOPS = 4  # OpenAI's own limit
MAX_STOP_CHARS = 64
INT64 = 2**63


@dataclass(frozen=True)
class Message:
    role: str  # system, user or assistant (developer is read as system)
    text: str
    name: str | None = None


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: tuple[Message, ...]
    stream: bool = False
    include_usage: bool = False
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    user: str | None = None


def parse_chat_request(body: bytes, config: Config) -> ChatRequest:
    """The request in ``body``, or an APIError (400 or 413) saying what is wrong with it."""
    obj = _json(body)
    model = _get(obj, "model", str, required=True)
    messages = _messages(_get(obj, "messages", list, required=True), config)
    n = _get(obj, "n", int)
    if n is not None and n != 1:
        raise bad_request("Joey gives one answer per request: n must be 1", "unsupported_value", "n")
    _refuse_unsupported(obj)
    options = _get(obj, "stream_options", dict) or {}
    for param in ("max_tokens", "max_completion_tokens"):  # the newer name wins where both come
        if (value := _get(obj, param, int)) is not None and value < 1:
            raise bad_request(f"'{param}' must be at least 1", "invalid_value", param)
    limit = obj.get("max_completion_tokens") or obj.get("max_tokens")
    temperature = _number(obj, "temperature", 0.0, 2.0)
    top_p = _number(obj, "top_p", 0.0, 1.0)
    for penalty in ("presence_penalty", "frequency_penalty"):  # accepted, not applied (docs/openai.md)
        _number(obj, penalty, -2.0, 2.0)
    seed = _get(obj, "seed", int)
    if seed is not None and not -INT64 <= seed < INT64:
        raise bad_request("seed must fit in 64 bits", "invalid_value", "seed")
    return ChatRequest(model=model, messages=messages, stream=bool(_get(obj, "stream", bool)),
                       include_usage=bool(_get(options, "include_usage", bool, param="stream_options.include_usage")),
                       max_tokens=limit, temperature=temperature, top_p=top_p, seed=seed, stop=_stops(obj),
                       user=_get(obj, "user", str))


def _json(body: bytes) -> dict:
    try:
        obj = json.loads(body, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser's stack
        raise bad_request("the request body is not valid JSON", "invalid_json") from None
    if not isinstance(obj, dict):
        raise bad_request("the request body must be a JSON object", "invalid_json")
    return obj


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")  # NaN and Infinity: Python reads them, JSON has none


_JSON_TYPE = {str: "a string", int: "an integer", bool: "a boolean", list: "an array", dict: "an object",
              (int, float): "a number"}


def _get(obj: dict, name: str, kind, required: bool = False, param: str | None = None):
    """``obj[name]`` if it has JSON type ``kind`` (null counts as absent), else a 400 naming it."""
    param = param or name
    value = obj.get(name)
    if value is None:
        if required:
            raise bad_request(f"'{param}' is required", "missing_required_parameter", param)
        return None
    # bool is an int to Python, never to JSON
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise bad_request(f"'{param}' must be {_JSON_TYPE[kind]}", "invalid_type", param)
    if isinstance(value, str) and not encodable(value):
        # JSON may escape a lone surrogate ("\ud800"); no tokenizer or UTF-8 peer can hold one.
        raise bad_request(f"'{param}' is not valid Unicode (a lone surrogate)", "invalid_value", param)
    return value


def _number(obj: dict, name: str, low: float, high: float) -> float | None:
    value = _get(obj, name, (int, float))
    if value is not None and not low <= value <= high:
        raise bad_request(f"'{name}' must be between {low:g} and {high:g}", "invalid_value", name)
    return None if value is None else float(value)


def _stops(obj: dict) -> tuple[str, ...]:
    stop = obj.get("stop")
    stops = [stop] if isinstance(stop, str) else _get(obj, "stop", list) or []
    if len(stops) > MAX_STOPS:
        raise bad_request(f"at most {MAX_STOPS} stop sequences", "invalid_value", "stop")
    for i, text in enumerate(stops):
        if not isinstance(text, str) or not encodable(text):
            raise bad_request("'stop' must be a string or an array of strings", "invalid_type", f"stop[{i}]")
        if not 0 < len(text) <= MAX_STOP_CHARS:
            raise bad_request(f"a stop sequence must be 1 to {MAX_STOP_CHARS} characters", "invalid_value",
                              f"stop[{i}]")
    return tuple(stops)


def _refuse_unsupported(obj: dict) -> None:
    for name in ("tools", "functions"):
        if obj.get(name):  # an empty list asks for nothing: some clients always send one
            raise bad_request("Joey does not call tools or functions", "unsupported_parameter", name)
    if obj.get("logprobs") or obj.get("top_logprobs"):
        raise bad_request("log probabilities are not supported", "unsupported_parameter", "logprobs")
    if obj.get("logit_bias"):
        raise bad_request("logit_bias is not supported", "unsupported_parameter", "logit_bias")
    if obj.get("audio") or "audio" in (obj.get("modalities") or ()):
        raise bad_request("Joey speaks text only", "unsupported_parameter", "modalities")
    response_format = obj.get("response_format")
    if response_format is not None and (not isinstance(response_format, dict) or response_format.get("type") != "text"):
        raise bad_request("Joey answers in plain text only: response_format must be {\"type\": \"text\"}",
                          "unsupported_parameter", "response_format")


def _messages(items: list, config: Config) -> tuple[Message, ...]:
    if not items:
        raise bad_request("'messages' must hold at least one message", "invalid_value", "messages")
    if len(items) > config.openai_max_messages:
        raise too_large(f"{len(items)} messages; this server takes at most {config.openai_max_messages} "
                        "(only the newest turns fit the model's context anyway)", "too_many_messages", "messages")
    return tuple(_message(item, i, config) for i, item in enumerate(items))


def _message(item, i: int, config: Config) -> Message:
    where = f"messages[{i}]"
    if not isinstance(item, dict):
        raise bad_request(f"'{where}' must be an object", "invalid_type", where)
    role = _get(item, "role", str, required=True, param=f"{where}.role")
    if role in TOOL_ROLES or item.get("tool_calls") or item.get("function_call"):
        raise bad_request("Joey does not call tools or functions", "unsupported_parameter", where)
    if role not in ROLES:
        raise bad_request(f"unknown role {role[:40]!r}; Joey knows {', '.join(ROLES)}", "invalid_value",
                          f"{where}.role")
    text = _content(item, where)
    if len(text) > config.openai_max_message_chars:
        raise too_large(f"'{where}.content' is {len(text)} characters; the limit is {config.openai_max_message_chars}",
                        "message_too_long", f"{where}.content")
    name = _get(item, "name", str, param=f"{where}.name")
    if name is not None and not 0 < len(name.strip()) <= config.max_name_chars:
        raise bad_request(f"'{where}.name' must be 1 to {config.max_name_chars} characters", "invalid_value",
                          f"{where}.name")
    return Message("system" if role == "developer" else role, text, name.strip() if name else None)


def _content(item: dict, where: str) -> str:
    """A message's text: a string, or an array of text parts (images, audio and files refused)."""
    content = item.get("content")
    if content is None or isinstance(content, str):
        return _get(item, "content", str, param=f"{where}.content") or ""
    if not isinstance(content, list):
        raise bad_request(f"'{where}.content' must be a string or an array of parts", "invalid_type",
                          f"{where}.content")
    texts = []
    for j, part in enumerate(content):
        at = f"{where}.content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("image_url", "input_image"):
            raise bad_request("Joey cannot see images: send text only", "unsupported_content", at)
        if kind != "text":
            raise bad_request(f"'{at}' must be a text part (audio and files are not supported)",
                              "unsupported_content", at)
        texts.append(_get(part, "text", str, required=True, param=f"{at}.text"))
    return "\n".join(texts)
