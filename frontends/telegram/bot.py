"""The Telegram adapter: Telegram chats on one side, Joey sessions on the other.

One adapter class serves both ways of running; only the transport factory differs:
``LocalTransport(hub)`` in-process (``joey serve --telegram``) and
``WebSocketTransport(url)`` out-of-process (``joey telegram --server ws://...``).

Flow of one update: a poll loop takes it from getUpdates (or the webhook route receives it,
webhook.py), writes it to the inbox (ChatStore), gives it a per-chat ticket and puts it on the
Application's update queue. The Application runs handlers concurrently; each handler waits for its chat's
turn, asks Joey through that chat's :class:`JoeyClient` (message id ``tg-<chat>-<message>``,
so the hub answers a repeated ask from its store instead of generating again), sends the
reply and only then removes the update from the inbox. When Telegram cannot be reached, the
handler keeps its chat's turn and tries again with backoff until the reply is out, so later
messages of that chat wait behind it and replies arrive in message order. Updates still in
the inbox at start (the process stopped before their reply went out) are replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Callable

from telegram import BotCommand, Message, Update
from telegram.constants import ChatType
from telegram.error import TelegramError
from telegram.ext import Application, ApplicationBuilder, CommandHandler, MessageHandler, TypeHandler, filters

from client import JoeyClient
from frontends.telegram import texts, webhook
from frontends.telegram.access import ChatAccess, may_reset
from frontends.telegram.addressing import visible, words_for_joey
from frontends.telegram.asking import Asker
from frontends.telegram.chat_store import ChatStore, open_chat_store
from frontends.telegram.chats import JoeyChats
from frontends.telegram.config import TelegramConfig
from frontends.telegram.group_rate import GroupRate
from frontends.telegram.health import TelegramMetrics
from frontends.telegram.ordering import ChatOrder
from frontends.telegram.polling import start_polling
from frontends.telegram.redact import protect
from frontends.telegram.retry import reach_bot_api, until_delivered
from frontends.telegram.sending import Sender, topic

log = logging.getLogger("joey.telegram")

# New messages only: channel posts and edits are not conversation turns, even if a Bot API
# server delivers them despite ``allowed_updates``.
NEW_MESSAGE = filters.UpdateType.MESSAGE


class TelegramAdapter:
    def __init__(self, config: TelegramConfig, transport_factory: Callable[[], object]):
        self.config, self.transport_factory = config, transport_factory
        self.app: Application | None = None
        self.store: ChatStore | None = None
        self.sender: Sender | None = None
        self.chats: JoeyChats | None = None
        self.asker: Asker | None = None
        self.access: ChatAccess | None = None
        self.order = ChatOrder()
        self.metrics = TelegramMetrics()
        self.metrics.watch(self)
        self.group_rate = GroupRate(config.group_user_messages, config.group_user_window, self.metrics)
        self.webhook_secret = webhook.secret_for(config) if config.webhook_url else ""
        self._poller: asyncio.Task | None = None
        self._handling: set[asyncio.Task] = set()
        self._stopping = False

    @property
    def clients(self) -> dict[int, JoeyClient]:
        return self.chats.clients if self.chats else {}

    # --- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        token = self.config.require_token()
        protect(token)
        self.config.check()
        self.store = open_chat_store(self.config.state)
        builder = ApplicationBuilder().token(token).concurrent_updates(True).updater(None)
        if self.config.base_url:
            builder = builder.base_url(self.config.base_url).base_file_url(self.config.file_url)
        self.app = builder.build()
        self._add_handlers()
        await reach_bot_api(self.app.initialize, self.config.retry_attempts, self.config.retry_base)
        self.store.bind_bot(self.app.bot.id)
        self.access = ChatAccess(self.config, self.store, self.metrics)
        self.store.prune()
        self.chats = JoeyChats(self.store, self.transport_factory, self.order, self.config.max_open_chats,
                               self.config.server_max_backoff)
        self.sender = Sender(self.app.bot, self.store, self.config.retry_attempts, self.config.retry_base,
                             send_timeout_s=self.config.send_timeout)
        self.sender.on_migrated = self.chats.migrate
        self.asker = Asker(self.app.bot, self.config, self.chats, self.sender, self._reply, self.metrics)
        with contextlib.suppress(TelegramError):
            await self.app.bot.set_my_commands([BotCommand(c, d) for c, d in texts.BOT_COMMANDS])
        await self.app.start()
        pending = self.store.pending()
        if pending:
            log.info("replaying %d updates received before the last stop", len(pending))
        for data in pending:
            self.enqueue(data)
        if self.config.webhook_url:
            await webhook.register(self.app.bot, self.config, self.webhook_secret)
        else:
            self._poller = await start_polling(self.app.bot, self.store, self.config, self.enqueue)
        log.info("Telegram bot @%s is running", self.app.bot.username)

    async def stop(self) -> None:
        """Stop polling and abandon replies in progress; their updates are replayed at next start."""
        self._stopping = True
        if self._poller:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
        for task in list(self._handling):
            task.cancel()
        await asyncio.gather(*self._handling, return_exceptions=True)
        if self.sender is not None:
            await self.sender.drain(self.config.stop_grace)
        if self.app is not None:
            if self.app.running:
                await self.app.stop()
            await self.app.shutdown()
        if self.chats is not None:
            await self.chats.close()
        if self.store is not None:
            self.store.close()
            self.store = None

    # --- receiving ------------------------------------------------------------------------
    @property
    def accepting(self) -> bool:
        return self.app is not None and self.app.running and self.store is not None and not self._stopping

    @property
    def polling(self) -> bool:
        return self._poller is not None and not self._poller.done()

    def take(self, data: dict) -> None:
        """An update posted to the webhook: kept in the inbox, then handled (once, if posted again)."""
        if self.store.keep(data):
            self.enqueue(data)

    def enqueue(self, data: dict) -> None:
        update = Update.de_json(data, self.app.bot)
        self.metrics.updates.inc()
        if update.effective_chat is not None:
            self.order.register(update.effective_chat.id, update.update_id)
        self.app.update_queue.put_nowait(update)

    def _add_handlers(self) -> None:
        guard, new = self._guarded, NEW_MESSAGE
        self.app.add_handler(CommandHandler("start", guard(self._on_start), filters=new))
        self.app.add_handler(CommandHandler("reset", guard(self._on_reset), filters=new))
        self.app.add_handler(CommandHandler("help", guard(self._on_help), filters=new))
        self.app.add_handler(MessageHandler(new & filters.COMMAND & filters.ChatType.PRIVATE, guard(self._on_help)))
        self.app.add_handler(MessageHandler(new & filters.TEXT & ~filters.COMMAND, guard(self._on_text)))
        self.app.add_handler(MessageHandler(new & filters.StatusUpdate.MIGRATE, guard(self._on_migrate)))
        # Stickers, photos, voice...: content a person sent. Service messages (joins, leaves,
        # pins, title changes) are not, and fall through to the catch-all below.
        self.app.add_handler(MessageHandler(new & filters.ATTACHMENT, guard(self._on_other)))
        self.app.add_handler(TypeHandler(Update, guard(self._on_ignored)))  # anything else: just done

    def _guarded(self, handle):
        """Run ``handle`` in its chat's turn; the update leaves the inbox once it is handled.

        It stays in the inbox only when the adapter stops first (cancelled, or stopping before
        its turn came): the next start replays it. A chat's flood ends when nothing of it waits:
        only then may a later wait be announced again.
        """

        async def run(update: Update, context) -> None:
            if self._stopping:
                return
            task = asyncio.current_task()
            self._handling.add(task)
            try:
                async with self._turn(update):
                    if self._stopping:
                        return
                    if self.access.admits(update):  # in turn: a move to a supergroup is known by now
                        await until_delivered(lambda: handle(update), f"update {update.update_id}",
                                              self.config.retry_base, self.config.max_backoff,
                                              self._apology(update))
                    self.store.finish(update.update_id)
                    if update.effective_chat and not self.order.waiting(update.effective_chat.id):
                        self.asker.told_to_wait.discard(update.effective_chat.id)
            finally:
                self._handling.discard(task)

        return run

    def _apology(self, update: Update):
        """What the person hears when handling their message failed on a bug (None: nobody to tell)."""
        if update.effective_chat is None or update.effective_message is None:
            return None
        return lambda: self._reply(update, texts.TROUBLE)

    def _turn(self, update: Update):
        chat = update.effective_chat
        return self.order.turn(chat.id, update.update_id) if chat is not None else contextlib.nullcontext()

    # --- handlers -------------------------------------------------------------------------
    async def _reply(self, update: Update, text: str) -> None:
        chat, message = update.effective_chat, update.effective_message
        await self.sender.reply(chat.id, message.message_id, text, quote=chat.type != ChatType.PRIVATE,
                                topic=topic(message))

    def _for_joey(self, message: Message) -> str | None:
        return words_for_joey(message, self.app.bot.id, self.app.bot.username)

    async def _on_start(self, update: Update) -> None:
        await self._reply(update, texts.GREETING)

    async def _on_help(self, update: Update) -> None:
        await self._reply(update, texts.HELP)

    async def _on_other(self, update: Update) -> None:
        if self._for_joey(update.effective_message) is not None:
            await self._reply(update, texts.NOT_TEXT)

    async def _on_ignored(self, update: Update) -> None:
        log.debug("update %s: nothing to answer", update.update_id)

    async def _on_migrate(self, update: Update) -> None:
        message = update.effective_message
        if message.migrate_to_chat_id:  # said in the old group
            self.chats.migrate(message.chat.id, message.migrate_to_chat_id)
        elif message.migrate_from_chat_id:  # said in the new supergroup
            self.chats.migrate(message.migrate_from_chat_id, message.chat.id)

    async def _on_reset(self, update: Update) -> None:
        chat, message = update.effective_chat, update.effective_message
        if self.store.parts_sent(chat.id, message.message_id)[1]:
            return
        if not await may_reset(self.app.bot, message, self.config):
            self.metrics.turned_away.labels("reset_not_admin").inc()
            await self._reply(update, texts.RESET_ADMINS_ONLY)
            return
        client = await self.asker.client(update)
        if client is not None:
            await client.reset()
            await self._reply(update, texts.RESET_DONE)

    async def _on_text(self, update: Update) -> None:
        chat, message = update.effective_chat, update.effective_message
        words = self._for_joey(message)
        if words is None:
            return  # group talk that is not for Joey
        if not visible(words):
            await self._reply(update, texts.NOTHING_SAID)
            return
        if self.store.parts_sent(chat.id, message.message_id)[1]:
            log.info("update %s was answered before a restart; skipping", update.update_id)
            return
        if chat.type != ChatType.PRIVATE and (refused := self.group_rate.refused(message)) is not None:
            if refused[1]:  # once per flood; the rest of it goes unanswered in silence
                await self._reply(update, texts.MEMBER_SLOW_DOWN.format(wait=texts.wait_words(refused[0])))
            return
        client = await self.asker.client(update)
        if client is None:
            return
        text = await self.asker.answer(update, client, words)
        await self._reply(update, text)
        self.metrics.replies.inc()
