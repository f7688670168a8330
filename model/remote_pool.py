"""The remote engines one hub streams from: which are up, why the others are not, and which one
takes the next request.

A thread polls each engine's ``/models`` every ``health_interval_s``: an engine is up when it
answers and lists the served model (the adapter's name), so a vLLM still loading, or one started
without the adapter, is not sent requests. A request that finds an engine unreachable marks it
down at once; the next poll that finds it back marks it up.

Each request goes to the engine that is up with the fewest requests in flight from this hub
(ties in turn). The hub knows only its own requests: with several hubs, each spreads its own
load, and the engines' queues even out the rest.
"""

from __future__ import annotations

import itertools
import logging
import threading
from dataclasses import dataclass, field

import httpx

from model.remote_api import error_text, served_models

log = logging.getLogger("joey.remote")


@dataclass(frozen=True)
class RemoteSettings:
    """How the hub talks to its engines; every field is a setting of backend/config.py."""

    model: str = "joey"  # the served model name: the LoRA adapter as the engine names it
    api_key: str = field(default="", repr=False)  # sent as Authorization: Bearer (vLLM's --api-key); '' = none
    connect_timeout_s: float = 5.0  # to open a connection to an engine
    first_token_timeout_s: float = 60.0  # from sending a request to its first token (the engine's queue)
    token_timeout_s: float = 30.0  # the longest gap between two streamed events of one reply
    retries: int = 3  # extra tries of a request that found its engine down or overloaded, before any token
    retry_backoff_s: float = 0.5  # the first wait before a retry; each next one doubles
    health_interval_s: float = 2.0  # how often each engine's /models is polled


def base_urls(text: str) -> list[str]:
    """The comma-separated engine URLs (the OpenAI base URL, e.g. http://HOST:8000/v1)."""
    urls = [u.strip().rstrip("/") for u in text.split(",") if u.strip()]
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"engine URL {url!r} must start with http:// or https://")
    return urls


class Backend:
    """One engine: its URL, whether it is up (and why not), and this hub's requests in flight."""

    def __init__(self, url: str):
        self.url = url
        self.up = False
        self.reason = f"the engine at {url} has not been asked yet"
        self.in_flight = 0

    def mark_down(self, reason: str) -> None:
        if self.up:
            log.warning("engine %s is down: %s", self.url, reason)
        self.up, self.reason = False, reason

    def mark_up(self) -> None:
        if not self.up:
            log.info("engine %s is up", self.url)
        self.up, self.reason = True, ""


class Pool:
    def __init__(self, urls: list[str], settings: RemoteSettings):
        if not urls:
            raise ValueError("no engine URL given")
        self.backends = [Backend(url) for url in urls]
        self.settings = settings
        self._turn = itertools.count()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.settings.api_key}"} if self.settings.api_key else {}

    @property
    def any_up(self) -> bool:
        return any(b.up for b in self.backends)

    @property
    def reason(self) -> str:
        """Why no engine is up ('' when one is)."""
        return "" if self.any_up else "; ".join(b.reason for b in self.backends)

    def choose(self) -> Backend:
        """The engine that is up with the fewest requests in flight (all of them if none is up:
        the request's retries then wait for one to come back)."""
        candidates = [b for b in self.backends if b.up] or self.backends
        least = min(b.in_flight for b in candidates)
        tied = [b for b in candidates if b.in_flight == least]
        return tied[next(self._turn) % len(tied)]

    # --- health -------------------------------------------------------------------------------
    def start(self) -> None:
        """Ask every engine once (so ``any_up`` is known on return), then keep polling."""
        with httpx.Client(timeout=self._probe_timeout(), headers=self.headers) as client:
            for backend in self.backends:
                self.probe(client, backend)
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, name="joey-remote-health", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.settings.connect_timeout_s + 1)

    def _probe_timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.settings.connect_timeout_s, connect=self.settings.connect_timeout_s)

    def _poll(self) -> None:
        with httpx.Client(timeout=self._probe_timeout(), headers=self.headers) as client:
            while not self._stop.wait(self.settings.health_interval_s):
                for backend in self.backends:
                    self.probe(client, backend)

    def probe(self, client: httpx.Client, backend: Backend) -> None:
        try:
            response = client.get(f"{backend.url}/models")
        except httpx.HTTPError as exc:
            backend.mark_down(f"the engine at {backend.url} does not answer: {type(exc).__name__}: {exc}")
            return
        if response.status_code != 200:
            backend.mark_down(f"the engine at {backend.url} answered /models with {response.status_code}: "
                              f"{error_text(response.text)}")
            return
        try:
            models = served_models(response.json())
        except ValueError:
            backend.mark_down(f"the engine at {backend.url} answered /models with something not JSON")
            return
        # SGLang names an adapter BASE:ADAPTER in requests and may list only the base.
        if self.settings.model not in models and self.settings.model.rpartition(":")[0] not in models:
            backend.mark_down(f"the engine at {backend.url} does not serve {self.settings.model!r} "
                              f"(it serves {', '.join(models) or 'nothing'})")
            return
        backend.mark_up()
