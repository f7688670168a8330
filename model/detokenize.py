"""Token ids in, text chunks out, never splitting a UTF-8 character across two chunks."""

from __future__ import annotations


class StreamDecoder:
    """Incremental decoding for one reply.

    Byte-level BPE can spread one character (an emoji, an accented letter) over several tokens;
    until the last of them arrives the decoded text ends in U+FFFD, so that tail is held back.
    Every chunk extends what was sent before, so the chunks always concatenate to the text.
    """

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.sent = ""

    def text(self) -> str:
        # The prompt ends with "Joey:" and the reply starts with its space; the reply itself
        # does not, so history renders back as "Joey: text" exactly as in training.
        return self.tokenizer.decode(self.ids, skip_special_tokens=True).lstrip()

    def push(self, token: int) -> str:
        self.ids.append(token)
        text = self.text()
        return "" if text.endswith("\ufffd") else self._advance(text)

    def flush(self, final: str | None = None) -> str:
        """The rest of the reply (``final`` replaces the decoded text, e.g. cut at a stop text)."""
        return self._advance(self.text() if final is None else final)

    def _advance(self, text: str) -> str:
        if not text.startswith(self.sent) or len(text) <= len(self.sent):
            return ""
        chunk, self.sent = text[len(self.sent):], text
        return chunk
