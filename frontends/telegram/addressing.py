"""Who is talking, and whether they are talking to Joey.

In a private chat every message is for Joey. In a group Joey answers only when he is
mentioned (``@his_username``, or a text mention of his account), when someone replies to one
of his messages, or when he is addressed by name ("Joey, ..."); the rest of the group's talk
is none of his business. A mention of the bot is taken out of the text he is asked, so
the model sees "how you doin'?" rather than "@joey_bot how you doin'?".

One group shares one Joey session, so each message carries its speaker's name (the protocol's
per-message ``name``) and the prompt shows who said what.
"""

from __future__ import annotations

import re
import unicodedata

from telegram import Message
from telegram.constants import ChatType, MessageEntityType

MAX_NAME_CHARS = 32  # the server's default max_name_chars, until its session frame says otherwise
BOT_NAME = re.compile(r"\bjoey\b", re.IGNORECASE)


def speaker(message: Message, max_chars: int = MAX_NAME_CHARS) -> str | None:
    """The display name of whoever sent ``message`` (a person, or a channel/anonymous admin),
    cut to the server's ``max_name_chars``."""
    if message.sender_chat is not None:  # posted as a channel or an anonymous group admin
        name = message.sender_chat.title or ""
    else:
        name = message.from_user.first_name if message.from_user else ""
    name = (name or "").strip()[:max_chars].strip()
    return name or None


def visible(text: str) -> bool:
    """True when ``text`` shows something: not only spaces or invisible format characters."""
    return any(not ch.isspace() and unicodedata.category(ch) != "Cf" for ch in text)


def words_for_joey(message: Message, bot_id: int, bot_username: str) -> str | None:
    """The text Joey is asked to answer, or None when a group message is not for him.

    The text may come back empty (a bare "@joey_bot"): the caller decides what to say then.
    """
    text = message.text or message.caption or ""
    if message.chat.type == ChatType.PRIVATE:
        return text
    mention = "@" + bot_username.lower() if bot_username else None
    entities = message.parse_entities() if message.text else message.parse_caption_entities()
    mentioned = any(
        (entity.type == MessageEntityType.MENTION and mention and value.lower() == mention)
        or (entity.type == MessageEntityType.TEXT_MENTION and entity.user and entity.user.id == bot_id)
        for entity, value in entities.items())
    replied = message.reply_to_message is not None and message.reply_to_message.from_user is not None \
        and message.reply_to_message.from_user.id == bot_id
    if not (mentioned or replied or BOT_NAME.search(text)):
        return None
    if mention:
        text = re.sub(re.escape(mention) + r"\b", "", text, flags=re.IGNORECASE)
    return re.sub(r"[ \t]{2,}", " ", text).strip()
