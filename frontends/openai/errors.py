"""Errors in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}`` with its HTTP status.

Every refusal of the API is one :class:`APIError`, raised where the problem is found and turned
into a response in one place (routes.py), so a status, its error type and a ``Retry-After`` can
never disagree. The hub's typed refusals (backend/protocol.py ``ErrorCode``) map onto the same
statuses through :func:`from_protocol`; the official SDKs pick their exception class from the
status alone (400 BadRequestError, 401 AuthenticationError, 404 NotFoundError, 429 RateLimitError).
"""

from __future__ import annotations

import math
from enum import Enum

from backend import protocol as p


class ErrorType(str, Enum):
    INVALID_REQUEST = "invalid_request_error"  # 400, 404, 405, 413: the request itself
    AUTHENTICATION = "authentication_error"  # 401: no key, or a wrong one
    PERMISSION = "permission_error"  # 403: not a client this server answers
    RATE_LIMIT = "rate_limit_error"  # 429: try again after Retry-After
    SERVER = "server_error"  # 500, 503: not the client's fault


_TYPE_OF_STATUS = {400: ErrorType.INVALID_REQUEST, 401: ErrorType.AUTHENTICATION, 403: ErrorType.PERMISSION,
                   404: ErrorType.INVALID_REQUEST, 405: ErrorType.INVALID_REQUEST, 413: ErrorType.INVALID_REQUEST,
                   429: ErrorType.RATE_LIMIT, 500: ErrorType.SERVER, 503: ErrorType.SERVER}


class APIError(Exception):
    """A refusal with its HTTP status; ``code`` is a stable machine-readable name."""

    def __init__(self, status: int, message: str, code: str, param: str | None = None,
                 retry_after: float | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param
        self.retry_after = retry_after

    @property
    def type(self) -> ErrorType:
        return _TYPE_OF_STATUS[self.status]

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type.value, "param": self.param, "code": self.code}}

    def headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return {}
        # Whole seconds (RFC 9110), never 0, which some clients read as "at once, forever".
        return {"retry-after": str(max(1, math.ceil(self.retry_after)))}


def bad_request(message: str, code: str, param: str | None = None) -> APIError:
    return APIError(400, message, code, param)


def too_large(message: str, code: str, param: str | None = None) -> APIError:
    return APIError(413, message, code, param)


def not_ready(message: str = "Joey is not ready yet; try again shortly", retry_after: float = 5.0) -> APIError:
    return APIError(503, message, "not_ready", retry_after=retry_after)


# The hub's refusals, by code: the status a client of this API gets for each.
_STATUS_OF_CODE = {
    p.ErrorCode.RATE_LIMITED: 429,  # this caller sent too many requests in the window
    p.ErrorCode.SERVER_BUSY: 429,  # the engine's queue is full: the same admission as every frontend's
    p.ErrorCode.SERVER_FULL: 503,
    p.ErrorCode.TOO_MANY_SESSIONS: 503,
    p.ErrorCode.SERVER_RESTARTING: 503,
    p.ErrorCode.MESSAGE_TOO_LONG: 413,
    p.ErrorCode.MODEL_ERROR: 500,
    p.ErrorCode.INTERNAL_ERROR: 500,
}


def from_protocol(exc: p.ProtocolError) -> APIError:
    """The hub's typed refusal as this API's error; anything not listed is the request's fault (400)."""
    retry = exc.retry_after
    if exc.code is p.ErrorCode.SERVER_RESTARTING and retry is None:
        retry = 5.0
    return APIError(_STATUS_OF_CODE.get(exc.code, 400), exc.message, exc.code.value, retry_after=retry)
