"""The OpenAI completions API as the remote engine speaks it: the request body, the SSE stream,
and the errors, typed by what the caller may do about them.

The prompt goes as token ids (the OpenAI API's token-array prompt), so the engine sees exactly
what our prompt builder rendered, the adapter's training format, and no chat template of its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import AsyncIterator

from model.sampling import GenerationParams

# Statuses that mean "not now" rather than "never": overloaded (429), down or restarting (503),
# or a proxy in front that found no engine (502, 504). Retried before the first token only.
RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
RETRY_AFTER_CAP_S = 30.0  # an engine's Retry-After beyond this is not waited out


class RemoteError(Exception):
    """A request to the remote engine failed; ``str()`` says which engine and why."""


class EngineUnavailable(RemoteError):
    """Down, unreachable or overloaded before anything was streamed: another try may work."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class EngineRefused(RemoteError):
    """The engine answered the request with an error that a retry would repeat (a 4xx)."""


class StreamBroken(RemoteError):
    """The stream ended or failed after it had started: the reply cannot be resumed."""


def completion_body(prompt: list[int], params: GenerationParams, model: str, stop_ids: set[int],
                    stop_text: str | None) -> dict:
    """The /completions request for ``prompt`` with every setting of ``params``.

    Beyond the OpenAI fields, vLLM reads top_k, repetition_penalty, min_tokens, stop_token_ids,
    skip_special_tokens and return_token_ids from the body; SGLang and llama.cpp's server read
    most of them too and ignore what they do not know.
    """
    body = {
        "model": model,
        "prompt": list(prompt),
        "max_tokens": params.max_new_tokens,
        "min_tokens": params.min_new_tokens,
        "temperature": max(0.0, params.temperature),  # ours: <= 0 is greedy; theirs: 0 is
        "top_p": params.top_p,
        "top_k": params.top_k if params.top_k > 0 else -1,  # ours: 0 = all; vLLM's: -1 = all
        "repetition_penalty": params.repetition_penalty,
        "stop_token_ids": sorted(stop_ids),
        "skip_special_tokens": True,
        "stream": True,
        "stream_options": {"include_usage": True},
        # The reply's token ids, so our own StreamDecoder makes the text (model/detokenize.py).
        "return_token_ids": True,
    }
    if params.seed is not None:
        body["seed"] = params.seed
    if stop_text:
        body["stop"] = [stop_text]
    return body


@dataclass
class Delta:
    """One streamed event of the single choice: new text, new token ids (when the engine sends
    them), and the finish reason on the last one."""

    text: str = ""
    token_ids: list[int] | None = None
    finish_reason: str | None = None
    stop_reason: int | str | None = None
    usage: dict = field(default_factory=dict)


def parse_event(data: str) -> Delta | None:
    """A ``data:`` payload as a Delta; None for ``[DONE]``. Raises StreamBroken for an error event."""
    if data.strip() == "[DONE]":
        return None
    try:
        event = json.loads(data)
    except ValueError as exc:
        raise StreamBroken(f"the engine sent an event that is not JSON: {data[:80]!r}") from exc
    if "error" in event:
        raise StreamBroken(f"the engine failed the request: {error_text(event)}")
    delta = Delta(usage=event.get("usage") or {})
    for choice in event.get("choices") or ():
        delta.text += choice.get("text") or ""
        if (ids := choice.get("token_ids")) is not None:
            delta.token_ids = [*(delta.token_ids or ()), *ids]
        delta.finish_reason = choice.get("finish_reason") or delta.finish_reason
        delta.stop_reason = choice.get("stop_reason", delta.stop_reason)
    return delta


async def deltas(lines: AsyncIterator[str]) -> AsyncIterator[Delta]:
    """The Server-Sent Events of a streamed completion, as Deltas, until ``[DONE]``."""
    async for line in lines:
        if not line.startswith("data:"):
            continue  # blank separators, comments (": ping") and other fields carry nothing here
        delta = parse_event(line[5:].strip())
        if delta is None:
            return
        yield delta


def error_text(payload: dict | str) -> str:
    """The message of an OpenAI-style error body (``{"error": {"message": ...}}`` or vLLM's
    ``{"message": ...}``), or the body itself, shortened."""
    if isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except ValueError:
            return payload.strip()[:300]
    error = payload.get("error", payload) if isinstance(payload, dict) else payload
    if isinstance(error, dict):
        return str(error.get("message") or error)[:300]
    return str(error)[:300]


def retry_after(headers) -> float | None:
    """Seconds from a Retry-After header given in seconds (an HTTP date is ignored), capped."""
    try:
        return min(RETRY_AFTER_CAP_S, max(0.0, float(headers.get("retry-after", ""))))
    except ValueError:
        return None


def served_models(payload: dict) -> list[str]:
    """The model ids that a /models answer lists."""
    return [str(m.get("id")) for m in payload.get("data") or () if isinstance(m, dict)]
