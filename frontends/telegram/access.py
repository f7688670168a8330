"""Who may do what: which chats the bot serves, and who may ``/reset`` a group.

Chats: with ``allowed_chats`` set, only those; never the ``blocked_chats``. A supergroup that
was a group counts as that group too (Telegram gave it a new id). Updates of other chats are
taken off the inbox unanswered: no session, no reply, one log line per chat.

A group's ``/reset`` forgets everyone's conversation, so by default only its admins may say it:
the creator, an administrator (``getChatMember``), or an anonymous admin (the message is sent as
the group itself). In a private chat the one person always may.
"""

from __future__ import annotations

import logging

from telegram import Bot, Message, Update
from telegram.constants import ChatMemberStatus, ChatType

from frontends.telegram.chat_store import ChatStore
from frontends.telegram.config import TelegramConfig, chat_ids
from frontends.telegram.health import TelegramMetrics
from frontends.telegram.retry import with_retry

log = logging.getLogger("joey.telegram")

ADMINS = (ChatMemberStatus.OWNER, ChatMemberStatus.ADMINISTRATOR)


class ChatAccess:
    def __init__(self, config: TelegramConfig, store: ChatStore, metrics: TelegramMetrics):
        self.allowed, self.blocked = chat_ids(config.allowed_chats), chat_ids(config.blocked_chats)
        self.store, self.metrics = store, metrics
        self.turned_away: set[int] = set()  # chats already logged

    def admits(self, update: Update) -> bool:
        chat = update.effective_chat
        if chat is None or not self.allowed and not self.blocked:
            return True
        chat_id, message = chat.id, update.effective_message
        ids = {chat_id, *self.store.former_ids(chat_id)}
        if message is not None and message.migrate_from_chat_id:  # the move itself, said in the new supergroup
            ids.add(message.migrate_from_chat_id)
        if (not self.allowed or ids & self.allowed) and not ids & self.blocked:
            return True
        self.metrics.turned_away.labels("chat_not_allowed").inc()
        if chat_id not in self.turned_away:
            self.turned_away.add(chat_id)
            log.info("chat %s is %s; its messages are not answered", chat_id,
                     "blocked" if ids & self.blocked else "not in allowed_chats")
        return False


async def may_reset(bot: Bot, message: Message, config: TelegramConfig) -> bool:
    if config.reset_by == "anyone" or message.chat.type == ChatType.PRIVATE:
        return True
    if message.sender_chat is not None:  # an anonymous admin speaks as the group; a channel never may
        return message.sender_chat.id == message.chat.id
    if message.from_user is None:
        return False
    member = await with_retry(lambda: bot.get_chat_member(message.chat.id, message.from_user.id),
                              "getChatMember", config.retry_attempts, config.retry_base)
    return member.status in ADMINS
