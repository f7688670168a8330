"""The getUpdates loop: each new update goes into the inbox (with the new offset), then on to be handled.

Telegram's answers to getUpdates are waited out like every call (retry.py); a refused or
unreachable Bot API is tried again with backoff for as long as the process runs. Update ids
that restarted lower than the offset are taken as new (ChatStore.accept).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

from telegram import Bot
from telegram.error import Conflict, Forbidden, InvalidToken, NetworkError

from client import backoff_s
from frontends.telegram.chat_store import ChatStore
from frontends.telegram.config import TelegramConfig
from frontends.telegram.retry import obey_flood_waits, with_retry

log = logging.getLogger("joey.telegram")


async def start_polling(bot: Bot, store: ChatStore, config: TelegramConfig,
                        enqueue: Callable[[dict], None]) -> asyncio.Task:
    """Take the bot off any webhook (getUpdates is refused while one is set), then poll in a task."""
    await with_retry(lambda: bot.delete_webhook(drop_pending_updates=False), "deleteWebhook",
                     config.retry_attempts, config.retry_base)
    return asyncio.get_running_loop().create_task(poll_forever(bot, store, config, enqueue))


async def poll_forever(bot: Bot, store: ChatStore, config: TelegramConfig, enqueue: Callable[[dict], None]) -> None:
    failures = 0
    while True:
        try:
            updates = await obey_flood_waits(
                lambda: bot.get_updates(offset=store.offset(), allowed_updates=["message"],
                                        timeout=max(1, int(config.poll_timeout))), "getUpdates")
            failures = 0
        except (NetworkError, Conflict, Forbidden, InvalidToken) as exc:
            failures += 1
            delay = backoff_s(config.retry_base, failures + 1, min(30.0, config.max_backoff))
            log.warning("getUpdates failed (%s); retrying in %.1f s", exc, delay)
            await asyncio.sleep(delay)
            continue
        for data in store.accept([u.to_dict() for u in updates]):
            enqueue(data)
