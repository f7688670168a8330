"""run the Telegram bot against a running Joey server (out-of-process; needs TELEGRAM_BOT_TOKEN)

    TELEGRAM_BOT_TOKEN=... joey telegram --server ws://127.0.0.1:8000/ws

The same adapter as ``joey serve --telegram``, talking to the server over WebSocket. Exit codes:
0 after SIGINT/SIGTERM, 2 for a missing or refused token, an unreachable Bot API, a malformed
URL or a state file that cannot be written.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from frontends.telegram.config import ENV_PREFIX, TOKEN_ENV, TelegramConfig, TelegramConfigError
from frontends.telegram.redact import protect, scrub
from model.options import add_flags


def add_arguments(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    add_flags(parser, TelegramConfig, ENV_PREFIX)
    parser.add_argument("--log-level", default=env("JOEY_LOG_LEVEL", "info"), help="debug, info, warning or error")
    parser.epilog = f"The bot token is read from {TOKEN_ENV} only, never from a flag."


def run(args: argparse.Namespace) -> int:
    config = TelegramConfig.from_env(args=args)
    if not config.token:
        print(f"joey telegram: {TOKEN_ENV} is not set. Create a bot with @BotFather and run\n"
              f"  {TOKEN_ENV}=<token> joey telegram --server {config.server}", file=sys.stderr)
        return 2
    protect(config.token)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return asyncio.run(serve(config))


async def serve(config: TelegramConfig, stop: asyncio.Event | None = None) -> int:
    """Run the adapter until ``stop`` is set (or SIGINT/SIGTERM). Returns the exit code."""
    from client import WebSocketTransport
    from frontends.telegram.bot import TelegramAdapter
    from frontends.telegram import health
    from frontends.telegram.http_server import OwnServer

    server_url, api_key = config.server, config.api_key or None
    adapter = TelegramAdapter(config, lambda: WebSocketTransport(server_url, api_key))
    own = OwnServer(config, adapter, health.routes(adapter)) if config.listen else None
    try:
        config.check(server=True)
        if own is not None:  # listening first: the webhook answers as soon as setWebhook is done
            await own.start()
        await adapter.start()
    except TelegramConfigError as exc:
        print(f"joey telegram: {scrub(str(exc))}", file=sys.stderr)
        await adapter.stop()
        if own is not None:
            await own.stop()
        return 2
    stop = stop or asyncio.Event()
    loop, handled = asyncio.get_running_loop(), []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or Windows
            pass
    await _probe(server_url, api_key)
    try:
        await stop.wait()
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        await adapter.stop()
        if own is not None:
            await own.stop()
    return 0


async def _probe(server_url: str, api_key: str | None) -> None:
    """Say early when the Joey server is not there (messages wait for it; nothing is lost)."""
    from client import ConnectionLost, WebSocketTransport

    transport = WebSocketTransport(server_url, api_key, open_timeout=5)
    try:
        await transport.connect()
        logging.getLogger("joey.telegram").info("Joey server at %s is reachable", server_url)
    except ConnectionLost as exc:
        logging.getLogger("joey.telegram").warning(
            "Joey server at %s is not reachable yet (%s); messages wait until it is", server_url, exc)
    finally:
        await transport.close()
