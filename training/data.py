"""Read the sitcom transcripts into scenes of (speaker, text) turns.

The transcripts live outside the project (``--data``, usually ``../shared/data``) and are never
copied into it. Every reader yields :class:`Scene` objects; the rest of the pipeline only knows
scenes, so adding a show means adding one reader.

Validation hold-out (fixed and documented in docs/MODEL.md): an episode is held out when its
number within its season is a multiple of 10 (Friends and The Office: s1e10, s1e20, s2e10, ...).
``more_dialogue`` episodes are held out by a stable CRC32 of "show/episode" modulo 10 == 0.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from model.prompt import Turn

FRIENDS_FILE = "friends_s01-s09.jsonl.gz"
OFFICE_FILE = "theoffice.jsonl.gz"
MORE_FILE = "more_dialogue.jsonl.gz"

BOT_SPEAKER = "Joey"
HOLDOUT_EVERY = 10

# Stage directions inside spoken lines: "(to Ross) Hey!" or "[on phone] Hello?".
_DIRECTION = re.compile(r"\([^)]*\)|\[[^\]]*\]")
_SPACES = re.compile(r"\s+")
# Office transcripts split long scenes only by episode; cut them so contexts stay local.
OFFICE_SCENE_LINES = 40


@dataclass
class Scene:
    show: str
    episode: str  # "s01e10" style, or the source's own id for more_dialogue
    held_out: bool
    turns: list[Turn]


def clean_text(text: str) -> str:
    return _SPACES.sub(" ", _DIRECTION.sub(" ", text)).strip()


def _first_name(speaker: str) -> str:
    if speaker == "#ALL#":
        return "All"
    return speaker.split()[0] if speaker.split() else ""


def _rows(path: Path) -> Iterator[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)


def _group(rows: Iterator[dict], key, to_turn, show: str, held_out, max_lines: int | None = None) -> Iterator[Scene]:
    current_key, turns = None, []
    for row in rows:
        k = key(row)
        if k != current_key or (max_lines and len(turns) >= max_lines):
            if turns:
                yield Scene(show, current_key[0], held_out(current_key), turns)
            current_key, turns = k, []
        turn = to_turn(row)
        if turn is not None:
            turns.append(turn)
    if turns:
        yield Scene(show, current_key[0], held_out(current_key), turns)


def _turn(speaker: str, text: str) -> Turn | None:
    text = clean_text(text or "")
    if not speaker or not text or speaker in ("Scene Directions", "<NA>"):
        return None
    return Turn(speaker, text)


def read_friends(data: Path) -> Iterator[Scene]:
    return _group(
        _rows(data / FRIENDS_FILE),
        key=lambda r: (f"s{r['season']:02d}e{r['episode']:02d}", r["episode"], r["scene"]),
        to_turn=lambda r: _turn(_first_name(r["speaker"]), r["text"]),
        show="Friends",
        held_out=lambda k: k[1] % HOLDOUT_EVERY == 0,
    )


def read_office(data: Path) -> Iterator[Scene]:
    return _group(
        _rows(data / OFFICE_FILE),
        key=lambda r: (f"s{r['season']:02d}e{r['episode']:02d}", r["episode"]),
        to_turn=lambda r: _turn(r["speaker"].strip(), r["text"]),
        show="The Office",
        held_out=lambda k: k[1] % HOLDOUT_EVERY == 0,
        max_lines=OFFICE_SCENE_LINES,
    )


def read_more(data: Path) -> Iterator[Scene]:
    return _group(
        _rows(data / MORE_FILE),
        key=lambda r: (f"{r['show']}/{r['episode']}",),
        to_turn=lambda r: _turn(r["speaker"].strip(), r["text"]),
        show="more_dialogue",
        held_out=lambda k: zlib.crc32(k[0].encode()) % HOLDOUT_EVERY == 0,
        max_lines=OFFICE_SCENE_LINES,
    )


def read_scenes(data: Path, include_more: bool = True) -> Iterator[Scene]:
    """Every scene of every show found under ``data``; missing optional files are skipped."""
    data = Path(data)
    yield from read_friends(data)
    if (data / OFFICE_FILE).exists():
        yield from read_office(data)
    if include_more and (data / MORE_FILE).exists():
        yield from read_more(data)


@dataclass
class JoeyPair:
    context: list[Turn]  # the preceding turns of the scene, oldest first
    reply: str  # what Joey said
    episode: str


def joey_pairs(scenes: Iterator[Scene], held_out: bool, max_context: int = 8) -> Iterator[JoeyPair]:
    """Joey's lines with the turns before them, from Friends scenes on one side of the hold-out.

    A line that opens a scene has no one to answer, so it is skipped.
    """
    for scene in scenes:
        if scene.show != "Friends" or scene.held_out != held_out:
            continue
        for i, turn in enumerate(scene.turns):
            if turn.speaker == BOT_SPEAKER and i > 0:
                yield JoeyPair(scene.turns[max(0, i - max_context) : i], turn.text, scene.episode)
