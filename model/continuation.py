"""A reply that goes on from one cut short: the engine's new text, joined to what was said before.

The prompt ends with the cut reply, left open (model/prompt.py: ``reply_start``), so the model
writes only what follows. The engine drops the leading whitespace of every reply it decodes (a
reply's first token carries the space after "Joey:"), and a continuation's first token may begin
a new word (" it" after "He said") or finish the last one ("iani" after "Tribb"). The space it
lost is put back by asking the tokenizer: a word split across tokens spells shorter glued.
"""

from __future__ import annotations

import re
from typing import AsyncIterator

_TAIL_WORD, _HEAD_WORD = re.compile(r"\w+$"), re.compile(r"^\w+")


def joint(tokenizer, before: str, after: str) -> str:
    """What goes between ``before`` (the reply so far) and ``after`` (the continuation's first
    text, its leading whitespace stripped): "" or " "."""
    if not before or not after or before[-1].isspace() or not after[0].isalnum():
        return ""  # punctuation belongs to the word before it
    if not before[-1].isalnum():
        return " "  # a word after a comma or a sentence's end
    word, following = _TAIL_WORD.search(before).group(), _HEAD_WORD.search(after).group()
    glued = _count(tokenizer, word + following)
    apart = _count(tokenizer, word) + _count(tokenizer, " " + following)
    return "" if glued < apart else " "


def _count(tokenizer, text: str) -> int:
    return len(tokenizer.encode(text, add_special_tokens=False))


class Continued:
    """The engine's stream of a continuation, its first chunk joined to ``before``."""

    def __init__(self, inner, tokenizer, before: str):
        self._inner, self._tokenizer, self._before = inner, tokenizer, before

    @property
    def finish_reason(self):
        return self._inner.finish_reason

    @property
    def tokens(self) -> int:
        return self._inner.tokens

    async def __aiter__(self) -> AsyncIterator[str]:
        first = True
        async for text in self._inner:
            if first:
                text, first = joint(self._tokenizer, self._before, text) + text, False
            yield text

    async def aclose(self) -> None:
        await self._inner.aclose()
