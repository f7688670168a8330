"""Calls to the Bot API that outlast Telegram's flood limits and outages.

- ``429 Too Many Requests`` (:class:`telegram.error.RetryAfter`): wait the time Telegram asks
  for, then try again; this does not use up an attempt. :func:`obey_flood_waits` is the one
  place that handles it, for every call the adapter makes.
- Network errors and timeouts (:class:`NetworkError`, :class:`TimedOut`): back off
  exponentially (``client.backoff_s``, the Python client's policy) and try again, up to
  ``attempts`` times. ``BadRequest`` is a ``NetworkError`` subclass in python-telegram-bot but is
  never retried: it would fail again.
"""

from __future__ import annotations

import asyncio
import datetime as dtm
import itertools
import logging
import warnings
from typing import Awaitable, Callable

from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter, TelegramError

from client import backoff_s
from frontends.telegram.config import TelegramConfigError
from frontends.telegram.redact import scrub

log = logging.getLogger("joey.telegram")

MAX_BACKOFF_S = 60.0  # the longest wait between tries of one call


def retry_seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():  # PTB 22 warns that retry_after will become a timedelta
        warnings.simplefilter("ignore")
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


async def obey_flood_waits(call: Callable[[], Awaitable], what: str, max_waits: int | None = None):
    """``await call()``; each 429 waits as long as Telegram asks, then calls again.

    After ``max_waits`` waits (None: no limit) the next 429 is raised. ``call`` runs afresh each
    time, so a call built from current state (an offset, a draft's text) sends the newest.
    """
    for waits in itertools.count():
        try:
            return await call()
        except RetryAfter as exc:
            if max_waits is not None and waits >= max_waits:
                raise
            wait = retry_seconds(exc)
            log.warning("%s: Telegram asks to wait %.1f s (429)", what, wait)
            await asyncio.sleep(wait)


async def with_retry(call: Callable[[], Awaitable], what: str, attempts: int = 6, base_s: float = 0.5,
                     max_flood_waits: int = 10):
    """``await call()``, waiting out flood waits and retrying network errors as described above."""
    for failures in itertools.count(1):
        try:
            return await obey_flood_waits(call, what, max_flood_waits)
        except BadRequest:
            raise
        except NetworkError as exc:  # includes TimedOut
            if failures >= attempts:
                raise
            delay = backoff_s(base_s, failures, MAX_BACKOFF_S)
            log.warning("%s failed (%s); retry %d in %.1f s", what, exc, failures, delay)
            await asyncio.sleep(delay)


async def reach_bot_api(call: Callable[[], Awaitable], attempts: int, base_s: float):
    """The first call at start (getMe): a refused token or an unreachable API becomes a
    :class:`TelegramConfigError` whose one line says what to do, never a traceback."""
    try:
        return await with_retry(call, "getMe", attempts, base_s)
    except InvalidToken:
        raise TelegramConfigError("Telegram refused the bot token (getMe: 401 Unauthorized). Check "
                                  "TELEGRAM_BOT_TOKEN; @BotFather shows a bot's token with /token.") from None
    except TelegramError as exc:
        raise TelegramConfigError(f"cannot reach the Telegram Bot API: {scrub(str(exc))}") from None


async def until_delivered(call: Callable[[], Awaitable], what: str, base_s: float, cap_s: float,
                          on_bug: Callable[[], Awaitable] | None = None) -> None:
    """``await call()`` (handle one update) until it is done, or can never be.

    A network error that outlasted :func:`with_retry` (Telegram down for a while) is tried again,
    with backoff up to ``cap_s``, for as long as the process runs; the caller holds its chat's
    turn meanwhile, so the chat's later messages wait. Telegram's refusals (``Forbidden``: the
    bot was blocked or removed; ``BadRequest``) and bugs end it: they would fail again. After a
    bug, ``on_bug`` tells the person, so nothing is dropped in silence.
    """
    for failures in itertools.count(1):
        try:
            await call()
            return
        except Forbidden as exc:
            log.info("%s: chat refuses messages (%s)", what, exc)
            return
        except BadRequest as exc:
            log.error("%s: Telegram refused the reply (%s)", what, exc)
            return
        except NetworkError as exc:
            delay = backoff_s(base_s, failures, cap_s)
            log.warning("%s: Telegram unreachable (%s); trying again in %.1f s", what, exc, delay)
            await asyncio.sleep(delay)
        except Exception:
            log.exception("%s failed", what)
            if on_bug is not None:
                try:
                    await on_bug()
                except Exception:
                    log.exception("%s: could not say so either", what)
            return
