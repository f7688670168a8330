"""A character: the bot's speaker name and the system prompt that holds its sheet.

A character is one Markdown file (``characters/joey.md``): a front matter of ``key: value`` lines
between ``---`` lines (``name``, ``system``, ``about``), then the sheet itself. The system prompt
is the ``system`` line followed by the sheet, so a second character needs a file and an adapter,
not a code change. ``about`` describes the file and never reaches the prompt.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CARD = ROOT / "characters" / "joey.md"


class CardError(ValueError):
    pass


@dataclass(frozen=True)
class Character:
    name: str  # the bot's speaker name in the conversation ("Joey")
    system: str  # the whole system prompt: the system line, then the sheet

    @classmethod
    def parse(cls, text: str, source: str = "<card>") -> "Character":
        lines = text.strip().splitlines()
        if not lines or lines[0].strip() != "---" or "---" not in (l.strip() for l in lines[1:]):
            raise CardError(f"{source}: expected a front matter between '---' lines, got {lines[:1]}")
        end = [l.strip() for l in lines].index("---", 1)
        meta = {}
        for line in lines[1:end]:
            key, sep, value = line.partition(":")
            if not sep:
                raise CardError(f"{source}: expected 'key: value' in the front matter, got {line!r}")
            meta[key.strip()] = value.strip()
        missing = [k for k in ("name", "system") if not meta.get(k)]
        if missing:
            raise CardError(f"{source}: the front matter lacks {', '.join(missing)}")
        sheet = "\n".join(lines[end + 1:]).strip()
        return cls(meta["name"], f"{meta['system']}\n\n{sheet}" if sheet else meta["system"])

    @classmethod
    def load(cls, path: str | Path) -> "Character":
        path = Path(path)
        try:
            return cls.parse(path.read_text(encoding="utf-8"), str(path))
        except OSError as exc:
            raise CardError(f"cannot read the character card {path}: {exc.strerror}") from exc


@functools.lru_cache(maxsize=1)
def default_character() -> Character:
    return Character.load(DEFAULT_CARD)
