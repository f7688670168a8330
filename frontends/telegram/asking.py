"""Asking Joey for one message's answer: the chat's client, and the server's waits told once.

A wait (``rate_limited``, ``server_busy``) is announced once per flood, in Joey's voice, with
how long it will be; then the message is asked again and answered (nothing the person said is
dropped). A session the server refuses is told to the person and logged, never dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Awaitable, Callable

from telegram import Bot, Update
from telegram.constants import ChatType

from client import ClientError, JoeyClient
from frontends.telegram import texts
from frontends.telegram.addressing import MAX_NAME_CHARS, speaker
from frontends.telegram.chats import JoeyChats
from frontends.telegram.config import TelegramConfig
from frontends.telegram.health import TelegramMetrics
from frontends.telegram.sending import Drafts, Sender, topic, typing

log = logging.getLogger("joey.telegram")


class Asker:
    def __init__(self, bot: Bot, config: TelegramConfig, chats: JoeyChats, sender: Sender,
                 reply: Callable[[Update, str], Awaitable[None]], metrics: TelegramMetrics):
        self.bot, self.config, self.chats, self.sender, self.reply = bot, config, chats, sender, reply
        self.metrics = metrics
        self.told_to_wait: set[int] = set()  # chats told "gimme a minute" whose flood is not over yet

    @staticmethod
    def person(update: Update) -> str | None:
        """The name a new session opens with: the person, in a private chat. A group's session
        has no one person; each of its messages names its speaker."""
        private = update.effective_chat.type == ChatType.PRIVATE
        return speaker(update.effective_message) if private else None

    async def client(self, update: Update) -> JoeyClient | None:
        """The chat's Joey client; when the server refuses the session, the person hears so.

        Connecting shows "typing...": while the server is down, that is all the chat sees.
        """
        chat_id = update.effective_chat.id
        connecting = contextlib.nullcontext() if self.chats.is_open(chat_id) else typing(
            self.bot, chat_id, self.config.typing_interval, topic(update.effective_message))
        try:
            async with connecting:
                return await self.chats.client(chat_id, self.person(update))
        except ClientError as exc:  # too_many_sessions, server_full: say so, never drop it silently
            self.metrics.server_errors.labels(exc.code or "unknown").inc()
            log.warning("Joey server refused a session for chat %s: %s (give joey telegram a trusted "
                        "key: docs/telegram.md)", update.effective_chat.id, exc)
            await self.reply(update, texts.TROUBLE)
            return None

    async def answer(self, update: Update, client: JoeyClient, words: str) -> str:
        """Joey's answer to ``words``, waiting out the server's rate limit and busy spells."""
        chat, message = update.effective_chat, update.effective_message
        message_id = f"tg-{chat.id}-{message.message_id}"
        # A group shares one session: each turn names its speaker. A private chat's session is
        # already named after its one person.
        private = chat.type == ChatType.PRIVATE
        name = None if private else speaker(message, client.limits.get("max_name_chars", MAX_NAME_CHARS))
        while True:
            drafts = None
            if self.config.drafts and private:
                drafts = Drafts(self.bot, chat.id, message.message_id, self.config.draft_interval)
            try:
                async with typing(self.bot, chat.id, self.config.typing_interval, topic(message)), \
                        drafts or contextlib.nullcontext():
                    end = await client.ask(words, message_id, drafts.add if drafts else None, name=name)
                return end["text"].strip() or texts.EMPTY_REPLY
            except ClientError as exc:
                self.metrics.server_errors.labels(exc.code or "unknown").inc()
                if exc.code == "busy":  # a reply from before a restart is still finishing
                    await asyncio.sleep(0.5)
                elif exc.code in texts.WAIT_NOTICES:
                    wait = 5.0 if exc.retry_after is None else exc.retry_after
                    if chat.id not in self.told_to_wait:
                        self.told_to_wait.add(chat.id)
                        quoted = None if private else message.message_id
                        await self.sender.notice(chat.id, quoted,
                                                 texts.WAIT_NOTICES[exc.code].format(wait=texts.wait_words(wait)),
                                                 topic(message))
                    await asyncio.sleep(wait)
                elif exc.code == "message_too_long":
                    return texts.TOO_LONG.format(limit=client.limits["max_message_chars"])
                else:
                    log.warning("Joey could not answer %s: %s", message_id, exc)
                    return texts.TROUBLE
