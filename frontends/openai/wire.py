"""What the API sends: OpenAI's ``chat.completion``, ``chat.completion.chunk`` and ``model`` objects,
and Server-Sent Events.

A stream is ``data: <chunk>`` events: the first carries the role, the next ones the text, the
last an empty delta with the ``finish_reason``; with ``stream_options.include_usage`` every chunk
has ``"usage": null`` and one more chunk, with no choices, carries the usage; ``data: [DONE]``
ends it. An error after the stream has begun is one ``data: {"error": ...}`` event, which the
SDKs raise as an APIError, and no ``[DONE]``.
"""

from __future__ import annotations

import json
import time

OWNER = "joey-chat"
DONE = b"data: [DONE]\n\n"


def model_object(model_id: str, created: int) -> dict:
    return {"id": model_id, "object": "model", "created": created, "owned_by": OWNER}


def model_list(model_ids: list[str], created: int) -> dict:
    return {"object": "list", "data": [model_object(m, created) for m in model_ids]}


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


class Completion:
    """The objects of one completion, sharing its id, model and creation time."""

    def __init__(self, completion_id: str, model: str, include_usage: bool = False):
        self.id, self.model, self.include_usage = completion_id, model, include_usage
        self.created = int(time.time())

    def whole(self, text: str, finish_reason: str, prompt_tokens: int, completion_tokens: int) -> dict:
        return {"id": self.id, "object": "chat.completion", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
                             "logprobs": None, "finish_reason": finish_reason}],
                "usage": usage(prompt_tokens, completion_tokens)}

    def chunk(self, delta: dict, finish_reason: str | None = None) -> dict:
        chunk = {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                 "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}
        return {**chunk, "usage": None} if self.include_usage else chunk

    def first(self) -> dict:
        return self.chunk({"role": "assistant", "content": ""})

    def text(self, text: str) -> dict:
        return self.chunk({"content": text})

    def last(self, finish_reason: str) -> dict:
        return self.chunk({}, finish_reason)

    def usage_chunk(self, prompt_tokens: int, completion_tokens: int) -> dict:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [], "usage": usage(prompt_tokens, completion_tokens)}


def event(obj: dict) -> bytes:
    """One Server-Sent Event. JSON escapes every newline, so the data is always one line."""
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"
