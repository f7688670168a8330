"""Talking to Telegram: long replies in parts, the typing indicator and live drafts.

In a forum (a supergroup with topics) replies, notices and "typing" go to the topic the message
came from (``message_thread_id``); elsewhere Telegram would put them in the General topic.

Every call goes through retry.py (flood waits and network errors). A group that became a
supergroup (:class:`ChatMigrated`): the reply goes to the new chat id, and the store remembers
the move for later replies and for the group's session.

A timed-out ``sendMessage`` may in fact have been delivered; Telegram has no idempotency key,
so a retry can then show the message twice. So a send waits ``send_timeout_s`` for Telegram's
answer (python-telegram-bot's own read timeout is 5 s); only an answer later than that can
still make a duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Awaitable, Callable

from telegram import Bot, Message, ReplyParameters
from telegram.constants import ChatAction
from telegram.error import ChatMigrated, TelegramError

from frontends.telegram.config import TelegramConfig
from frontends.telegram.retry import obey_flood_waits, with_retry
from frontends.telegram.split import TELEGRAM_LIMIT, split_message

log = logging.getLogger("joey.telegram")


class Sender:
    """Sends replies; the store remembers how many parts of each reply went out, and where a
    group moved when it became a supergroup."""

    def __init__(self, bot: Bot, store, attempts: int = 6, base_s: float = 0.5, limit: int = TELEGRAM_LIMIT,
                 send_timeout_s: float = TelegramConfig.send_timeout):
        self.bot, self.store, self.attempts, self.base_s, self.limit = bot, store, attempts, base_s, limit
        self.send_timeout_s = send_timeout_s
        self.on_migrated: Callable[[int, int], None] = store.migrate  # the adapter adds its own bookkeeping
        self._in_flight: set[asyncio.Task] = set()

    async def reply(self, chat_id: int, message_id: int, text: str, quote: bool = False,
                    topic: int | None = None) -> int:
        """Send ``text`` in answer to Telegram message ``message_id``; returns the parts sent now.

        Parts already sent for this message (before a restart, or before a failed try) are skipped.
        """
        parts = split_message(text, self.limit)
        done_parts, done = self.store.parts_sent(chat_id, message_id)
        if done:
            log.info("reply to %s/%s was delivered before; not sending it again", chat_id, message_id)
            return 0
        sent = 0
        for index in range(done_parts, len(parts)):
            await self._unstoppable(self._send_part(chat_id, message_id, quote, parts, index, topic))
            sent += 1
        if not parts:
            self.store.part_sent(chat_id, message_id, 0, True)
        return sent

    async def _send_part(self, chat_id: int, message_id: int, quote: bool, parts: list[str], index: int,
                         topic: int | None) -> None:
        await self._send(chat_id, message_id if quote else None, parts[index], topic)
        self.store.part_sent(chat_id, message_id, index + 1, index + 1 == len(parts))

    async def _unstoppable(self, step: Awaitable) -> None:
        """Run ``step`` to its end even if the caller is cancelled (the adapter stopping).

        A part cancelled mid-request may already be in the chat while the store says unsent, and
        the replay at the next start would send it again; :meth:`drain` lets it finish instead.
        """
        task = asyncio.ensure_future(step)
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)
        await asyncio.shield(task)

    async def drain(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for parts already on their way (see :meth:`_unstoppable`)."""
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=timeout_s)
            for task in self._in_flight:
                task.cancel()

    async def notice(self, chat_id: int, message_id: int | None, text: str, topic: int | None = None) -> None:
        """A line that is not the reply (say, "give me a minute"): sent once, not recorded as the answer."""
        await self._send(chat_id, message_id, text, topic)

    async def _send(self, chat_id: int, quoted: int | None, text: str, topic: int | None) -> None:
        target = self.store.current_chat(chat_id)
        if target != chat_id:
            quoted = topic = None  # the message lives in the old group; the supergroup has other ids
        try:
            await self._send_to(target, quoted, text, topic)
        except ChatMigrated as exc:
            log.info("chat %s became supergroup %s; replying there", target, exc.new_chat_id)
            self.on_migrated(target, exc.new_chat_id)
            await self._send_to(exc.new_chat_id, None, text, None)

    async def _send_to(self, chat_id: int, quoted: int | None, text: str, topic: int | None) -> None:
        reply_to = ReplyParameters(quoted, allow_sending_without_reply=True) if quoted else None
        await with_retry(lambda: self.bot.send_message(chat_id, text, reply_parameters=reply_to,
                                                       message_thread_id=topic, read_timeout=self.send_timeout_s),
                         "sendMessage", self.attempts, self.base_s)


def topic(message: Message) -> int | None:
    """The forum topic ``message`` was said in (None outside forums: a reply thread is no topic)."""
    return message.message_thread_id if message.is_topic_message else None


@contextlib.asynccontextmanager
async def typing(bot: Bot, chat_id: int, interval_s: float, topic: int | None = None):
    """Show "typing..." in the chat (or its forum ``topic``), refreshed every ``interval_s``, for the ``with`` body."""

    async def refresh() -> None:
        while True:
            try:
                await obey_flood_waits(lambda: bot.send_chat_action(chat_id, ChatAction.TYPING,
                                                                    message_thread_id=topic), "sendChatAction")
            except TelegramError as exc:  # cosmetic: never fail a reply over it
                log.debug("typing action for %s failed: %s", chat_id, exc)
            await asyncio.sleep(interval_s)

    task = asyncio.get_running_loop().create_task(refresh())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class Drafts:
    """A live preview of the reply (sendMessageDraft, private chats), at most one per ``interval_s``.

    Drafts are cosmetic: the first error switches them off for this reply, and the final text
    always goes out as a normal message.
    """

    def __init__(self, bot: Bot, chat_id: int, draft_id: int, interval_s: float):
        self.bot, self.chat_id, self.draft_id, self.interval_s = bot, chat_id, draft_id, interval_s
        self.text, self.shown, self.broken = "", "", False
        self._changed = asyncio.Event()
        self._task: asyncio.Task | None = None

    def add(self, chunk: str) -> None:
        self.text += chunk
        self._changed.set()

    async def __aenter__(self) -> "Drafts":
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def __aexit__(self, *exc) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while not self.broken:
            await self._changed.wait()
            self._changed.clear()
            try:
                await obey_flood_waits(self._show, "sendMessageDraft")
            except TelegramError as exc:
                log.info("drafts off for chat %s: %s", self.chat_id, exc)
                self.broken = True
            await asyncio.sleep(self.interval_s)

    async def _show(self) -> None:
        """Show the first part of the text so far, if it changed (after a flood wait too)."""
        preview = split_message(self.text)[:1]
        if preview and preview[0] != self.shown:
            await self.bot.send_message_draft(self.chat_id, self.draft_id, preview[0])
            self.shown = preview[0]
