"""Who may call the API, and whose rate window a request counts in.

- **With keys** (``JOEY_OPENAI_KEYS``): every request needs ``Authorization: Bearer <key>``. The
  given key and each configured key are hashed and compared with ``hmac.compare_digest``, every
  key every time, so neither the timing nor the length of a guess says anything. A key is never
  logged, and a caller is named by a digest prefix of its key, never by the key.
- **Without keys**: the API answers loopback clients only (a 403 elsewhere), and only with a
  ``Host`` that cannot be an attacker's rebound DNS name and no foreign ``Origin`` (a web page
  elsewhere must not drive a local Joey through the browser: the DNS-rebinding and cross-site
  rules of the WebSocket route, backend/app.py). A reverse proxy on the same machine makes every
  client loopback: set keys there.
- **Rate windows**: each caller (key, or client address without keys) has one window of
  ``openai_rate_limit_messages`` requests per ``rate_limit_window_s``, counted by the same
  Admission as the hub's sessions (on every replica together when several share Redis).
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections import deque
from dataclasses import dataclass, field

from starlette.requests import Request

from backend import protocol as p
from backend.admission import Admission
from backend.app import key_among, key_digest, origin_allowed, trusted_host
from backend.config import Config
from frontends.openai.errors import APIError, from_protocol

MAX_IDLE_CALLERS = 1024  # callers with an empty window are dropped beyond this many


@dataclass
class Caller:
    """A rate window, shaped as Admission.check_rate reads a session: an id and the send times."""

    id: str
    sent_times: deque = field(default_factory=deque)


class Access:
    def __init__(self, config: Config):
        self.config = config
        self._keys = [key_digest(key) for key in config.openai_key_list()]
        self._rates = Admission(dataclasses.replace(config, rate_limit_messages=config.openai_rate_limit_messages))
        self._callers: dict[str, Caller] = {}

    @property
    def keyed(self) -> bool:
        return bool(self._keys)

    def caller(self, request: Request) -> Caller:
        """The caller ``request`` comes from, or an APIError: 401 (key) or 403 (not loopback)."""
        name = self._by_key(request) if self._keys else self._by_address(request)
        if name not in self._callers:
            if len(self._callers) >= MAX_IDLE_CALLERS:
                self._callers = {k: c for k, c in self._callers.items() if c.sent_times}
            self._callers[name] = Caller(name)
        return self._callers[name]

    def count(self, caller: Caller, relay=None) -> None:
        """Count one request in the caller's window, or raise a 429 with Retry-After."""
        try:
            self._rates.check_rate(caller, None, relay)
        except p.ProtocolError as exc:
            raise from_protocol(exc) from None

    def _by_key(self, request: Request) -> str:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise APIError(401, "this server needs an API key: send Authorization: Bearer <key>", "missing_api_key")
        found = key_among(given.strip(), self._keys)
        if found is None:
            raise APIError(401, "incorrect API key", "invalid_api_key")
        return "openai-key-" + found.hex()[:16]

    def _by_address(self, request: Request) -> str:
        host = request.client.host if request.client else ""
        if not _loopback(host):
            raise APIError(403, "without JOEY_OPENAI_KEYS this server answers loopback clients only",
                           "loopback_only")
        if not trusted_host(request.headers.get("host", "")) or not origin_allowed(request, self.config):
            raise APIError(403, "this Host or Origin may not use the API without a key", "origin_not_allowed")
        return "openai-addr-" + host


def _loopback(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback
