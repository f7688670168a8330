"""``joey telegram``'s own /healthz and /metrics (served by its HTTP server, ``--listen``).

/healthz answers 200 while the bot takes updates (its poll loop alive, or its webhook set) and
503 otherwise; whether the Joey server answers is shown but does not fail it, since messages
wait for the server and restarting the bot would not bring it back. /metrics is Prometheus text
from the bot's own registry, read at scrape time where it can be.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from backend.metrics import CONTENT_TYPE


class TelegramMetrics:
    def __init__(self):
        self.registry = r = CollectorRegistry()
        self.updates = Counter("joey_telegram_updates", "updates taken from Telegram (replays at start included)",
                               registry=r)
        self.replies = Counter("joey_telegram_replies", "answers from Joey sent to a chat", registry=r)
        self.turned_away = Counter("joey_telegram_turned_away", "messages not asked, by reason: chat_not_allowed, "
                                   "member_rate, reset_not_admin", ["reason"], registry=r)
        self.server_errors = Counter("joey_telegram_server_errors", "errors from the Joey server, by code "
                                     "(refused sessions included)", ["code"], registry=r)
        self.inbox = Gauge("joey_telegram_inbox", "updates taken and not yet answered", registry=r)
        self.open_chats = Gauge("joey_telegram_open_chats", "open Joey connections, one per chat", registry=r)

    def watch(self, adapter) -> None:
        """Read the adapter's inbox and open chats at each scrape."""
        self.inbox.set_function(lambda: adapter.store.inbox_size() if adapter.store is not None else 0)
        self.open_chats.set_function(lambda: len(adapter.clients))


def routes(adapter) -> list[Route]:
    async def healthz(request: Request) -> JSONResponse:
        taking = adapter.accepting and (adapter.config.webhook_url or adapter.polling)
        body = {"status": "ok" if taking else "not taking updates",
                "mode": "webhook" if adapter.config.webhook_url else "polling",
                "joey_server": "unreachable" if adapter.chats is not None and adapter.chats.down else "reachable"}
        return JSONResponse(body, status_code=200 if taking else 503)

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(adapter.metrics.registry), media_type=CONTENT_TYPE)

    return [Route("/healthz", healthz), Route("/metrics", metrics)]
