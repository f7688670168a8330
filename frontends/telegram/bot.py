"""The Telegram adapter: Telegram chats on one side, Joey sessions on the other.

One adapter class serves both ways of running; only the transport factory differs:
``LocalTransport(hub)`` in-process (``joey serve --telegram``) and
``WebSocketTransport(url)`` out-of-process (``joey telegram --server ws://...``).

Flow of one update: a poll loop takes it from getUpdates, writes it to the inbox (ChatStore)
together with the new offset, gives it a per-chat ticket and puts it on the Application's
update queue. The Application runs handlers concurrently; each handler waits for its chat's
turn, asks Joey through that chat's :class:`JoeyClient` (message id ``tg-<chat>-<message>``,
so the hub answers a replayed update from its store instead of generating again), sends the
reply and only then removes the update from the inbox. Updates still in the inbox at start
are replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import OrderedDict
from typing import Callable

from telegram import BotCommand, Update
from telegram.constants import ChatType
from telegram.error import BadRequest, Conflict, Forbidden, InvalidToken, NetworkError, RetryAfter, TelegramError
from telegram.ext import Application, ApplicationBuilder, CommandHandler, MessageHandler, TypeHandler, filters

from backend.client import ClientError, ConnectionLost, JoeyClient
from frontends.telegram import texts
from frontends.telegram.chat_store import ChatStore
from frontends.telegram.config import TelegramConfig, TelegramConfigError
from frontends.telegram.ordering import ChatOrder
from frontends.telegram.redact import protect, scrub
from frontends.telegram.sending import Drafts, Sender, retry_seconds, typing, with_retry

log = logging.getLogger("joey.telegram")

MAX_NAME_CHARS = 32  # the server's default max_name_chars


class TelegramAdapter:
    def __init__(self, config: TelegramConfig, transport_factory: Callable[[], object],
                 max_message_chars: int = 1000):
        self.config, self.transport_factory = config, transport_factory
        self.max_message_chars = max_message_chars
        self.app: Application | None = None
        self.store: ChatStore | None = None
        self.sender: Sender | None = None
        self.clients: OrderedDict[int, JoeyClient] = OrderedDict()
        self.order = ChatOrder()
        self._poller: asyncio.Task | None = None
        self._handling: set[asyncio.Task] = set()
        self._stopping = False

    # --- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        token = self.config.require_token()
        protect(token)
        builder = ApplicationBuilder().token(token).concurrent_updates(True).updater(None)
        if self.config.base_url:
            builder = builder.base_url(self.config.base_url).base_file_url(self.config.file_url)
        self.app = builder.build()
        self._add_handlers()
        try:
            await with_retry(self.app.initialize, "getMe", self.config.retry_attempts, self.config.retry_base_s)
        except InvalidToken:
            raise TelegramConfigError("Telegram refused the bot token (getMe: 401 Unauthorized). Check "
                                      "TELEGRAM_BOT_TOKEN; @BotFather shows a bot's token with /token.") from None
        except TelegramError as exc:
            raise TelegramConfigError(f"cannot reach the Telegram Bot API: {scrub(str(exc))}") from None
        self.store = ChatStore(self.config.state_path)
        self.store.prune()
        self.sender = Sender(self.app.bot, self.store, self.config.retry_attempts, self.config.retry_base_s)
        await with_retry(lambda: self.app.bot.delete_webhook(drop_pending_updates=False), "deleteWebhook",
                         self.config.retry_attempts, self.config.retry_base_s)
        with contextlib.suppress(TelegramError):
            await self.app.bot.set_my_commands([BotCommand(c, d) for c, d in texts.BOT_COMMANDS])
        await self.app.start()
        pending = self.store.pending()
        if pending:
            log.info("replaying %d updates received before the last stop", len(pending))
        for data in pending:
            self._enqueue(data)
        self._poller = asyncio.get_running_loop().create_task(self._poll_forever())
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
        if self.app is not None:
            if self.app.running:
                await self.app.stop()
            await self.app.shutdown()
        for client in self.clients.values():
            with contextlib.suppress(Exception):
                await client.close()
        self.clients.clear()
        if self.store is not None:
            self.store.close()
            self.store = None

    # --- receiving ------------------------------------------------------------------------
    async def _poll_forever(self) -> None:
        bot, failures = self.app.bot, 0
        while True:
            try:
                updates = await bot.get_updates(offset=self.store.offset(), allowed_updates=["message"],
                                                timeout=max(1, int(self.config.poll_timeout_s)))
                failures = 0
            except RetryAfter as exc:
                await asyncio.sleep(retry_seconds(exc))
                continue
            except (NetworkError, Conflict, Forbidden, InvalidToken) as exc:
                failures += 1
                delay = min(30.0, self.config.retry_base_s * 2 ** min(failures, 6)) * (0.75 + random.random() / 2)
                log.warning("getUpdates failed (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                continue
            for data in self.store.accept([u.to_dict() for u in updates]):
                self._enqueue(data)

    def _enqueue(self, data: dict) -> None:
        update = Update.de_json(data, self.app.bot)
        if update.effective_chat is not None:
            self.order.register(update.effective_chat.id, update.update_id)
        self.app.update_queue.put_nowait(update)

    def _add_handlers(self) -> None:
        guard = self._guarded
        self.app.add_handler(CommandHandler("start", guard(self._on_start)))
        self.app.add_handler(CommandHandler("reset", guard(self._on_reset)))
        self.app.add_handler(CommandHandler("help", guard(self._on_help)))
        self.app.add_handler(MessageHandler(filters.COMMAND & filters.ChatType.PRIVATE, guard(self._on_help)))
        self.app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, guard(self._on_text)))
        self.app.add_handler(MessageHandler(~filters.TEXT, guard(self._on_other)))
        self.app.add_handler(TypeHandler(Update, guard(self._on_ignored)))  # anything else: just done

    def _guarded(self, handle):
        """Run ``handle`` in its chat's turn; the update leaves the inbox once it is handled."""

        async def run(update: Update, context) -> None:
            if self._stopping:
                return
            task = asyncio.current_task()
            self._handling.add(task)
            finished = True
            try:
                chat = update.effective_chat
                if chat is None:
                    await handle(update)
                else:
                    async with self.order.turn(chat.id, update.update_id):
                        if self._stopping:
                            finished = False
                            return
                        await handle(update)
            except asyncio.CancelledError:
                finished = False  # stopping: replay at next start
                raise
            except Forbidden as exc:
                log.info("update %s: chat refuses messages (%s)", update.update_id, exc)
            except BadRequest as exc:
                log.error("update %s: Telegram refused the reply (%s)", update.update_id, exc)
            except NetworkError as exc:
                finished = False
                log.error("update %s: Telegram unreachable (%s); kept for replay at next start",
                          update.update_id, exc)
            except Exception:
                log.exception("update %s failed", update.update_id)
            finally:
                self._handling.discard(task)
                if finished and self.store is not None:
                    self.store.finish(update.update_id)

        return run

    # --- handlers -------------------------------------------------------------------------
    async def _reply(self, update: Update, text: str) -> None:
        chat, message = update.effective_chat, update.effective_message
        await self.sender.reply(chat.id, message.message_id, text, quote=chat.type != ChatType.PRIVATE)

    async def _on_start(self, update: Update) -> None:
        await self._reply(update, texts.GREETING)

    async def _on_help(self, update: Update) -> None:
        await self._reply(update, texts.HELP)

    async def _on_other(self, update: Update) -> None:
        await self._reply(update, texts.NOT_TEXT)

    async def _on_ignored(self, update: Update) -> None:
        log.debug("update %s: nothing to answer", update.update_id)

    async def _on_reset(self, update: Update) -> None:
        chat = update.effective_chat
        if self.store.parts_sent(chat.id, update.effective_message.message_id)[1]:
            return
        client = await self._client(chat.id, update.effective_user)
        await client.reset()
        await self._reply(update, texts.RESET_DONE)

    async def _on_text(self, update: Update) -> None:
        chat, message = update.effective_chat, update.effective_message
        if self.store.parts_sent(chat.id, message.message_id)[1]:
            log.info("update %s was answered before a restart; skipping", update.update_id)
            return
        drafts = None
        if self.config.drafts and chat.type == ChatType.PRIVATE:
            drafts = Drafts(self.app.bot, chat.id, message.message_id, self.config.draft_interval_s)
        async with typing(self.app.bot, chat.id, self.config.typing_interval_s):
            client = await self._client(chat.id, update.effective_user)
            async with drafts or contextlib.nullcontext():
                text = await self._ask(client, message.text, f"tg-{chat.id}-{message.message_id}",
                                       drafts.add if drafts else None)
        await self._reply(update, text)

    # --- Joey -----------------------------------------------------------------------------
    async def _ask(self, client: JoeyClient, text: str, message_id: str, on_chunk) -> str:
        while True:
            try:
                end = await client.ask(text, message_id, on_chunk)
                return end["text"].strip() or texts.EMPTY_REPLY
            except ClientError as exc:
                if exc.code == "busy":  # a reply from before a restart is still finishing
                    await asyncio.sleep(0.5)
                elif exc.code == "rate_limited":
                    await asyncio.sleep(min(60.0, exc.retry_after or 5.0))
                elif exc.code == "message_too_long":
                    return texts.TOO_LONG.format(limit=self.max_message_chars)
                else:
                    log.warning("Joey could not answer %s: %s", message_id, exc)
                    return texts.TROUBLE

    async def _client(self, chat_id: int, user) -> JoeyClient:
        """The chat's Joey client, connected; created (and its session resumed) on first use."""
        client = self.clients.get(chat_id)
        if client is not None:
            self.clients.move_to_end(chat_id)
            return client
        saved = self.store.session_for(chat_id)
        name = (user.first_name or "").strip()[:MAX_NAME_CHARS] if user else ""
        client = JoeyClient(self.transport_factory(), name=name or None,
                            session_id=saved[0] if saved else None, token=saved[1] if saved else None)

        def on_session(frame: dict) -> None:  # every open and resume, so a new session is remembered
            self.store.save_session(chat_id, frame["session_id"], frame["token"])
            self.max_message_chars = frame.get("limits", {}).get("max_message_chars", self.max_message_chars)

        client.on_session = on_session
        attempt = 0
        while True:
            try:
                await client.start()
                break
            except ConnectionLost as exc:
                attempt += 1
                delay = min(30.0, 0.5 * 2 ** attempt)
                log.warning("Joey server unreachable (%s); retrying in %.0f s", exc, delay)
                await asyncio.sleep(delay)
        self.clients[chat_id] = client
        await self._evict()
        return client

    async def _evict(self) -> None:
        """Close the least recently used idle clients beyond max_open_chats (they resume later)."""
        idle = [c for c in self.clients if not self.order.busy(c)]
        for chat_id in idle[:max(0, len(self.clients) - self.config.max_open_chats)]:
            client = self.clients.pop(chat_id)
            with contextlib.suppress(Exception):
                await client.close()
