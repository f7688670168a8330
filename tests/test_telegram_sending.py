"""How the Telegram adapter sends a reply: split to Telegram's limit (in UTF-16 units), each part sent once."""

from __future__ import annotations

import pytest

from frontends.telegram.chat_store import ChatStore
from frontends.telegram.sending import Sender
from frontends.telegram.split import TELEGRAM_LIMIT, split_message, tg_len
from tests.telegram_fixtures import TOKEN
from tests.telegram_fixtures import fake  # noqa: F401  (a fixture: pytest finds it by name here)

# PTB's own RetryAfter warns that retry_after will become a timedelta; the adapter handles both.
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


# --- splitting ---------------------------------------------------------------------------------
def test_short_text_is_one_piece():
    assert split_message("How you doin'?") == ["How you doin'?"]
    assert split_message("   ") == []


def test_split_prefers_paragraphs_then_sentences_then_words():
    para = "A" * 30 + ".\n\n" + "B" * 30
    assert split_message(para, limit=50) == ["A" * 30 + ".", "B" * 30]
    sentences = "Joey doesn't share food! " * 10
    pieces = split_message(sentences, limit=100)
    assert all(p.endswith("food!") and tg_len(p) <= 100 for p in pieces)
    words = " ".join(["sandwich"] * 40)
    assert all(not p.startswith(" ") and tg_len(p) <= 50 and "sandwich" in p for p in split_message(words, 50))


def test_split_keeps_every_word_within_the_limit():
    text = " ".join(f"word{i}." if i % 7 == 0 else f"word{i}" for i in range(3000)) + "\n\n" + "x" * 5000
    pieces = split_message(text)
    assert all(0 < tg_len(p) <= TELEGRAM_LIMIT for p in pieces)
    assert "".join(pieces).replace(" ", "").replace("\n", "") == text.replace(" ", "").replace("\n", "")


def test_split_counts_utf16_units():
    pieces = split_message("🍕" * 3000)  # each pizza is two UTF-16 units
    assert [tg_len(p) for p in pieces] == [4096, 1904] and "".join(pieces) == "🍕" * 3000


@pytest.mark.parametrize("cluster", ["\U0001F468\u200D\U0001F469\u200D\U0001F467\u200D\U0001F466",  # family (ZWJ)
                                     "\U0001F1EE\U0001F1F9",  # a flag: two regional indicators
                                     "\U0001F44D\U0001F3FD",  # a thumbs-up with a skin tone
                                     "e\u0301"])  # e + a combining acute accent
def test_a_hard_cut_never_tears_a_grapheme_cluster(cluster):
    text = cluster * 3000  # no whitespace anywhere: only hard cuts
    pieces = split_message(text)
    assert "".join(pieces) == text and len(pieces) >= 2
    assert all(tg_len(p) <= TELEGRAM_LIMIT and p == cluster * (len(p) // len(cluster)) for p in pieces)
    assert split_message("x" * 4095 + cluster) == ["x" * 4095, cluster]  # the cluster moves whole


def test_a_cluster_longer_than_a_message_is_still_cut():
    text = "e" + "\u0301" * 5000  # one grapheme cluster of 5,001 code points
    pieces = split_message(text)
    assert "".join(pieces) == text and all(tg_len(p) <= TELEGRAM_LIMIT for p in pieces)


async def test_sender_splits_a_long_reply_and_never_resends(fake, tmp_path):
    from telegram import Bot as PTBBot

    text = "Okay, here's the thing about sandwiches. " * 250  # about 10,000 characters
    store = ChatStore(tmp_path / "s.db")
    async with PTBBot(TOKEN, base_url=fake.base_url) as ptb:
        sender = Sender(ptb, store, base_s=0.01)
        fake.fail_next("sendMessage", times=1)  # a 429 on the first part
        assert await sender.reply(7, 1, text) == 3
        assert await sender.reply(7, 1, text) == 0  # a replayed update sends nothing again
    sent = fake.texts(7)
    assert len(sent) == 3 and all(tg_len(t) <= TELEGRAM_LIMIT for t in sent)
    assert " ".join(sent) == text.strip()
    assert len(fake.sent(7, failed=True)) == 4  # the refused call, then three that went through
    store.close()
