"""Token ids in, text chunks out, never splitting a UTF-8 character across two chunks, and never
ending a reply that ran out of tokens in the middle of a sentence."""

from __future__ import annotations

import re

# A sentence ends at . ! ? or … (closing quotes and brackets belong to it), before a space or the end.
SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*(?=\s|$)")


def last_sentence_end(text: str) -> int:
    """Length of the longest prefix of ``text`` that ends a sentence; 0 if none does."""
    ends = [m.end() for m in SENTENCE_END.finditer(text)]
    return ends[-1] if ends else 0


class StreamDecoder:
    """Incremental decoding for one reply; it holds the reply's token ids.

    Byte-level BPE can spread one character (an emoji, an accented letter) over several tokens;
    until the last of them arrives the decoded text ends in U+FFFD, so that tail is held back.
    Every chunk extends what was sent before, so the chunks always concatenate to the text.

    A reply may be cut by its token limit. So that the cut can fall on a sentence end, the last
    ``holdback`` tokens before the limit stream only whole sentences: the unfinished one waits,
    and :meth:`finish_at_sentence` drops it if the limit comes first.
    """

    def __init__(self, tokenizer, limit: int | None = None, holdback: int = 0):
        self.tokenizer = tokenizer
        self._ids: list[int] = []
        self._text = ""  # the decoded reply, kept with the ids: the engine asks for it every token
        self.sent = ""
        self._hold_from = None if limit is None else max(0, limit - holdback)

    @property
    def ids(self) -> tuple[int, ...]:
        return tuple(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def last(self) -> int:
        return self._ids[-1]

    def text(self) -> str:
        return self._text

    def _decode(self) -> None:
        # The prompt ends with "Joey:" and the reply starts with its space; the reply itself
        # does not, so history renders back as "Joey: text" exactly as in training.
        self._text = self.tokenizer.decode(self._ids, skip_special_tokens=True).lstrip()

    def push(self, token: int) -> str:
        self._ids.append(token)
        self._decode()
        text = self._text
        if text.endswith("\ufffd"):
            return ""
        if self._hold_from is not None and len(self._ids) > self._hold_from:
            text = text[:last_sentence_end(text)]
        return self._advance(text)

    def drop_last(self) -> None:
        """Forget the last token (it began a stop text that belongs to the next line)."""
        self._ids.pop()
        self._decode()

    def flush(self, final: str | None = None) -> str:
        """The rest of the reply (``final`` replaces the decoded text, e.g. cut at a stop text)."""
        return self._advance(self.text() if final is None else final)

    def finish_at_sentence(self) -> str:
        """The rest of a reply cut by its limit: up to its last sentence end, if one is unsent."""
        text = self.text()
        end = last_sentence_end(text)
        return self._advance(text[:end] if end >= len(self.sent) and end else text)

    def _advance(self, text: str) -> str:
        if not text.startswith(self.sent) or len(text) <= len(self.sent):
            return ""
        chunk, self.sent = text[len(self.sent):], text
        return chunk
