"""Protocol v1 message schemas: parsing client frames and building server frames.

Every frame is a JSON object with a ``type``. Unknown fields are ignored, so newer clients and
servers can add fields without a version bump. docs/protocol.md is the human guide and
docs/asyncapi.yaml the machine-readable one; tests check this module against both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum

PROTOCOL_VERSION = 1


class ErrorCode(str, Enum):
    BAD_JSON = "bad_json"  # the frame is not valid JSON
    BAD_FRAME = "bad_frame"  # valid JSON, but not an object with a string "type"
    UNKNOWN_TYPE = "unknown_type"
    MISSING_FIELD = "missing_field"
    INVALID_FIELD = "invalid_field"  # a field has the wrong type or an illegal value
    MESSAGE_TOO_LONG = "message_too_long"
    NO_SESSION = "no_session"  # open or resume first
    SESSION_ALREADY_OPEN = "session_already_open"
    RESUME_REFUSED = "resume_refused"  # unknown or expired session, or wrong token
    BUSY = "busy"  # Joey is still answering the previous message
    RATE_LIMITED = "rate_limited"
    SERVER_FULL = "server_full"
    SERVER_RESTARTING = "server_restarting"
    SESSION_TAKEN_OVER = "session_taken_over"  # another connection resumed this session
    MODEL_ERROR = "model_error"
    NOTHING_TO_REGENERATE = "nothing_to_regenerate"  # regenerate with no user message to answer again
    NOTHING_TO_CONTINUE = "nothing_to_continue"  # continue when Joey's last reply was not cut short
    SERVER_BUSY = "server_busy"  # the engine queue is long; retry after retry_after seconds
    TOO_MANY_SESSIONS = "too_many_sessions"  # this client address holds max_sessions_per_client sessions
    INTERNAL_ERROR = "internal_error"  # the server failed on this frame; connection and session carry on


class ProtocolError(Exception):
    """A typed, recoverable error: it becomes an ``error`` frame; the connection stays open."""

    def __init__(self, code: ErrorCode, message: str, message_id: str | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.code, self.message, self.message_id, self.retry_after = code, message, message_id, retry_after


# --- client -> server -------------------------------------------------------------------------
@dataclass(frozen=True)
class Open:
    name: str | None = None  # how Joey calls the person; None uses the default


@dataclass(frozen=True)
class Resume:
    session_id: str
    token: str
    last_seq: int = 0  # the highest seq the client has seen; replay starts after it


@dataclass(frozen=True)
class UserMessage:
    id: str  # chosen by the client; a resent id is not answered twice
    text: str
    name: str | None = None  # the speaker's display name for this turn (group chats); None: the session's


@dataclass(frozen=True)
class Regenerate:
    message_id: str | None = None  # if given, must be the last user message's id (guards against races)


@dataclass(frozen=True)
class Continue:
    message_id: str | None = None  # if given, must be the last user message's id (guards against races)


@dataclass(frozen=True)
class ChooseVersion:
    message_id: str  # the user message whose answer by Joey has several versions
    version: int  # which one the history holds from now on: 0 is the oldest


@dataclass(frozen=True)
class Cancel:
    pass


@dataclass(frozen=True)
class Edit:
    message_id: str  # the user message asked again; it and every turn after it leave the history
    text: str
    name: str | None = None


@dataclass(frozen=True)
class Feedback:
    message_id: str  # the user message Joey's rated reply answers
    rating: str | None  # "up", "down", or None to clear it


@dataclass(frozen=True)
class Reset:
    pass


@dataclass(frozen=True)
class Ping:
    nonce: str | int | None = None


ClientFrame = Open | Resume | UserMessage | Edit | Regenerate | Continue | ChooseVersion | Cancel | Reset | Ping | Feedback
RATINGS = ("up", "down")
MAX_ID_CHARS = 128


def _field(obj: dict, name: str, kind: type | tuple, required: bool = True, default=None):
    if name not in obj or obj[name] is None:
        if required:
            raise ProtocolError(ErrorCode.MISSING_FIELD, f"field {name!r} is required")
        return default
    value = obj[name]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ProtocolError(ErrorCode.INVALID_FIELD, f"field {name!r} has the wrong type")
    if isinstance(value, str) and not encodable(value):
        # JSON may escape a lone surrogate ("\ud800"); no tokenizer, database or UTF-8 peer can hold one.
        raise ProtocolError(ErrorCode.INVALID_FIELD, f"field {name!r} is not valid Unicode (lone surrogate)")
    return value


def encodable(text: str) -> bool:
    """Can ``text`` be UTF-8 at all? JSON may escape a lone surrogate that no peer can hold."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")  # NaN and Infinity: Python accepts them, JSON does not


def _name(obj: dict, max_name_chars: int) -> str | None:
    name = _field(obj, "name", str, required=False)
    if name is not None and not 0 < len(name.strip()) <= max_name_chars:
        raise ProtocolError(ErrorCode.INVALID_FIELD, f"name must be 1 to {max_name_chars} characters")
    return name.strip() if name else None


def _message_id(obj: dict, field: str, required: bool = True) -> str | None:
    message_id = _field(obj, field, str, required=required)
    if message_id is not None and not 0 < len(message_id) <= MAX_ID_CHARS:
        raise ProtocolError(ErrorCode.INVALID_FIELD, f"{field} must be 1 to {MAX_ID_CHARS} characters")
    return message_id


def parse_client_frame(raw: str | bytes, max_message_chars: int, max_name_chars: int) -> ClientFrame:
    if isinstance(raw, bytes):
        raise ProtocolError(ErrorCode.BAD_FRAME, "binary frames are not part of the protocol; send text frames")
    try:
        obj = json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser's stack
        raise ProtocolError(ErrorCode.BAD_JSON, "the frame is not valid JSON") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise ProtocolError(ErrorCode.BAD_FRAME, 'a frame must be a JSON object with a string "type"')
    kind = obj["type"]
    if kind in ("message", "edit"):
        message_id = _message_id(obj, "id" if kind == "message" else "message_id")
        text = _field(obj, "text", str)
        if len(text) > max_message_chars:
            raise ProtocolError(ErrorCode.MESSAGE_TOO_LONG,
                                f"message is {len(text)} characters; the limit is {max_message_chars}", message_id)
        if not text.strip():
            raise ProtocolError(ErrorCode.INVALID_FIELD, "text is empty", message_id)
        return (UserMessage if kind == "message" else Edit)(message_id, text, _name(obj, max_name_chars))
    if kind == "regenerate":
        return Regenerate(_message_id(obj, "message_id", required=False))
    if kind == "continue":
        return Continue(_message_id(obj, "message_id", required=False))
    if kind == "version":
        message_id = _message_id(obj, "message_id")
        version = _field(obj, "version", int)
        if version < 0:
            raise ProtocolError(ErrorCode.INVALID_FIELD, "version must be >= 0", message_id)
        return ChooseVersion(message_id, version)
    if kind == "open":
        return Open(_name(obj, max_name_chars))
    if kind == "resume":
        last_seq = _field(obj, "last_seq", int, required=False, default=0)
        if last_seq < 0:
            raise ProtocolError(ErrorCode.INVALID_FIELD, "last_seq must be >= 0")
        return Resume(_field(obj, "session_id", str), _field(obj, "token", str), last_seq)
    if kind == "cancel":
        return Cancel()
    if kind == "feedback":
        message_id = _message_id(obj, "message_id")
        rating = _field(obj, "rating", str, required=False)
        if rating is not None and rating not in RATINGS:
            raise ProtocolError(ErrorCode.INVALID_FIELD, 'rating must be "up", "down" or null', message_id)
        return Feedback(message_id, rating)
    if kind == "reset":
        return Reset()
    if kind == "ping":
        return Ping(_field(obj, "nonce", (str, int), required=False))
    raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown frame type {kind[:40]!r}")


# --- server -> client -------------------------------------------------------------------------
def session_frame(session_id: str, token: str, resumed: bool, history: list[dict], last_seq: int,
                  in_flight: dict | None, limits: dict) -> dict:
    return {"type": "session", "protocol": PROTOCOL_VERSION, "session_id": session_id, "token": token,
            "resumed": resumed, "history": history, "last_seq": last_seq, "in_flight": in_flight, "limits": limits}


def reply_start(seq: int, message_id: str, kind: str | None = None) -> dict:
    """``kind``: "regenerate" or "continue" marks a reply that replaces or extends Joey's answer."""
    frame = {"type": "reply_start", "seq": seq, "message_id": message_id}
    return {**frame, kind: True} if kind else frame


def chunk(seq: int, message_id: str, text: str) -> dict:
    return {"type": "chunk", "seq": seq, "message_id": message_id, "text": text}


def reply_end(seq: int, message_id: str, text: str, finish_reason: str, tokens: int) -> dict:
    return {"type": "reply_end", "seq": seq, "message_id": message_id, "text": text,
            "finish_reason": finish_reason, "tokens": tokens}


def version_chosen(message_id: str, version: int, text: str, finish_reason: str) -> dict:
    return {"type": "version", "message_id": message_id, "version": version, "text": text,
            "finish_reason": finish_reason}


def feedback_done(message_id: str, rating: str | None) -> dict:
    return {"type": "feedback", "message_id": message_id, "rating": rating}


def reset_done(seq: int) -> dict:
    return {"type": "reset", "seq": seq}


def pong(nonce: str | int | None) -> dict:
    return {"type": "pong", "nonce": nonce}


def error(exc: ProtocolError) -> dict:
    frame = {"type": "error", "code": exc.code.value, "message": exc.message}
    if exc.message_id is not None:
        frame["message_id"] = exc.message_id
    if exc.retry_after is not None:
        frame["retry_after"] = round(exc.retry_after, 3)
    return frame
