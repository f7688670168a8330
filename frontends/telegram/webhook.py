"""Webhook mode: Telegram posts each update to ``webhook_url`` instead of being polled.

The route is served by the Starlette app of the process the bot runs in: the Joey server's
(``joey serve --telegram``) or the bot's own (``joey telegram --listen``). Each request must
carry the secret given to ``setWebhook`` in ``X-Telegram-Bot-Api-Secret-Token`` (compared in
constant time); anything else is refused before its body is read. An accepted update goes into
the inbox before Telegram gets its 200, so a crash after that replays it, as in polling mode;
one posted again (Telegram retries an answer it did not get) is handled once.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
from typing import Callable
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from telegram import Bot

from frontends.telegram.config import TelegramConfig
from frontends.telegram.redact import protect
from frontends.telegram.retry import with_retry

log = logging.getLogger("joey.telegram")

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
ALLOWED_UPDATES = ["message"]


def secret_for(config: TelegramConfig) -> str:
    """The configured secret, or a fresh random one (setWebhook hands it to Telegram at each start)."""
    secret = config.webhook_secret or secrets.token_urlsafe(32)
    protect(secret)
    return secret


def route_path(config: TelegramConfig) -> str:
    return urlsplit(config.webhook_url).path or "/"


async def register(bot: Bot, config: TelegramConfig, secret: str) -> None:
    """Point Telegram at the webhook; updates it holds already are delivered there."""
    await with_retry(lambda: bot.set_webhook(config.webhook_url, secret_token=secret, allowed_updates=ALLOWED_UPDATES,
                                             drop_pending_updates=False),
                     "setWebhook", config.retry_attempts, config.retry_base)
    log.info("Telegram delivers updates to the webhook at %s", config.webhook_url)


def routes(config: TelegramConfig, find_adapter: Callable[[Request], object | None]) -> list[Route]:
    """The webhook's route, or none in polling mode. ``find_adapter`` gives the running adapter
    (None before start and after stop: Telegram is told to try again later)."""
    if not config.webhook_url:
        return []

    async def receive(request: Request) -> Response:
        adapter = find_adapter(request)
        if adapter is None or not adapter.accepting:
            return JSONResponse({"error": "the bot is not running"}, status_code=503)
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), adapter.webhook_secret.encode()):
            log.warning("webhook: refused a request from %s without the right secret token",
                        request.client.host if request.client else "?")
            return JSONResponse({"error": "wrong or missing secret token"}, status_code=403)
        try:
            update = json.loads(await request.body())
        except ValueError:
            update = None
        if not isinstance(update, dict) or not isinstance(update.get("update_id"), int):
            return JSONResponse({"error": "not a Telegram update"}, status_code=400)
        adapter.take(update)
        return Response(status_code=200)

    return [Route(route_path(config), receive, methods=["POST"])]
