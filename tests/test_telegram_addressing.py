"""Whether a Telegram message is for Joey, and who said it (frontends/telegram/addressing.py).

Messages are built from Bot API JSON by python-telegram-bot itself, as the adapter gets them.
"""

from __future__ import annotations

import pytest
from telegram import Message

from frontends.telegram.addressing import speaker, visible, words_for_joey
from tests.fake_telegram import BOT_USER

BOT_ID, BOT_USERNAME = BOT_USER["id"], BOT_USER["username"]


def message(text: str, chat_type: str = "group", mention: str | None = None, reply_to: dict | None = None,
            **extra) -> Message:
    data = {"message_id": 1, "date": 0, "chat": {"id": -1 if chat_type != "private" else 1, "type": chat_type},
            "from": {"id": 7, "is_bot": False, "first_name": "Monica"}, "text": text, **extra}
    if mention:
        data["entities"] = [{"type": "mention", "offset": text.index(mention), "length": len(mention)}]
    if reply_to:
        data["reply_to_message"] = {"message_id": 0, "date": 0, "chat": data["chat"], "from": reply_to, "text": "…"}
    return Message.de_json(data, None)


@pytest.mark.parametrize("text, mention, expected", [
    ("Joey, how you doin'?", None, "Joey, how you doin'?"),  # his name, any case, as a word
    ("what do you think, JOEY", None, "what do you think, JOEY"),
    ("@joey_test_bot how you doin'?", "@joey_test_bot", "how you doin'?"),  # his mention is taken out
    ("hey @Joey_Test_Bot  what's up", "@Joey_Test_Bot", "hey what's up"),
    ("@joey_test_bot", "@joey_test_bot", ""),  # a bare mention: nothing to say (the caller hints)
    ("Anyone want coffee?", None, None),  # group talk
    ("Joeys are the best", None, None),  # not his name
    ("ask @joey_test_bot_fan", "@joey_test_bot_fan", None),  # someone else's mention
])
def test_in_a_group_only_what_is_for_joey(text, mention, expected):
    assert words_for_joey(message(text, mention=mention), BOT_ID, BOT_USERNAME) == expected


def test_a_reply_to_joey_is_for_him_and_a_private_chat_always_is():
    to_joey = message("I'm fine", reply_to=BOT_USER)
    to_ross = message("I'm fine", reply_to={"id": 8, "is_bot": False, "first_name": "Ross"})
    assert words_for_joey(to_joey, BOT_ID, BOT_USERNAME) == "I'm fine"
    assert words_for_joey(to_ross, BOT_ID, BOT_USERNAME) is None
    assert words_for_joey(message("coffee?", "private"), BOT_ID, BOT_USERNAME) == "coffee?"


def test_speaker_names_and_visible_text():
    assert speaker(message("hi")) == "Monica"
    assert speaker(message("hi", **{"from": {"id": 7, "is_bot": False, "first_name": "  " + "M" * 40}}), 32) == "M" * 32
    anonymous = message("hi", sender_chat={"id": -1, "type": "group", "title": "Central Perk"})
    assert speaker(anonymous) == "Central Perk"
    assert not visible(" \t\n\u200b\u200d") and visible("\u200bhi") and visible("🍕")
