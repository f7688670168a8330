"""Split a long reply into Telegram-sized messages, on the most natural boundary available.

Telegram refuses texts over 4,096 characters. It counts UTF-16 code units (an emoji such as 🍕
counts twice), so :func:`tg_len` does too; a split is therefore always safe to send.

Boundaries, best first: a blank line, a line break, the end of a sentence, any whitespace, and
only when a piece has none of these (a 5,000-letter word) a hard cut between characters. Every
cut falls between grapheme clusters (what a reader sees as one character), so a family emoji
👨‍👩‍👧 (five code points joined by ZWJ), a flag 🇮🇹 (two regional indicators), a skin tone or
an accent is never torn in two; only a single cluster longer than a whole message (thousands of
combining marks) is cut inside. A
boundary in the first half of a piece is not taken when a weaker one later in the piece exists
(it would leave a very short message followed by a long one), except for plain whitespace.
Whitespace at a boundary is dropped; nothing else is lost or reordered.
"""

from __future__ import annotations

import re

import regex  # the \X pattern: extended grapheme clusters (Unicode UAX #29)

TELEGRAM_LIMIT = 4096
GRAPHEME = regex.compile(r"\X")

# Each pattern's group 1 is the whitespace the text is cut at.
_BOUNDARIES = [
    (re.compile(r"\S(\n[ \t]*\n\s*)"), True),  # paragraph
    (re.compile(r"\S(\n\s*)"), True),  # line
    (re.compile(r"[.!?…][\"'”’)\]]*(\s+)"), True),  # sentence
    (re.compile(r"\S(\s+)"), False),  # word
]


def tg_len(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def _window(text: str, limit: int) -> int:
    """The number of characters of ``text`` that fit in ``limit`` UTF-16 units, ending on a
    grapheme cluster boundary (a cluster over the limit on its own is cut between code points)."""
    used = end = 0
    for cluster in GRAPHEME.finditer(text):
        used += tg_len(cluster.group())
        if used > limit:
            return end or _code_points(text, limit)
        end = cluster.end()
    return len(text)


def _code_points(text: str, limit: int) -> int:
    used = 0
    for i, ch in enumerate(text):
        used += 2 if ord(ch) > 0xFFFF else 1
        if used > limit:
            return i
    return len(text)


def split_message(text: str, limit: int = TELEGRAM_LIMIT) -> list[str]:
    """Pieces of ``text``, each non-empty and at most ``limit`` UTF-16 units long."""
    if limit < 2:
        raise ValueError("limit must be at least 2")
    pieces: list[str] = []
    rest = text.strip()
    while rest:
        if tg_len(rest) <= limit:
            pieces.append(rest)
            break
        size = _window(rest, limit)
        window = rest[:size]
        cut = None
        clusters = {m.start() for m in GRAPHEME.finditer(window)} | {size}
        for pattern, needs_second_half in _BOUNDARIES:
            matches = [m for m in pattern.finditer(window) if m.start(1) >= (size // 2 if needs_second_half else 1)
                       and m.start(1) in clusters and m.end(1) in clusters]
            if matches:
                m = matches[-1]
                cut = (m.start(1), m.end(1))
                break
        if cut is None:  # no whitespace at all: cut between characters
            cut = (size, size)
        pieces.append(rest[:cut[0]].rstrip())
        rest = rest[cut[1]:].lstrip()
    return [p for p in pieces if p]
